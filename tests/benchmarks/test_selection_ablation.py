"""benchmarks/selection_ablation.py: configurations, one real tiny run per kind, resume, report."""

from __future__ import annotations

import dataclasses
import json

import pytest
import selection_ablation as sa
import torch

from pyramidion_hf.analysis.selection_task import MARK_OPEN_IDS


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


def test_parallel_jobs_store_every_run(tmp_path):
    """--jobs 2 trains in two one-thread worker processes; every run lands in the store and the report."""
    names = ["linear/successive_halving", "blockwise"]
    rows = sa.run(names, [0, 1], sa.QUICK, tmp_path, "test", log=lambda _: None, jobs=2)
    assert {(r["config"], r["seeds"]) for r in rows} == {(n, 2) for n in names}
    stored = json.loads((tmp_path / "selection_ablation.json").read_text())["runs"]
    assert sorted((r["config"], r["seed"]) for r in stored) == sorted((n, s) for n in names for s in (0, 1))
    assert all(r["jobs"] == 2 and r["train_s"] > 0 for r in stored)
    assert "2 runs at once, 1 thread each" in (tmp_path / "selection_ablation.md").read_text()
    # rewriting the report from a one-job call still describes how the stored runs were trained
    sa.run(names, [0, 1], sa.QUICK, tmp_path, "test", log=lambda _: None)
    assert "2 runs at once, 1 thread each" in (tmp_path / "selection_ablation.md").read_text()


def test_numbered_marks_reach_the_task_data():
    plain = sa.task_data(dataclasses.replace(sa.QUICK, numbered_marks=False), 4, seed=0)
    numbered = sa.task_data(sa.QUICK, 4, seed=0)
    second_opener = MARK_OPEN_IDS[1]  # only numbered documents use it
    assert (numbered["input_ids"] == second_opener).sum() == 4 * (sa.QUICK.n_spans - 1)
    assert (plain["input_ids"] == second_opener).sum() == 0


def test_evaluate_scores_a_perfect_copy_as_exact():
    """A model that outputs the target (bos, content, then anything: eos is never reached) scores 1.0."""
    recipe, seed = sa.QUICK, 0
    model = sa.PyramidionForConditionalGeneration(sa.model_config("linear/successive_halving", recipe))
    labels = sa.task_data(recipe, recipe.eval_examples, 20_000 + seed)["labels"]
    batches = iter(labels.split(recipe.batch_size))

    def perfect_generate(**kwargs):
        target = next(batches)
        start = torch.full((len(target), 1), model.config.decoder_start_token_id)
        # the last token is wrong, like the eos that forced-length generation never emits
        return torch.cat([start, target[:, :-1], target[:, :1]], dim=1)

    model.generate = perfect_generate
    metrics = sa.evaluate(model, recipe, seed)
    assert metrics["exact_match"] == 1.0 and metrics["token_accuracy"] == 1.0
    assert 0.0 <= metrics["recall"] <= 1.0


@pytest.mark.slow
def test_default_recipe_learns_to_select():
    """The full recipe (~3 min): linear successive halving copies the marked spans and keeps their tokens."""
    result = sa.run_one("linear/successive_halving", 0, sa.Recipe())
    assert result["token_accuracy"] > 0.9 and result["recall"] > 0.9, result
