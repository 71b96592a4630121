"""logits_head.py, quick sizes: every head variant is timed and the fp32 ones agree with ours."""

from __future__ import annotations

import json

import logits_head


def test_logits_head_times_every_variant_and_checks_the_fp32_ones_agree(tmp_path):
    record = logits_head.main(["--quick", "--repeats", "2", "--out", str(tmp_path)])
    assert set(record["results"]) == {"greedy, batch 8", "beam 4 x batch 8"}
    for row in record["results"].values():
        assert set(row["ms"]) == set(logits_head.variants(8, 4)) and all(ms > 0 for ms in row["ms"].values())
        diffs = row["max_abs_diff_to_ours"]
        assert diffs[logits_head.OURS] == 0 and diffs["fp32 logits, whole matrix converted"] < 1e-4
        assert diffs[logits_head.BASELINE] > 0  # bf16 logits are rounded
    text = (tmp_path / "logits_head_quick.md").read_text()
    assert f"| greedy, batch 8 | {logits_head.OURS} |" in text
    assert json.loads((tmp_path / "logits_head_quick.json").read_text())["vocab"] == record["vocab"]
