"""What the training script refuses before it trains: a foreign --output_dir, a finished run, a tokenizer that
does not fit the model, a checkpoint of another architecture or with a cut file, an empty data file, and
--push_to_hub without a token or a reachable Hub (the Hub is always mocked)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import huggingface_hub
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from run_helpers import EXAMPLES, TINY_OVERRIDES, build_tokenizer, run_argv, synthetic_rows, write_jsonl
from safetensors.torch import save_file
from transformers import Seq2SeqTrainingArguments

from pyramidion_hf.presets import get_preset
from pyramidion_hf.training import preflight as preflight_module
from pyramidion_hf.training.arguments import DataArguments, ModelArguments, parse_config_overrides
from pyramidion_hf.training.checkpoints import (
    check_checkpoint_matches,
    last_complete_checkpoint,
    resolve_checkpoint,
)
from pyramidion_hf.training.data import load_summarization_data
from pyramidion_hf.training.features import prepare_features
from pyramidion_hf.training.model_setup import build_model, load_tokenizer
from pyramidion_hf.training.preflight import check_hub_access, check_output_dir

SCRIPT = str(EXAMPLES / "run_summarization.py")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("preflight")
    train = write_jsonl(root / "train.jsonl", synthetic_rows(24, 0, "train"))
    return build_tokenizer(root / "tokenizer", train)


def training_args(output_dir: Path, **kwargs: Any) -> Seq2SeqTrainingArguments:
    return Seq2SeqTrainingArguments(
        output_dir=str(output_dir), do_train=True, use_cpu=True, report_to="none", **kwargs
    )


def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """examples/run_summarization.py in a child process, one thread, no Hub."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    environment.pop("PYRAMIDION_DEBUG", None)
    return subprocess.run(
        [sys.executable, SCRIPT, *args], env=environment, capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], phrase: str, alone: bool = True) -> None:
    """Exit status 2, no traceback, the error (with `phrase`) on one line, last on stderr; `alone`: the only
    line (a failure after the model loaded follows transformers' INFO log, which goes to stderr)."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 or not alone, done.stderr[-3000:]
    assert lines[-1].startswith("run_summarization.py: error: ") and phrase in lines[-1], lines[-1]


# ------------------------------------------------------------------------------------------- output dir


def test_foreign_output_dir_is_refused_unless_overwritten(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone else's file")
    with pytest.raises(ValueError, match="holds no checkpoint or results of a run"):
        check_output_dir(DataArguments(), training_args(tmp_path))
    check_output_dir(DataArguments(overwrite_output_dir=True), training_args(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "someone else's file"


@pytest.mark.parametrize("marker", ["checkpoint-3", "all_results.json", "data_report.json", "config.json"])
def test_output_dir_of_a_run_is_accepted(tmp_path: Path, marker: str) -> None:
    (tmp_path / "notes.txt").write_text("x")
    if marker.startswith("checkpoint"):
        (tmp_path / marker).mkdir()
    else:
        (tmp_path / marker).write_text("{}")
    check_output_dir(DataArguments(), training_args(tmp_path))
    check_output_dir(DataArguments(), training_args(tmp_path / "missing"))  # created by the run


def test_finished_run_without_checkpoints_says_so(tmp_path: Path) -> None:
    (tmp_path / "all_results.json").write_text("{}")
    with pytest.raises(ValueError, match=r"results of a finished run: all_results\.json"):
        resolve_checkpoint(DataArguments(), training_args(tmp_path))


def test_script_refuses_a_foreign_output_dir_in_one_line(tmp_path: Path, tokenizer_dir: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    done = run_script(*run_argv({}, tokenizer_dir, out, "--do_train", "--use_cpu"))
    assert_one_line_error(done, "holds no checkpoint or results of a run")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


# --------------------------------------------------------------------------------- tokenizer vs model


@pytest.mark.parametrize(
    ("override", "phrase"),
    [
        ("vocab_size=100", "has 300 tokens but the model's vocab_size is 100"),
        ("pad_token_id=7", "tokenizer.pad_token_id = 1 but config.pad_token_id = 7"),
    ],
)
def test_tokenizer_that_does_not_fit_the_model_is_refused(
    tokenizer_dir: Path, override: str, phrase: str
) -> None:
    model_args = ModelArguments(
        preset="pyramidion",
        config_overrides=f"{TINY_OVERRIDES},{override}",
        tokenizer_name=str(tokenizer_dir),
    )
    with pytest.raises(ValueError, match=phrase) as caught:
        build_model(model_args, load_tokenizer(model_args))
    assert "resize_token_embeddings" in str(caught.value)


def test_saved_model_with_a_larger_tokenizer_is_refused(tmp_path: Path, tokenizer_dir: Path) -> None:
    from pyramidion_hf import PyramidionForConditionalGeneration

    config = get_preset("pyramidion", **{**parse_config_overrides(TINY_OVERRIDES), "vocab_size": 120})
    PyramidionForConditionalGeneration(config).save_pretrained(tmp_path / "small")
    model_args = ModelArguments(model_name_or_path=str(tmp_path / "small"), tokenizer_name=str(tokenizer_dir))
    with pytest.raises(ValueError, match="vocab_size is 120"):
        build_model(model_args, load_tokenizer(model_args))


# -------------------------------------------------------------------------------------------- resuming


def tiny_config(preset: str = "pyramidion", **overrides: Any) -> Any:
    specials = {"vocab_size": 300, "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
    return get_preset(preset, **{**parse_config_overrides(TINY_OVERRIDES), **specials, **overrides})


def write_checkpoint(folder: Path, step: int, config: Any) -> Path:
    """A checkpoint-N folder as the Trainer writes it (config, weights, optimizer, trainer_state last)."""
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    config.save_pretrained(path)
    save_file({"weight": torch.ones(64)}, str(path / "model.safetensors"))
    torch.save({"state": {}}, path / "optimizer.pt")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        ({"d_model": 64}, "d_model: checkpoint 32, this run 64"),
        ({"encoder_lengths": [64, 16]}, "encoder_lengths: checkpoint [64, 32, 16], this run [64, 16]"),
        ({"preset": "blockwise"}, "preset: checkpoint 'table7-24', this run 'table2-5'"),  # canonical names
    ],
)
def test_checkpoint_of_another_architecture_is_refused(
    tmp_path: Path, overrides: dict[str, Any], phrase: str
) -> None:
    checkpoint = write_checkpoint(tmp_path, 4, tiny_config())
    with pytest.raises(ValueError, match="holds another architecture than this run builds") as caught:
        check_checkpoint_matches(checkpoint, tiny_config(**overrides))
    assert phrase in str(caught.value) and "--overwrite_output_dir" in str(caught.value)


def test_checkpoint_of_the_same_architecture_is_accepted(tmp_path: Path) -> None:
    checkpoint = write_checkpoint(tmp_path, 4, tiny_config())
    check_checkpoint_matches(checkpoint, tiny_config(dropout=0.3))  # regularisation is not architecture


@pytest.mark.parametrize("cut", ["model.safetensors", "optimizer.pt", "config.json"])
def test_cut_newest_checkpoint_falls_back_to_the_previous_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cut: str
) -> None:
    write_checkpoint(tmp_path, 2, tiny_config())
    newest = write_checkpoint(tmp_path, 4, tiny_config())
    data = (newest / cut).read_bytes()
    (newest / cut).write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert f"{cut} is cut or unreadable" in caplog.text and "left in place" in caplog.text
    assert (newest / cut).read_bytes() == data[: len(data) // 2]  # nothing deleted or rewritten

    args = training_args(tmp_path, resume_from_checkpoint=str(newest))
    with pytest.raises(ValueError, match=f"cannot be resumed from: {cut} is cut or unreadable"):
        resolve_checkpoint(DataArguments(), args)


# ------------------------------------------------------------------------------------------------ data


def write_empty(path: Path) -> Path:
    if path.suffix == ".parquet":
        schema = {"article": pa.array([], pa.string()), "abstract": pa.array([], pa.string())}
        pq.write_table(pa.table(schema), path)
    elif path.name.startswith("header"):
        path.write_text("article,abstract\n")
    else:
        path.write_text("" if path.name.startswith("empty") else "\n\n")
    return path


@pytest.mark.parametrize("name", ["empty.jsonl", "blank.jsonl", "empty.csv", "header.csv", "empty.parquet"])
def test_data_file_without_rows_says_so(tmp_path: Path, name: str) -> None:
    path = write_empty(tmp_path / name)
    with pytest.raises(ValueError, match=f"the file {path} has no rows"):
        load_summarization_data({"train": path})


def test_split_without_rows_says_so() -> None:
    import datasets

    full = datasets.Dataset.from_dict(
        {"article": ["a b"], "abstract": ["a"]}, split=datasets.NamedSplit("validation")
    )
    with pytest.raises(ValueError, match="the split 'validation' has no rows"):
        prepare_features(full.select([]), None, 16, 16)


def test_script_refuses_an_empty_data_file_in_one_line(tmp_path: Path, tokenizer_dir: Path) -> None:
    empty = write_empty(tmp_path / "empty.jsonl")
    done = run_script(*run_argv({"train": empty}, tokenizer_dir, tmp_path / "out", "--do_train", "--use_cpu"))
    assert_one_line_error(done, f"the file {empty} has no rows", alone=False)


# ------------------------------------------------------------------------------------------------- Hub


class Whoami:
    """Stands in for `HfApi.whoami`: records the token, then answers or raises."""

    def __init__(self, answer: dict[str, Any] | None = None, error: Exception | None = None) -> None:
        self.answer, self.error, self.tokens = answer, error, []

    def __call__(self, token: Any) -> dict[str, Any]:
        self.tokens.append(token)
        if self.error is not None:
            raise self.error
        return self.answer or {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> Whoami:
        monkeypatch.setattr(huggingface_hub.HfApi, "whoami", lambda api, token=None, **kw: self(token))
        return self


def http_error(status: int) -> HfHubHTTPError:
    request = httpx2.Request("GET", "https://huggingface.co/api/whoami-v2")
    return HfHubHTTPError("Invalid user token.", response=httpx2.Response(status, request=request))


def hub_args(tmp_path: Path, token: str | None = "hf_test") -> Seq2SeqTrainingArguments:
    return training_args(tmp_path, hub_model_id="someone/model", hub_token=token)


def test_hub_access_is_one_whoami_call_with_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whoami = Whoami({"name": "someone", "auth": {"accessToken": {"role": "write"}}}).install(monkeypatch)
    assert check_hub_access(hub_args(tmp_path)) == "someone"
    assert whoami.tokens == ["hf_test"]


@pytest.mark.parametrize(
    ("answer", "error", "phrase"),
    [
        (None, OfflineModeIsEnabled("offline"), "offline mode on (HF_HUB_OFFLINE=1)"),
        (None, httpx2.ConnectError("[Errno 111] Connection refused"), "cannot reach the Hugging Face Hub"),
        (None, http_error(401), "the Hub refused the token (HTTP 401)"),
        ({"name": "x", "auth": {"accessToken": {"role": "read"}}}, None, "the token is read-only"),
    ],
)
def test_hub_access_failures_are_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: Any, error: Any, phrase: str
) -> None:
    Whoami(answer, error).install(monkeypatch)
    with pytest.raises(ValueError, match="--push_to_hub") as caught:
        check_hub_access(hub_args(tmp_path))
    assert phrase in str(caught.value)


def test_hub_access_needs_a_token_and_a_valid_repo_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preflight_module, "get_token", lambda: None)
    Whoami(error=AssertionError("whoami without a token")).install(monkeypatch)
    with pytest.raises(ValueError, match="--push_to_hub needs a Hugging Face token"):
        check_hub_access(hub_args(tmp_path, token=None))
    with pytest.raises(HFValidationError):
        check_hub_access(training_args(tmp_path, hub_model_id="not a/valid id", hub_token="hf_test"))


def test_script_push_to_hub_offline_fails_before_training(tmp_path: Path, tokenizer_dir: Path) -> None:
    out = tmp_path / "out"
    argv = run_argv({}, tokenizer_dir, out, "--do_train", "--use_cpu", "--max_steps", "2")
    done = run_script(*argv, "--push_to_hub", "--hub_model_id", "someone/model", "--hub_token", "hf_test")
    assert_one_line_error(done, "--push_to_hub with offline mode on")
    assert not out.exists() or not any(out.glob("checkpoint-*"))


@pytest.mark.parametrize("fast", [True, False])
def test_bf16_on_a_cpu_without_bf16_units_is_warned(tmp_path, monkeypatch, caplog, fast):
    monkeypatch.setattr(preflight_module, "cpu_has_fast_bf16", lambda: fast)
    with caplog.at_level("WARNING", logger=preflight_module.__name__):
        preflight_module.warn_emulated_bf16(training_args(tmp_path, bf16=True))
        preflight_module.warn_emulated_bf16(training_args(tmp_path))  # fp32: nothing to say
    warnings = [r.getMessage() for r in caplog.records if "no bf16 units" in r.getMessage()]
    assert len(warnings) == (0 if fast else 1)
    assert fast or "Drop --bf16 to train in fp32" in warnings[0]
