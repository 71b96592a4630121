"""benchmarks/selection_ablation.py: configurations, one real tiny run per kind, resume, report."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import selection_ablation as sa  # noqa: E402


def test_configurations_cover_every_scorer_and_topk():
    names = sa.configurations()
    assert len(names) == 11 and names[-1] == "blockwise"
    assert {n.split("/")[0] for n in names[:-1]} == set(sa.SCORER_ORDER)
    assert {n.split("/")[1] for n in names[:-1]} == set(sa.TOPK_ORDER)
    pooled = sa.model_config("linear/hard", sa.Recipe())
    assert pooled.encoder_lengths == [2048, 128] and pooled.pooling_layers == [1]
    assert (pooled.scorer, pooled.topk) == ("linear", "hard")
    reference = sa.model_config("blockwise", sa.Recipe())
    assert reference.encoder_lengths == [2048, 2048] and reference.pooling_layers == []


def test_curriculum_data_is_padded_and_sorted_shortest_first():
    recipe = dataclasses.replace(sa.QUICK, train_min_length=128)
    data = sa.task_data(recipe, 12, seed=3, min_length=recipe.train_min_length)
    lengths = data["attention_mask"].sum(1)
    assert data["input_ids"].shape == (12, 256) and int(lengths.min()) >= 128
    assert (data["input_ids"][data["attention_mask"] == 0] == 1).all()  # pad id
    assert data["labels"].shape == (12, 2 + recipe.n_spans * recipe.span_length)


def test_run_writes_table_plot_and_resumes(tmp_path, monkeypatch):
    names = ["linear/successive_halving", "mean/successive_halving", "blockwise"]
    rows = sa.run(names, [0], sa.QUICK, tmp_path, "test", log=lambda _: None)
    by_name = {r["config"]: r for r in rows}
    assert set(by_name) == set(names)
    for row in rows:
        assert 0.0 <= row["token_accuracy"] <= 1.0 and 0.0 <= row["exact_match"] <= 1.0
        assert row["final_loss"] > 0 and row["seeds"] == 1
    assert 0.0 <= by_name["linear/successive_halving"]["recall"] <= 1.0
    assert by_name["blockwise"]["recall"] != by_name["blockwise"]["recall"]  # NaN: nothing is selected
    assert by_name["mean/successive_halving"]["recall"] != by_name["mean/successive_halving"]["recall"]
    md = (tmp_path / "selection_ablation.md").read_text()
    assert "scorer" in md and "recall" in md
    assert "| linear / successive halving |" in md and "| mean pooling (no top-k) |" in md
    assert (tmp_path / "selection_ablation.png").stat().st_size > 10_000
    stored = json.loads((tmp_path / "selection_ablation.json").read_text())
    assert len(stored["runs"]) == 3

    # a discussion written under the heading survives a rewrite; finished runs are not run again
    (tmp_path / "selection_ablation.md").write_text(md.replace("(none yet)", "Linear wins."))
    monkeypatch.setattr(sa, "run_one", lambda *args: pytest.fail("a finished run was repeated"))
    sa.run(names, [0], sa.QUICK, tmp_path, "test", log=lambda _: None)
    assert "Linear wins." in (tmp_path / "selection_ablation.md").read_text()

    with pytest.raises(SystemExit, match="another recipe"):
        sa.run(names, [0], dataclasses.replace(sa.QUICK, steps=7), tmp_path, "test")


def test_unknown_configuration_is_refused():
    with pytest.raises(SystemExit, match="unknown configuration"):
        sa.main(["--configs", "linear/sorted", "--quick"])
