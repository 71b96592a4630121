"""Data-parallel training on CPU over gloo: torchrun (and accelerate launch) with two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from run_helpers import (
    EXAMPLES,
    build_tokenizer,
    logged_losses,
    run_argv,
    run_command_line,
    write_corpus,
)

import pyramidion_hf.modeling.modeling_pyramidion as modeling
from pyramidion_hf.training.metrics import ROUGE_KEYS

SCRIPT = str(EXAMPLES / "run_summarization.py")
BIN = Path(sys.executable).parent


def two_process_argv(files: dict[str, Path], tokenizer: Path, output_dir: Path, batch: int) -> list[str]:
    """4 steps of `batch` examples per process, eval + predict with generate on 5 documents."""
    return run_argv(
        files, tokenizer, output_dir, "--do_train", "--do_eval", "--do_predict", "--predict_with_generate",
        "--max_steps", "4", "--per_device_train_batch_size", str(batch), "--per_device_eval_batch_size", "2",
        "--learning_rate", "3e-3", "--logging_steps", "1", "--save_steps", "4", "--data_seed", "0",
        "--ddp_find_unused_parameters", "false", "--log_level", "info",
    )  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    files = write_corpus(root / "data")
    return files, build_tokenizer(root / "tokenizer", files["train"]), root


@pytest.fixture(scope="module")
def single(setup) -> Path:
    """The single-process reference: one process, global batch 4."""
    files, tokenizer, root = setup
    run_command_line([*two_process_argv(files, tokenizer, root / "single", batch=4), "--use_cpu"])
    return root / "single"


def launch(launcher: list[str], output_dir: Path, files: dict[str, Path], tokenizer: Path) -> str:
    """Run the script under a 2-process launcher (2 examples per process); returns its combined output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the installed package: no PYTHONPATH
    env.pop("ACCELERATE_USE_CPU", None)
    done = subprocess.run(
        [*launcher, SCRIPT, *two_process_argv(files, tokenizer, output_dir, batch=2)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


def check_two_process_run(output: str, output_dir: Path, single: Path) -> None:
    """Both ranks trained together, rank 0 alone wrote, eval covers every document once, loss not doubled."""
    assert "Process rank 0 / world size 2" in output and "Process rank 1 / world size 2" in output
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["world_size"] == 2
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-4"]
    rng_states = sorted(p.name for p in (output_dir / "checkpoint-4").glob("rng_state*"))
    assert rng_states == ["rng_state_0.pth", "rng_state_1.pth"]  # each rank saved its RNG, once
    # gathered over both ranks: every one of the 5 documents exactly once (5 is not a multiple of 2 x 2)
    assert results["eval_samples"] == results["predict_samples"] == 5
    records = [json.loads(line) for line in (output_dir / "generated_predictions.jsonl").open()]
    assert [r["id"] for r in records] == [f"test-{i}" for i in range(5)]
    for key in ROUGE_KEYS:
        assert results[f"predict_{key}_low"] <= results[f"predict_{key}"] <= results[f"predict_{key}_high"]
    # same global batch (2 x 2 vs 1 x 4), same data order and init: the same losses, so neither the loss nor
    # (since the updates match from step 2 on) the gradients are multiplied by the world size
    assert logged_losses(output_dir) == pytest.approx(logged_losses(single), rel=2e-3)
    single_results = json.loads((single / "all_results.json").read_text())
    assert results["predict_loss"] == pytest.approx(single_results["predict_loss"], rel=2e-3)


def test_torchrun_two_processes_train_like_one(setup, single: Path) -> None:
    files, tokenizer, root = setup
    launcher = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2"]
    output = launch(launcher, root / "torchrun", files, tokenizer)
    check_two_process_run(output, root / "torchrun", single)


@pytest.mark.slow
def test_accelerate_launch_two_processes_train_like_one(setup, single: Path) -> None:
    files, tokenizer, root = setup
    launcher = [
        str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip
    output = launch(launcher, root / "accelerate", files, tokenizer)
    check_two_process_run(output, root / "accelerate", single)


@pytest.mark.slow
def test_accelerate_config_file_cpu_2proc(setup, single: Path) -> None:
    files, tokenizer, root = setup
    launcher = [
        str(BIN / "accelerate"),
        "launch",
        "--config_file",
        str(EXAMPLES / "configs" / "cpu_2proc.yaml"),
    ]
    output = launch(launcher, root / "accelerate_config", files, tokenizer)
    check_two_process_run(output, root / "accelerate_config", single)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("multi_gpu", "MULTI_GPU"),
        ("cpu_2proc", "MULTI_GPU"),
        ("deepspeed_zero2", "DEEPSPEED"),
        ("fsdp", "FSDP"),
    ],
)
def test_accelerate_configs_load_and_name_real_layers(name: str, kind: str) -> None:
    path = EXAMPLES / "configs" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert config.distributed_type.name == kind and config.num_processes == 2 and config.num_machines == 1
    assert "accelerate launch --config_file examples/configs/" in path.read_text()  # says how to launch
    if kind == "FSDP":
        wrapped = config.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")
        assert wrapped and all(isinstance(getattr(modeling, cls, None), type) for cls in wrapped)
        assert set(wrapped) <= set(modeling.PyramidionPreTrainedModel._no_split_modules)
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 2
