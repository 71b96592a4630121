"""logits_head.py, quick sizes: every head variant is timed warm and cold, and ours is exact at the top."""

from __future__ import annotations

import json

import logits_head


def test_logits_head_times_every_variant_and_ours_is_exact_where_tokens_are_picked(tmp_path):
    record = logits_head.main(["--quick", "--repeats", "2", "--out", str(tmp_path)])
    assert set(record["results"]) == {"greedy, batch 8", "beam 4 x batch 8"}
    for row in record["results"].values():
        for mode in ("warm", "cold"):
            times = row["ms"][mode]
            assert set(times) == set(logits_head.variants(8, 4)) and all(ms > 0 for ms in times.values())
        accuracy = row["accuracy"]
        assert accuracy[logits_head.EXACT]["max_abs_diff"] == 0
        assert accuracy[logits_head.OURS]["max_abs_diff_top"] < 1e-4
        assert accuracy[logits_head.OURS]["argmax_agrees"] == 1.0
        assert accuracy[logits_head.BASELINE]["max_abs_diff"] > 0  # bf16 logits are rounded
    text = (tmp_path / "logits_head_quick.md").read_text()
    assert f"| greedy, batch 8 | {logits_head.OURS} |" in text
    assert json.loads((tmp_path / "logits_head_quick.json").read_text())["vocab"] == record["vocab"]
