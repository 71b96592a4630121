"""Corpora larger than memory: streamed Hub / local data, save_to_disk folders, streamed training."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest
from run_helpers import build_tokenizer, run_argv, run_command_line, synthetic_rows, write_corpus

from pyramidion_hf.training.data import load_summarization_data
from pyramidion_hf.training.features import prepare_features


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    root = tmp_path_factory.mktemp("stream")
    files = write_corpus(root / "data")
    return files, build_tokenizer(root / "tokenizer", files["train"])


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_local_files_stream(tmp_path: Path, fmt: str) -> None:
    rows = synthetic_rows(7, 0, "doc")
    path = tmp_path / f"data.{fmt}"
    frame = datasets.Dataset.from_list(rows)
    {"jsonl": frame.to_json, "csv": frame.to_csv, "parquet": frame.to_parquet}[fmt](str(path))
    data = load_summarization_data(str(path), streaming=True)
    assert isinstance(data, datasets.IterableDatasetDict) and isinstance(
        data["train"], datasets.IterableDataset
    )
    assert [row["article"] for row in data["train"]] == [row["article"] for row in rows]


def test_hub_name_streams_through_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def rows():
        yield from ({"article": r["article"], "abstract": r["abstract"]} for r in synthetic_rows(3, 0, "x"))

    def fake_load_dataset(path, name=None, **kwargs):  # stands in for the network call
        calls.append((path, name, kwargs))
        return datasets.IterableDatasetDict({"train": datasets.IterableDataset.from_generator(rows)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_summarization_data("ccdv/arxiv-summarization", config_name="section", streaming=True)
    assert calls[-1][:2] == ("ccdv/arxiv-summarization", "section") and calls[-1][2]["streaming"] is True
    assert isinstance(data["train"], datasets.IterableDataset) and len(list(data["train"])) == 3


def test_save_to_disk_folders(tmp_path: Path) -> None:
    saved = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(synthetic_rows(4, 0, "a")),
         "test": datasets.Dataset.from_list(synthetic_rows(2, 1, "b"))}
    )  # fmt: skip
    saved.save_to_disk(str(tmp_path / "dict"))
    saved["train"].save_to_disk(str(tmp_path / "one"))
    data = load_summarization_data(str(tmp_path / "dict"))
    assert {name: len(split) for name, split in data.items()} == {"train": 4, "test": 2}
    files = load_summarization_data({"train": tmp_path / "one", "test": tmp_path / "dict"})
    assert (len(files["train"]), len(files["test"])) == (4, 2)
    streamed = load_summarization_data(str(tmp_path / "dict"), streaming=True)
    assert isinstance(streamed["train"], datasets.IterableDataset) and len(list(streamed["test"])) == 2


def test_prepare_features_on_a_stream(tokenizer) -> None:
    rows = [{"article": "w1 w2 w3", "abstract": "w4"}, {"article": " ", "abstract": "w5"}]
    stream = datasets.IterableDataset.from_generator(lambda: iter(rows))
    features, report = prepare_features(stream, tokenizer, 8, 4)
    assert report is None and isinstance(features, datasets.IterableDataset)
    kept = list(features)
    assert len(kept) == 1 and kept[0]["labels"] == tokenizer(text_target="w4")["input_ids"]
    with pytest.raises(ValueError, match="num_proc"):
        prepare_features(stream, tokenizer, 8, 4, num_proc=2)


def test_streamed_local_data_trains_for_max_steps(tmp_path: Path, corpus) -> None:
    files, tokenizer = corpus
    argv = run_argv(
        files, tokenizer, tmp_path / "run", "--streaming", "--do_train", "--do_eval", "--max_steps", "3",
        "--max_eval_samples", "3", "--per_device_train_batch_size", "4", "--save_strategy", "no",
    )  # fmt: skip
    result = run_command_line(argv)
    assert result.metrics["train_steps"] == 3 and result.metrics["eval_samples"] == 3
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["train"]["streaming"] is True and report["validation"]["n_examples"] == 3


def test_streamed_evaluation_needs_a_limit_and_training_max_steps(tmp_path: Path, corpus) -> None:
    files, tokenizer = corpus
    base = run_argv(files, tokenizer, tmp_path / "run", "--streaming", "--max_steps", "2")
    with pytest.raises(ValueError, match="--max_eval_samples N"):
        run_command_line([*base, "--do_eval"])
    no_steps = run_argv(files, tokenizer, tmp_path / "run2", "--streaming", "--do_train")
    with pytest.raises(ValueError, match="--max_steps"):
        run_command_line(no_steps)
