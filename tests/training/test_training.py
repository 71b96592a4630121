"""examples/run_summarization.py end to end: a real tiny Pyramidion, a real tokenizer, a real Seq2SeqTrainer.

Module helpers (`TINY_OVERRIDES`, `write_corpus`, `run_argv`, ...) are shared with test_resume.py,
test_multiprocess.py and test_examples.py.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(EXAMPLES))

import run_summarization as rs  # noqa: E402
import train_tokenizer as tokenizer_cli  # noqa: E402

TINY_OVERRIDES = (
    "max_position_embeddings=64,encoder_lengths=[64,32,16],block_size=16,d_model=32,encoder_attention_heads=2,"
    "decoder_attention_heads=2,encoder_ffn_dim=64,decoder_ffn_dim=64,decoder_layers=1,dropout=0.0,"
    "max_target_positions=64"
)
WORDS = (
    "we propose a model for long document summarization the encoder selects few tokens pooling attention "
    "results show gains over baselines on scientific papers data training decoder length blocks scores"
).split()


def synthetic_rows(n: int, seed: int, prefix: str) -> list[dict[str, str]]:
    """Documents of 2-4 short sentences; the summary is the first sentence (a learnable copy task)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 7))).capitalize() + "."
            for _ in range(rng.randint(2, 4))
        ]
        rows.append({"id": f"{prefix}-{i}", "article": " ".join(sentences), "abstract": sentences[0]})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One JSON object per line."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_corpus(folder: Path, n_train: int = 24, n_eval: int = 5, n_test: int = 5) -> dict[str, Path]:
    """train/validation/test .jsonl files of synthetic documents."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"train": n_train, "validation": n_eval, "test": n_test}
    return {
        split: write_jsonl(folder / f"{split}.jsonl", synthetic_rows(n, seed, split))
        for seed, (split, n) in enumerate(sizes.items())
    }


def build_tokenizer(folder: Path, train_file: Path) -> Path:
    """A 300-token BPE trained (through examples/train_tokenizer.py) on the train articles and summaries."""
    tokenizer_cli.build_tokenizer(str(train_file), folder, columns=("article", "abstract"), vocab_size=300)
    return folder


def run_argv(files: dict[str, Path], tokenizer: Path, output_dir: Path, *extra: str) -> list[str]:
    """Command line for a tiny run: preset + overrides, local files, CPU, no reporting."""
    argv = [
        "--preset", "pyramidion", "--config_overrides", TINY_OVERRIDES, "--tokenizer_name", str(tokenizer),
        "--max_target_length", "24", "--generation_max_length", "16", "--n_bootstrap", "100",
        "--output_dir", str(output_dir), "--report_to", "none", "--seed", "0", "--disable_tqdm", "true",
        "--per_device_eval_batch_size", "4", "--dataloader_pin_memory", "false",
    ]  # fmt: skip
    for split, path in files.items():
        argv += [f"--{split}_file", str(path)]
    return argv + list(extra)


def logged_losses(output_dir: Path) -> list[float]:
    """The training losses in output_dir/trainer_state.json, in step order."""
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    root = tmp_path_factory.mktemp("corpus")
    files = write_corpus(root)
    return files, build_tokenizer(root / "tokenizer", files["train"])


class FakeHub:
    """Records what `HfApi.create_repo` / `HfApi.upload_folder` would have sent to the Hub."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self, api: Any, repo_id: str, **kwargs: Any) -> Any:
        from huggingface_hub import RepoUrl

        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, api: Any, **kwargs: Any) -> None:
        self.calls.append(("upload_folder", kwargs))


@pytest.fixture(scope="module")
def trained(corpus: tuple[dict[str, Path], Path], tmp_path_factory: pytest.TempPathFactory):
    """One 16-step run: train + eval + predict with generate + Lead baseline + (faked) push to the Hub."""
    import huggingface_hub

    files, tokenizer = corpus
    output_dir = tmp_path_factory.mktemp("run") / "out"
    hub = FakeHub()
    argv = run_argv(
        files, tokenizer, output_dir,
        "--do_train", "--do_eval", "--do_predict", "--predict_with_generate", "--lead_baseline", "--use_cpu",
        "--max_steps", "16", "--per_device_train_batch_size", "4", "--learning_rate", "3e-3",
        "--logging_steps", "1", "--save_steps", "8",
        "--push_to_hub", "--hub_model_id", "someone/tiny-pyramidion",
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            huggingface_hub.HfApi,
            "create_repo",
            lambda api, repo_id, **kw: hub.create_repo(api, repo_id, **kw),
        )
        patch.setattr(huggingface_hub.HfApi, "upload_folder", lambda api, **kw: hub.upload_folder(api, **kw))
        result = rs.main(argv)
    return result, output_dir, hub


def test_training_loss_is_finite_and_decreases(trained) -> None:
    _, output_dir, _ = trained
    losses = logged_losses(output_dir)
    assert len(losses) == 16
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3, losses
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["train_steps"] == 16 and results["world_size"] == 1
    assert results["train_final_loss"] == pytest.approx(losses[-1])


def test_metrics_json_have_rouge_with_intervals(trained) -> None:
    result, output_dir, _ = trained
    results = json.loads((output_dir / "all_results.json").read_text())
    predict = json.loads((output_dir / "predict_results.json").read_text())
    lead = json.loads((output_dir / "lead_results.json").read_text())
    for prefix, source in (("eval", results), ("predict", predict), ("lead", lead)):
        for key in rs.ROUGE_TYPES:
            value, low, high = (source[f"{prefix}_{key}{s}"] for s in ("", "_low", "_high"))
            assert 0.0 <= low <= value <= high <= 100.0, (prefix, key, low, value, high)
    assert results["eval_samples"] == 5 and predict["predict_samples"] == 5 and lead["lead_samples"] == 5
    # the Lead summary of a document whose summary is its first sentence overlaps the reference
    assert lead["lead_rouge1"] > 30.0
    assert result.metrics["predict_rouge1"] == predict["predict_rouge1"]


def test_generated_predictions_and_data_report_are_written(trained) -> None:
    result, output_dir, _ = trained
    lines = (output_dir / "generated_predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [f"test-{i}" for i in range(5)]
    assert [r["prediction"] for r in records] == result.predictions
    assert all(r["reference"].endswith(".") for r in records)
    report = json.loads((output_dir / "data_report.json").read_text())
    assert set(report) == {"train", "validation", "test"}
    assert report["train"]["n_examples"] == report["train"]["n_kept"] == 24
    assert report["test"]["max_source_length"] == 64  # default = the model's max_position_embeddings


def test_checkpoints_and_final_model_reload(trained) -> None:
    from transformers import AutoModelForSeq2SeqLM

    _, output_dir, _ = trained
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-16", "checkpoint-8"]
    assert rs.last_complete_checkpoint(output_dir) == str(output_dir / "checkpoint-16")
    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    assert model.config.d_model == 32 and model.config.encoder_lengths == [64, 32, 16]
    assert model.generation_config.max_length == 16


def test_push_to_hub_uploads_the_exported_repo(trained) -> None:
    _, output_dir, hub = trained
    (create_name, create), (upload_name, upload) = hub.calls
    assert create_name == "create_repo" and create["repo_id"] == "someone/tiny-pyramidion"
    assert upload_name == "upload_folder" and upload["repo_id"] == "someone/tiny-pyramidion"
    folder = Path(upload["folder_path"])
    assert folder == output_dir / "hub"
    files = set(upload["allow_patterns"])
    for name in ("README.md", "config.json", "model.safetensors", "modeling_pyramidion.py", "tokenizer.json"):
        assert name in files and (folder / name).is_file()
    card = (folder / "README.md").read_text()
    predict = json.loads((output_dir / "predict_results.json").read_text())
    assert f"{predict['predict_rouge1']:.2f}" in card


def test_rerun_on_finished_output_dir_resumes_without_new_steps(trained, corpus) -> None:
    files, tokenizer = corpus
    _, output_dir, _ = trained
    argv = run_argv(
        {"train": files["train"]}, tokenizer, output_dir, "--do_train", "--use_cpu", "--max_steps", "16",
        "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--logging_steps", "1",
        "--save_steps", "8",
    )  # fmt: skip
    result = rs.main(argv)
    assert result.metrics["train_steps"] == 16
    assert len(logged_losses(output_dir)) == 16  # the 16 logged before, nothing retrained


# ------------------------------------------------------------------------------------------- bad input


def predict_only(files: dict[str, Path], tokenizer: Path, output_dir: Path, *extra: str) -> rs.RunResult:
    """An untrained tiny model generating for the test split (fast)."""
    argv = run_argv(
        files, tokenizer, output_dir, "--do_predict", "--predict_with_generate", "--use_cpu", *extra
    )
    return rs.main(argv)


def test_empty_article_is_skipped_counted_and_reported(corpus, tmp_path: Path) -> None:
    _, tokenizer = corpus
    rows = synthetic_rows(4, 7, "doc")
    rows[1]["article"] = "   "
    rows[2]["abstract"] = ""
    test = write_jsonl(tmp_path / "test.jsonl", rows)
    result = predict_only({"test": test}, tokenizer, tmp_path / "out", "--lead_baseline")
    report = result.data_report["test"]
    assert report["n_examples"] == 4 and report["n_kept"] == 2
    assert report["skipped"] == {"empty_article": 1, "empty_summary": 1}
    assert json.loads((tmp_path / "out" / "data_report.json").read_text())["test"] == report
    records = [json.loads(line) for line in (tmp_path / "out" / "generated_predictions.jsonl").open()]
    assert [r["id"] for r in records] == ["doc-0", "doc-3"]  # predictions stay aligned with their references
    assert result.metrics["predict_samples"] == 2 and result.metrics["lead_samples"] == 2


def test_document_longer_than_the_model_is_truncated_and_counted(corpus, tmp_path: Path) -> None:
    _, tokenizer = corpus
    rows = synthetic_rows(3, 8, "doc")
    rows[0]["article"] = " ".join([rows[0]["article"]] * 30)  # hundreds of tokens for a 64-token model
    test = write_jsonl(tmp_path / "test.jsonl", rows)
    result = predict_only({"test": test}, tokenizer, tmp_path / "out")
    report = result.data_report["test"]
    assert report["n_truncated_source"] >= 1 and report["source_tokens_max"] > 64
    assert report["n_kept"] == 3 and len(result.predictions) == 3


def test_missing_column_is_a_clear_error(corpus, tmp_path: Path) -> None:
    _, tokenizer = corpus
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "A document.", "summary": "A summary."}])
    with pytest.raises(ValueError, match="no column 'article'"):
        predict_only({"test": test}, tokenizer, tmp_path / "out")


def test_undecodable_file_is_a_clear_error(corpus, tmp_path: Path) -> None:
    _, tokenizer = corpus
    test = tmp_path / "test.jsonl"
    test.write_bytes(b'{"article": "caf\xe9 \xff\xfe", "abstract": "x"}\n')
    with pytest.raises(ValueError, match="UTF-8"):
        predict_only({"test": test}, tokenizer, tmp_path / "out")


def test_split_without_usable_rows_is_a_clear_error(corpus, tmp_path: Path) -> None:
    _, tokenizer = corpus
    test = write_jsonl(tmp_path / "test.jsonl", [{"article": "", "abstract": "A summary."}])
    with pytest.raises(ValueError, match="No usable example left in split 'test'"):
        predict_only({"test": test}, tokenizer, tmp_path / "out")


def test_source_length_beyond_the_model_is_a_clear_error(corpus, tmp_path: Path) -> None:
    files, tokenizer = corpus
    with pytest.raises(ValueError, match="exceeds the model's max_position_embeddings"):
        predict_only({"test": files["test"]}, tokenizer, tmp_path / "out", "--max_source_length", "128")


def test_missing_split_and_nothing_to_do_are_clear_errors(corpus, tmp_path: Path) -> None:
    files, tokenizer = corpus
    with pytest.raises(ValueError, match="has no split 'train'"):
        rs.main(run_argv({"test": files["test"]}, tokenizer, tmp_path / "a", "--do_train", "--use_cpu"))
    with pytest.raises(ValueError, match="Nothing to do"):
        rs.main(run_argv({"test": files["test"]}, tokenizer, tmp_path / "b", "--use_cpu"))


def test_model_source_must_be_exactly_one(corpus) -> None:
    _, tokenizer = corpus
    tok = rs.load_tokenizer(rs.ModelArguments(tokenizer_name=str(tokenizer)))
    with pytest.raises(ValueError, match="exactly one of --preset"):
        rs.build_model(rs.ModelArguments(), tok)
    with pytest.raises(ValueError, match="exactly one of --preset"):
        rs.build_model(rs.ModelArguments(preset="pyramidion", model_name_or_path="x"), tok)
    with pytest.raises(ValueError, match="--tokenizer_name"):
        rs.load_tokenizer(rs.ModelArguments(preset="pyramidion"))


def test_preset_model_takes_overrides_and_the_tokenizer_vocabulary(corpus) -> None:
    _, tokenizer = corpus
    tok = rs.load_tokenizer(rs.ModelArguments(tokenizer_name=str(tokenizer)))
    model = rs.build_model(rs.ModelArguments(preset="pyramidion", config_overrides=TINY_OVERRIDES), tok)
    assert model.config.vocab_size == len(tok) == 300
    assert (model.config.pad_token_id, model.config.eos_token_id) == (tok.pad_token_id, tok.eos_token_id)
    assert model.config.encoder_lengths == [64, 32, 16] and model.config.block_size == 16


def test_parse_config_overrides() -> None:
    parsed = rs.parse_config_overrides(
        "d_model=256, encoder_lengths=[2048,512], scorer=linear, block_size=None"
    )
    assert parsed == {"d_model": 256, "encoder_lengths": [2048, 512], "scorer": "linear", "block_size": None}
    assert rs.parse_config_overrides("dropout=0.1,use_cache=false") == {"dropout": 0.1, "use_cache": False}
    assert rs.parse_config_overrides(None) == {}
    with pytest.raises(ValueError, match="not key=value"):
        rs.parse_config_overrides("d_model")


def test_resume_target_selection(tmp_path: Path) -> None:
    args = rs.Seq2SeqTrainingArguments(
        output_dir=str(tmp_path), do_train=True, use_cpu=True, report_to="none"
    )
    data_args = rs.DataArguments()
    assert rs.resolve_checkpoint(data_args, args) is None  # empty folder: train from scratch
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-6").mkdir()  # killed while writing: no trainer_state.json yet
    assert rs.resolve_checkpoint(data_args, args) == str(tmp_path / "checkpoint-4")
    assert rs.resolve_checkpoint(rs.DataArguments(overwrite_output_dir=True), args) is None
    args.resume_from_checkpoint = str(tmp_path / "checkpoint-9")
    with pytest.raises(ValueError, match="is not a folder"):
        rs.resolve_checkpoint(data_args, args)


def test_trained_model_without_checkpoints_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    args = rs.Seq2SeqTrainingArguments(
        output_dir=str(tmp_path), do_train=True, use_cpu=True, report_to="none"
    )
    with pytest.raises(ValueError, match="--overwrite_output_dir"):
        rs.resolve_checkpoint(rs.DataArguments(), args)
    assert rs.resolve_checkpoint(rs.DataArguments(overwrite_output_dir=True), args) is None


def test_json_argument_file(tmp_path: Path) -> None:
    path = tmp_path / "args.json"
    path.write_text(
        json.dumps(
            {
                "preset": "pyramidion",
                "output_dir": str(tmp_path),
                "do_train": True,
                "max_source_length": 32,
                "use_cpu": True,
            }
        )
    )
    model_args, data_args, training_args = rs.parse_args([str(path)])
    assert model_args.preset == "pyramidion" and data_args.max_source_length == 32 and training_args.do_train


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_cpu_fallback_only_when_launched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    rs.use_cpu_without_accelerator()
    assert "ACCELERATE_USE_CPU" not in os.environ
    monkeypatch.setenv("WORLD_SIZE", "2")
    rs.use_cpu_without_accelerator()
    assert os.environ["ACCELERATE_USE_CPU"] == "true"
