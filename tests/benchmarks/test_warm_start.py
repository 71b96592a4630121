"""benchmarks/warm_start.py: the quick study end to end, and the converter default is the measured best."""

from __future__ import annotations

import json

import pytest
import warm_start

from pyramidion_hf.training.convert import POOLING_DEFAULTS


def test_quick_study_writes_table_plot_and_record(tmp_path):
    warm_start.main(["--quick", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "warm_start.json").read_text())
    runs = record["runs"]
    factors = warm_start.QUICK.factors
    assert len(runs) == 1 + len(factors) * (len(warm_start.INITS) + 1)
    arms = {(r["arm"], r["factor"]) for r in runs}
    assert arms >= {("source BART", 1), ("from scratch", 2), ("converted", 4)}
    for r in runs:
        steps = [s for s, _ in r["curve"]]
        assert steps[0] == 0 and steps[-1] == warm_start.QUICK.finetune_steps
    assert record["best_init"] in warm_start.INITS
    assert "load_average_before" in record["environment"]
    table = (tmp_path / "warm_start.md").read_text()
    assert "| arm | r | input tokens | scorer init |" in table and "shared" in table
    assert (tmp_path / "warm_start.png").stat().st_size > 0


def test_converter_default_is_the_measured_best_initialisation():
    results = warm_start.common.RESULTS / "warm_start.json"
    if not results.is_file():
        pytest.skip("the study has not been run (benchmarks/results/warm_start.json is absent)")
    best = json.loads(results.read_text())["best_init"]
    assert POOLING_DEFAULTS == warm_start.INITS[best]
