"""optimizer_step.py, quick sizes: both AdamW implementations step the same parameters and are reported."""

from __future__ import annotations

import json

import optimizer_step


def test_optimizer_step_times_foreach_and_fused(tmp_path):
    record = optimizer_step.main(["--quick", "--n", "512", "--repeats", "2", "--out", str(tmp_path)])
    assert set(record["median_s"]) == set(optimizer_step.IMPLEMENTATIONS)
    assert all(len(times) == 3 and min(times) > 0 for times in record["seconds"].values())
    assert record["params"] > 0
    text = (tmp_path / "optimizer_step_quick.md").read_text()
    assert "| fused |" in text and "| foreach | " in text and "| 1.00x |" in text
    assert json.loads((tmp_path / "optimizer_step_quick.json").read_text())["params"] == record["params"]
