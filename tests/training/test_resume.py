"""A run SIGKILLed after its first checkpoint resumes from it and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from run_helpers import build_tokenizer, logged_losses, run_argv, run_command_line, write_corpus
from safetensors.torch import load_file

# Runs what examples/run_summarization.py runs, with an optional pause after each step (RESUME_TEST_STEP_SLEEP
# seconds), so that the test can kill it mid-way at a predictable point.
WRAPPER = """
import os, sys, time
from transformers import TrainerCallback
from pyramidion_hf.training.arguments import parse_args
from pyramidion_hf.training.launch import setup_logging
from pyramidion_hf.training.summarization import run

class Pause(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(float(os.environ.get("RESUME_TEST_STEP_SLEEP", "0")))

model_args, data_args, training_args = parse_args(sys.argv[1:])
setup_logging(training_args)
run(model_args, data_args, training_args, callbacks=[Pause()])
"""
MAX_STEPS = 12


def command(wrapper: Path, files: dict[str, Path], tokenizer: Path, output_dir: Path) -> list[str]:
    argv = run_argv(
        {"train": files["train"]}, tokenizer, output_dir, "--do_train", "--use_cpu",
        "--max_steps", str(MAX_STEPS), "--per_device_train_batch_size", "4", "--learning_rate", "3e-3",
        "--logging_steps", "1", "--save_steps", "3", "--save_total_limit", "2", "--data_seed", "0",
    )  # fmt: skip
    return [sys.executable, str(wrapper), *argv]


def environment(sleep: float) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "RESUME_TEST_STEP_SLEEP": str(sleep),
    }


def complete_checkpoints(output_dir: Path) -> list[int]:
    """Steps of the checkpoints whose trainer_state.json (written last) is readable."""
    steps = []
    for path in output_dir.glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        steps.append(int(path.name.split("-")[1]))
    return sorted(steps)


def test_sigkilled_run_resumes_to_the_same_end(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "data")
    tokenizer = build_tokenizer(tmp_path / "tokenizer", files["train"])
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    reference_dir, resumed_dir = tmp_path / "uninterrupted", tmp_path / "resumed"

    reference = subprocess.Popen(  # runs to the end beside the run that gets killed
        command(wrapper, files, tokenizer, reference_dir),
        env=environment(0.0),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "reference.log").open("w"),
    )
    victim = subprocess.Popen(
        command(wrapper, files, tokenizer, resumed_dir),
        env=environment(0.4),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not complete_checkpoints(resumed_dir) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = complete_checkpoints(resumed_dir)
    assert killed_at and killed_at[-1] < MAX_STEPS
    assert not (resumed_dir / "model.safetensors").exists()  # the final model was never written

    assert reference.wait(timeout=240) == 0, (tmp_path / "reference.log").read_text()[-3000:]

    resumed = subprocess.run(
        command(wrapper, files, tokenizer, resumed_dir), env=environment(0.0), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {resumed_dir / f'checkpoint-{killed_at[-1]}'}" in resumed.stdout + resumed.stderr

    reference_state = json.loads((reference_dir / "trainer_state.json").read_text())
    resumed_state = json.loads((resumed_dir / "trainer_state.json").read_text())
    assert resumed_state["global_step"] == reference_state["global_step"] == MAX_STEPS
    reference_losses, resumed_losses = logged_losses(reference_dir), logged_losses(resumed_dir)
    assert len(resumed_losses) == len(reference_losses) == MAX_STEPS
    assert resumed_losses == pytest.approx(reference_losses, rel=1e-4)
    expected, final = (
        load_file(reference_dir / "model.safetensors"),
        load_file(resumed_dir / "model.safetensors"),
    )
    assert expected.keys() == final.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def test_rerun_refuses_another_architecture_and_skips_a_cut_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """In-process reruns in the same output_dir: other --config_overrides are refused before training; a
    newest checkpoint with a cut weights file is skipped (kept on disk); training resumes from the last."""
    files = write_corpus(tmp_path / "data")
    tokenizer = build_tokenizer(tmp_path / "tokenizer", files["train"])
    output_dir = tmp_path / "out"
    argv = run_argv(
        {"train": files["train"]}, tokenizer, output_dir, "--do_train", "--use_cpu", "--max_steps", "4",
        "--per_device_train_batch_size", "4", "--save_steps", "2", "--logging_steps", "1",
    )  # fmt: skip
    run_command_line(argv)

    wider = [arg.replace("d_model=32", "d_model=64") for arg in argv]
    with pytest.raises(ValueError, match="holds another architecture than this run builds") as caught:
        run_command_line(wider)
    assert "d_model: checkpoint 32, this run 64" in str(caught.value)

    weights = output_dir / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with caplog.at_level(logging.INFO, logger="pyramidion_hf"):
        result = run_command_line(argv)
    assert "model.safetensors is cut or unreadable" in caplog.text
    assert f"Resuming from {output_dir / 'checkpoint-2'}" in caplog.text
    assert result.metrics["train_steps"] == 4
    assert json.loads((output_dir / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    load_file(weights)  # saved again, complete, by the resumed run
