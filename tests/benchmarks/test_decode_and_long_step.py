"""decode_cache.py and long_step.py, quick sizes: they run the real modes and report what they measured."""

from __future__ import annotations

import json

import decode_cache
import long_step


def test_decode_cache_times_every_mode_and_compares_tokens(tmp_path):
    record = decode_cache.main(["--quick", "--compile-backend", "eager", "--out", str(tmp_path)])
    assert set(record["times_s"]) == set(decode_cache.MODES)
    assert all(len(times) == 1 and times[0] > 0 for times in record["times_s"].values())
    assert record["same_tokens"] == {mode: True for mode in decode_cache.MODES}
    text = (tmp_path / "decode_cache_quick.md").read_text()
    assert "| static+compile |" in text and "dtype fp32" in text
    assert json.loads((tmp_path / "decode_cache_quick.json").read_text())["pooled_k"] == record["pooled_k"]


def test_long_step_runs_a_checkpointed_step_in_a_child(tmp_path):
    record = long_step.main(["--quick", "--lengths", "512", "--target", "16", "--out", str(tmp_path)])
    (point,) = record["points"]
    assert point["n"] == 512 and len(point["step_s"]) == 2 and point["peak_rss_gib"] > 0.05
    assert record["checkpointing"] and "reason" not in point
    text = (tmp_path / "long_step_quick.md").read_text()
    assert "| 512 |" in text and "| ok |" in text and "checkpointing on" in text
