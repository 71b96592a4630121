"""Multi-process configs that do what they say: FSDP / DeepSpeed refuse to run as plain DDP on CPU, and
DeepSpeed without its package says which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_helpers import EXAMPLES

from pyramidion_hf.training import launch

BIN = Path(sys.executable).parent


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment of one of 2 processes started by accelerate launch, no accelerator."""
    for variable in (*launch.SHARDED_BACKENDS, "ACCELERATE_USE_CPU"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *args, **kwargs: None)
    return monkeypatch


@pytest.mark.parametrize(
    ("variable", "config"),
    [("ACCELERATE_USE_FSDP", "fsdp.yaml"), ("ACCELERATE_USE_DEEPSPEED", "deepspeed_zero2.yaml")],
)
def test_sharded_launch_on_cpu_is_refused(launched: pytest.MonkeyPatch, variable: str, config: str) -> None:
    launched.setenv(variable, "true")
    with pytest.raises(ValueError, match=f"{config}.*cpu_2proc.yaml"):
        launch.use_cpu_without_accelerator()
    assert "ACCELERATE_USE_CPU" not in os.environ  # it did not fall back to DDP


def test_plain_launch_on_cpu_still_uses_gloo(launched: pytest.MonkeyPatch) -> None:
    launch.use_cpu_without_accelerator()
    assert os.environ["ACCELERATE_USE_CPU"] == "true"


def test_deepspeed_without_the_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # as if it were not installed
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ValueError, match=r"pyramidion_hf\[deepspeed\]"):
        launch.check_sharded_backend(has_accelerator=True)


def test_deepspeed_extra_is_declared() -> None:
    import tomllib

    pyproject = tomllib.loads((EXAMPLES.parent / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["deepspeed"]
    assert any(requirement.startswith("deepspeed") for requirement in extra)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without GPU")
def test_accelerate_launch_fsdp_config_refuses_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ACCELERATE_USE_CPU", None)
    done = subprocess.run(
        [str(BIN / "accelerate"), "launch", "--config_file", str(EXAMPLES / "configs" / "fsdp.yaml"),
         str(EXAMPLES / "run_summarization.py"), "--preset", "pyramidion", "--do_train",
         "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("run_summarization.py: error:")]
    assert errors and all("fsdp.yaml" in line and "cpu_2proc.yaml" in line for line in errors)
    assert not (tmp_path / "out").exists()
