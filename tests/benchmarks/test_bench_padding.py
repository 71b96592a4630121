"""benchmarks/bench_padding.py at tiny sizes: the skip keeps the logits and the report is written."""

from __future__ import annotations

import json

import bench_padding


def test_quick_run_writes_report(tmp_path):
    bench_padding.main(["--quick", "--repeats", "1", "--out", str(tmp_path)])
    report = (tmp_path / "padding.md").read_text()
    assert "Same logits with and without the skip: True" in report
    stored = json.loads((tmp_path / "padding_env.json").read_text())
    assert stored["lengths"] == [512, 256] and stored["n"] == 1024
    assert len(stored["times"]["skipped"]) == len(stored["times"]["every_column"]) == 1
