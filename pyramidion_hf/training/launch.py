"""Process setup of a training run: logging per rank, CPU data parallelism under torchrun, the process group.

Launched by `torchrun` or `accelerate launch` on a machine without GPU, the processes train together over
gloo (`ACCELERATE_USE_CPU`); a launch whose processes do not form one group is refused, and so is an FSDP or
DeepSpeed launch that would silently run as plain DDP on CPU or that lacks the `deepspeed` package.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

import datasets
import torch
import transformers
from transformers import Seq2SeqTrainingArguments

logger = logging.getLogger(__name__)
PACKAGE_LOGGER = "pyramidion_hf"


def setup_logging(training_args: Seq2SeqTrainingArguments) -> None:
    """INFO on the main process, warnings elsewhere (the package's, transformers' and datasets' loggers)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    logging.getLogger(PACKAGE_LOGGER).setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


# what `accelerate launch` exports for each sharded backend, with the config file of examples/configs/
SHARDED_BACKENDS = {
    "ACCELERATE_USE_FSDP": ("FSDP", "examples/configs/fsdp.yaml"),
    "ACCELERATE_USE_DEEPSPEED": ("DeepSpeed", "examples/configs/deepspeed_zero2.yaml"),
}
DEEPSPEED_HINT = "pip install 'pyramidion_hf[deepspeed]' (or pip install deepspeed)"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def check_sharded_backend(has_accelerator: bool) -> None:
    """Refuse an FSDP / DeepSpeed launch without GPU (accelerate would run plain DDP on CPU instead) and a
    DeepSpeed launch without the `deepspeed` package, in one line saying what to use instead."""
    for variable, (backend, config) in SHARDED_BACKENDS.items():
        if not _env_flag(variable):
            continue
        if not has_accelerator:
            raise ValueError(
                f"{backend} ({config}) shards the model across GPUs and this machine has none: on CPU use "
                "accelerate launch --config_file examples/configs/cpu_2proc.yaml (DDP over gloo) or torchrun."
            )
        if backend == "DeepSpeed" and importlib.util.find_spec("deepspeed") is None:
            raise ValueError(f"{backend} ({config}) needs the deepspeed package: {DEEPSPEED_HINT}.")


def use_cpu_without_accelerator() -> None:
    """Under torchrun on a machine without GPU, make the Trainer run DDP on CPU over gloo.

    Without this (or --use_cpu), accelerate sees no device backend and every process trains alone with world
    size 1, all writing the same output_dir. FSDP / DeepSpeed launches are checked first
    (`check_sharded_backend`). Call it before the training arguments are parsed.
    """
    has_accelerator = torch.accelerator.current_accelerator() is not None
    check_sharded_backend(has_accelerator)
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "LOCAL_RANK" in os.environ
    if launched and not has_accelerator:
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")


def check_world_size(training_args: Seq2SeqTrainingArguments) -> None:
    """Refuse to run processes that were launched together but do not form one process group."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and training_args.world_size != launched:
        raise ValueError(
            f"{launched} processes were launched but the Trainer sees world size {training_args.world_size}: "
            "on a machine without GPU pass --use_cpu (or ACCELERATE_USE_CPU=true) so they train together."
        )
    logger.warning(
        "Process rank %s / world size %s, device %s",
        training_args.process_index,
        training_args.world_size,
        training_args.device,
    )


def end_process_group() -> None:
    """Tear the process group of a multi-process run down (a no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
