"""Where a run resumes: the newest fully written `checkpoint-N` of its output folder.

A process killed while saving leaves a `checkpoint-N` without `trainer_state.json` (the Trainer writes it
last); such a folder is skipped, and training resumes from the one before, bit for bit, through
`Trainer.train(resume_from_checkpoint=...)`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from transformers import Seq2SeqTrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from pyramidion_hf.training.arguments import DataArguments

logger = logging.getLogger(__name__)


def read_trainer_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's trainer_state.json (OSError / ValueError when missing or cut)."""
    return json.loads(Path(checkpoint, "trainer_state.json").read_text())


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` folder fully written (its trainer_state.json, saved last, parses)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = []
    for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        suffix = path.name[len(PREFIX_CHECKPOINT_DIR) + 1 :]
        if path.is_dir() and suffix.isdigit():
            steps.append((int(suffix), path))
    for _, path in sorted(steps, reverse=True):
        try:
            read_trainer_state(path)
            return str(path)
        except (OSError, ValueError):
            logger.warning("Ignoring incomplete checkpoint %s (no readable trainer_state.json).", path)
    return None


def finished_checkpoint_state(checkpoint: str | None, max_steps: int) -> dict[str, Any] | None:
    """The trainer state of `checkpoint` if it already reached the run's last step `max_steps` (else None).

    `Trainer.train` resumed from such a checkpoint would run one step more; the run loads its weights instead.
    """
    if checkpoint is None or max_steps <= 0:
        return None
    state = read_trainer_state(checkpoint)
    return state if state.get("global_step", 0) >= max_steps else None


def resolve_checkpoint(data_args: DataArguments, training_args: Seq2SeqTrainingArguments) -> str | None:
    """The checkpoint to resume from: --resume_from_checkpoint, else the last complete one in output_dir."""
    if training_args.resume_from_checkpoint is not None:
        if not Path(training_args.resume_from_checkpoint).is_dir():
            raise ValueError(
                f"--resume_from_checkpoint {training_args.resume_from_checkpoint} is not a folder."
            )
        return training_args.resume_from_checkpoint
    if not training_args.do_train or data_args.overwrite_output_dir:
        return None
    checkpoint = last_complete_checkpoint(training_args.output_dir)
    if checkpoint is not None:
        logger.info("Resuming from %s (pass --overwrite_output_dir to train from scratch).", checkpoint)
        return checkpoint
    if Path(training_args.output_dir, "model.safetensors").exists():
        raise ValueError(
            f"{training_args.output_dir} already holds a trained model and no checkpoint to resume from. "
            "Pass --overwrite_output_dir to replace it, or choose another --output_dir."
        )
    return None
