"""Process setup of a training run: logging per rank, CPU data parallelism under torchrun, the process group.

Launched by `torchrun` or `accelerate launch` on a machine without GPU, the processes train together over
gloo (`ACCELERATE_USE_CPU`); a launch whose processes do not form one group is refused.
"""

from __future__ import annotations

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


def use_cpu_without_accelerator() -> None:
    """Under torchrun on a machine without GPU, make the Trainer run DDP on CPU over gloo.

    Without this (or --use_cpu), accelerate sees no device backend and every process trains alone with world
    size 1, all writing the same output_dir. Call it before the training arguments are parsed.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or "LOCAL_RANK" in os.environ
    if launched and torch.accelerator.current_accelerator() is None:
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
