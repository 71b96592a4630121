"""bf16 training through the training script (`--bf16 --use_cpu`, autocast with fp32 master weights) and the
demo's choice of dtype."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from run_helpers import build_tokenizer, logged_losses, run_argv, run_command_line, write_corpus
from safetensors.torch import load_file

from pyramidion_hf.modeling import modeling_pyramidion
from pyramidion_hf.modeling.precision import lm_head_logits
from pyramidion_hf.training.demo import FULL, FULL_BF16, SMOKE, demo_arguments, demo_size
from pyramidion_hf.training.results import training_summary


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path]:
    root = tmp_path_factory.mktemp("bf16-corpus")
    files = write_corpus(root, n_eval=3, n_test=3)
    return files, build_tokenizer(root / "tokenizer", files["train"])


@pytest.mark.parametrize(
    "overrides",
    ["", ",scorer=power,topk=hard", ",encoder_attention=lsh,lsh_bucket_size=8,local_attention_heads=1"],
    ids=["pyramidion", "power-like", "lsh"],
)
def test_bf16_run_trains_evaluates_and_keeps_fp32_weights(corpus, tmp_path: Path, overrides: str) -> None:
    files, tokenizer = corpus
    argv = run_argv(
        files, tokenizer, tmp_path / "out", "--do_train", "--do_eval", "--max_steps", "4",
        "--per_device_train_batch_size", "4", "--bf16", "--use_cpu", "--logging_steps", "1",
    )  # fmt: skip
    if overrides:
        index = argv.index("--config_overrides") + 1
        argv[index] += overrides
    result = run_command_line(argv)
    losses = logged_losses(tmp_path / "out")
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert math.isfinite(result.metrics["eval_loss"])
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))  # saved in their fp32 master dtype
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}


def test_bf16_predict_generates_every_token_from_fp32_logits(corpus, tmp_path: Path, monkeypatch) -> None:
    """`--bf16 --predict_with_generate`: accelerate runs each forward of generate() under autocast; the logits
    that pick the tokens are still fp32 (bf16 ones tie and change the summaries)."""
    files, tokenizer = corpus
    calls = []

    def recorded(head: torch.nn.Linear, hidden: torch.Tensor, for_loss: bool = False) -> torch.Tensor:
        logits = lm_head_logits(head, hidden, for_loss=for_loss)
        calls.append((torch.is_autocast_enabled("cpu"), torch.is_grad_enabled(), logits.dtype))
        return logits

    monkeypatch.setattr(modeling_pyramidion, "lm_head_logits", recorded)
    argv = run_argv(
        files, tokenizer, tmp_path / "out", "--do_predict", "--predict_with_generate", "--bf16", "--use_cpu"
    )
    result = run_command_line(argv)
    assert math.isfinite(result.metrics["predict_rouge1"])
    assert len(calls) >= 2 and set(calls) == {(True, False, torch.float32)}


def test_demo_picks_the_bf16_profile_only_when_asked() -> None:
    assert demo_size(bf16=True) == FULL_BF16 and FULL_BF16.bf16 and not FULL.bf16
    assert FULL_BF16.max_steps > FULL.max_steps  # the time bf16 saves buys steps
    assert demo_size(smoke=True, bf16=True).bf16 and not demo_size(smoke=True).bf16
    assert demo_size(smoke=True, bf16=True).max_steps == SMOKE.max_steps
    _, _, training_args = demo_arguments(FULL_BF16, Path("out"), preset="pyramidion", seed=0, n_bootstrap=0)
    assert training_args.bf16
    assert training_summary(training_args)["precision"] == "bf16 autocast, fp32 master weights"
    _, _, training_args = demo_arguments(FULL, Path("out"), preset="pyramidion", seed=0, n_bootstrap=0)
    assert training_summary(training_args)["precision"] == "fp32"
