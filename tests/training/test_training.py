"""What examples/run_summarization.py runs (`pyramidion_hf.training`), end to end: a real tiny Pyramidion,
a real tokenizer, a real Seq2SeqTrainer."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from run_helpers import (
    TINY_OVERRIDES,
    build_tokenizer,
    logged_losses,
    run_argv,
    run_command_line,
    synthetic_rows,
    write_corpus,
    write_jsonl,
)
from transformers import Seq2SeqTrainingArguments

from pyramidion_hf.training.arguments import DataArguments, ModelArguments, parse_args, parse_config_overrides
from pyramidion_hf.training.checkpoints import last_complete_checkpoint, resolve_checkpoint
from pyramidion_hf.training.launch import use_cpu_without_accelerator
from pyramidion_hf.training.metrics import ROUGE_KEYS
from pyramidion_hf.training.model_setup import build_model, load_tokenizer
from pyramidion_hf.training.summarization import RunResult


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
        "--push_to_hub", "--hub_model_id", "someone/tiny-pyramidion", "--hub_token", "not-a-real-token",
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            huggingface_hub.HfApi,
            "create_repo",
            lambda api, repo_id, **kw: hub.create_repo(api, repo_id, **kw),
        )
        patch.setattr(huggingface_hub.HfApi, "upload_folder", lambda api, **kw: hub.upload_folder(api, **kw))
        patch.setattr(huggingface_hub.HfApi, "whoami", lambda api, token=None, **kw: {"name": "someone"})
        result = run_command_line(argv)
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
        for key in ROUGE_KEYS:
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
    assert last_complete_checkpoint(output_dir) == str(output_dir / "checkpoint-16")
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
    result = run_command_line(argv)
    assert result.metrics["train_steps"] == 16
    assert len(logged_losses(output_dir)) == 16  # the 16 logged before, nothing retrained


# ------------------------------------------------------------------------------------------- bad input


def predict_only(files: dict[str, Path], tokenizer: Path, output_dir: Path, *extra: str) -> RunResult:
    """An untrained tiny model generating for the test split (fast)."""
    argv = run_argv(
        files, tokenizer, output_dir, "--do_predict", "--predict_with_generate", "--use_cpu", *extra
    )
    return run_command_line(argv)


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


def test_evaluate_and_predict_may_read_the_same_split(corpus, tmp_path: Path) -> None:
    files, tokenizer = corpus
    validation, same = {"validation": files["validation"]}, ("--do_eval", "--test_split", "validation")
    result = predict_only(validation, tokenizer, tmp_path / "a", *same)
    kept = result.data_report["validation"]["n_kept"]
    assert result.metrics["predict_samples"] == result.metrics["eval_samples"] == kept > 0
    assert list(result.data_report) == ["validation"]
    with pytest.raises(ValueError, match="read split 'validation' with different limits"):
        predict_only(validation, tokenizer, tmp_path / "b", *same, "--max_predict_samples", "2")


def test_missing_split_and_nothing_to_do_are_clear_errors(corpus, tmp_path: Path) -> None:
    files, tokenizer = corpus
    with pytest.raises(ValueError, match="has no split 'train'"):
        run_command_line(
            run_argv({"test": files["test"]}, tokenizer, tmp_path / "a", "--do_train", "--use_cpu")
        )
    with pytest.raises(ValueError, match="Nothing to do"):
        run_command_line(run_argv({"test": files["test"]}, tokenizer, tmp_path / "b", "--use_cpu"))


def test_model_source_must_be_exactly_one(corpus) -> None:
    _, tokenizer = corpus
    tok = load_tokenizer(ModelArguments(tokenizer_name=str(tokenizer)))
    with pytest.raises(ValueError, match="exactly one of --preset"):
        build_model(ModelArguments(), tok)
    with pytest.raises(ValueError, match="exactly one of --preset"):
        build_model(ModelArguments(preset="pyramidion", model_name_or_path="x"), tok)
    with pytest.raises(ValueError, match="--tokenizer_name"):
        load_tokenizer(ModelArguments(preset="pyramidion"))


def test_preset_model_takes_overrides_and_the_tokenizer_vocabulary(corpus) -> None:
    _, tokenizer = corpus
    tok = load_tokenizer(ModelArguments(tokenizer_name=str(tokenizer)))
    model = build_model(ModelArguments(preset="pyramidion", config_overrides=TINY_OVERRIDES), tok)
    assert model.config.vocab_size == len(tok) == 300
    assert (model.config.pad_token_id, model.config.eos_token_id) == (tok.pad_token_id, tok.eos_token_id)
    assert model.config.encoder_lengths == [64, 32, 16] and model.config.block_size == 16


def test_parse_config_overrides() -> None:
    parsed = parse_config_overrides("d_model=256, encoder_lengths=[2048,512], scorer=linear, block_size=None")
    assert parsed == {"d_model": 256, "encoder_lengths": [2048, 512], "scorer": "linear", "block_size": None}
    assert parse_config_overrides("dropout=0.1,use_cache=false") == {"dropout": 0.1, "use_cache": False}
    assert parse_config_overrides(None) == {}
    with pytest.raises(ValueError, match="not key=value"):
        parse_config_overrides("d_model")


def test_resume_target_selection(tmp_path: Path) -> None:
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), do_train=True, use_cpu=True, report_to="none")
    data_args = DataArguments()
    assert resolve_checkpoint(data_args, args) is None  # empty folder: train from scratch
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-6").mkdir()  # killed while writing: no trainer_state.json yet
    assert resolve_checkpoint(data_args, args) == str(tmp_path / "checkpoint-4")
    assert resolve_checkpoint(DataArguments(overwrite_output_dir=True), args) is None
    args.resume_from_checkpoint = str(tmp_path / "checkpoint-9")
    with pytest.raises(ValueError, match="is not a folder"):
        resolve_checkpoint(data_args, args)


def test_trained_model_without_checkpoints_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path), do_train=True, use_cpu=True, report_to="none")
    with pytest.raises(ValueError, match="--overwrite_output_dir"):
        resolve_checkpoint(DataArguments(), args)
    assert resolve_checkpoint(DataArguments(overwrite_output_dir=True), args) is None


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
    model_args, data_args, training_args = parse_args([str(path)])
    assert model_args.preset == "pyramidion" and data_args.max_source_length == 32 and training_args.do_train


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only fallback")
def test_cpu_fallback_only_when_launched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    use_cpu_without_accelerator()
    assert "ACCELERATE_USE_CPU" not in os.environ
    monkeypatch.setenv("WORLD_SIZE", "2")
    use_cpu_without_accelerator()
    assert os.environ["ACCELERATE_USE_CPU"] == "true"
