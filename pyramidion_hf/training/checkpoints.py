"""Where a run resumes: the newest fully written `checkpoint-N` of its output folder, checked to hold the
architecture this run builds.

A process killed while saving leaves a `checkpoint-N` without `trainer_state.json` (the Trainer writes it
last); such a folder, or one whose weights / optimizer files are cut or unreadable, is skipped with a warning
(never deleted), and training resumes from the one before, bit for bit, through
`Trainer.train(resume_from_checkpoint=...)`.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from transformers import PreTrainedConfig, Seq2SeqTrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from pyramidion_hf.training.arguments import DataArguments

logger = logging.getLogger(__name__)

TORCH_ZIP_SUFFIXES = (".bin", ".pt", ".pth")  # torch.save files: zip archives, their index written last
# config fields that do not change the network a checkpoint holds (bookkeeping, regularisation, init)
NOT_ARCHITECTURE = frozenset(
    {
        "_name_or_path",
        "architectures",
        "auto_map",
        "custom_pipelines",
        "dtype",
        "transformers_version",
        "use_cache",
        "dropout",
        "attention_dropout",
        "activation_dropout",
        "init_std",
    }
)


def read_trainer_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's trainer_state.json (OSError / ValueError when missing or cut)."""
    return json.loads(Path(checkpoint, "trainer_state.json").read_text())


def unreadable_file(checkpoint: str | os.PathLike) -> str | None:
    """Why the checkpoint's trainer_state.json, config.json, weights or optimizer files cannot be read (a cut
    or damaged file), or None when all of them open; reads headers only, not the tensors."""
    folder = Path(checkpoint)
    try:
        read_trainer_state(folder)
    except (OSError, ValueError):
        return "no readable trainer_state.json"
    for path in sorted(folder.iterdir()):
        try:
            if path.name == "config.json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".safetensors":
                with safe_open(str(path), "pt"):
                    pass
            elif path.suffix in TORCH_ZIP_SUFFIXES:
                zipfile.ZipFile(path).close()
        except (OSError, ValueError, SafetensorError, zipfile.BadZipFile) as err:
            return f"{path.name} is cut or unreadable ({type(err).__name__}: {err})"
    return None


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` folder fully written (trainer_state.json, saved last, parses; its weights
    and optimizer files open); newer incomplete ones are skipped with a warning, never deleted."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    steps = []
    for path in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        suffix = path.name[len(PREFIX_CHECKPOINT_DIR) + 1 :]
        if path.is_dir() and suffix.isdigit():
            steps.append((int(suffix), path))
    for _, path in sorted(steps, reverse=True):
        problem = unreadable_file(path)
        if problem is None:
            return str(path)
        logger.warning("Ignoring incomplete checkpoint %s (%s); it is left in place.", path, problem)
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
    chosen = training_args.resume_from_checkpoint
    if chosen is not None:
        if not Path(chosen).is_dir():
            raise ValueError(f"--resume_from_checkpoint {chosen} is not a folder.")
        problem = unreadable_file(chosen)
        if problem is not None:
            raise ValueError(
                f"--resume_from_checkpoint {chosen} cannot be resumed from: {problem}; pass an earlier "
                "checkpoint-N of the same run."
            )
        return chosen
    if not training_args.do_train or data_args.overwrite_output_dir:
        return None
    checkpoint = last_complete_checkpoint(training_args.output_dir)
    if checkpoint is not None:
        logger.info("Resuming from %s (pass --overwrite_output_dir to train from scratch).", checkpoint)
        return checkpoint
    finished = [
        name
        for name in ("model.safetensors", "all_results.json", "train_results.json")
        if Path(training_args.output_dir, name).exists()
    ]
    if finished:
        raise ValueError(
            f"{training_args.output_dir} already holds a trained model and no checkpoint to resume from "
            f"(the results of a finished run: {', '.join(finished)}). Pass --overwrite_output_dir to replace "
            "it, or choose another --output_dir."
        )
    return None


def architecture_differences(saved: dict[str, Any], built: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{field: (saved value, built value)} of the architecture fields in which two config dicts differ."""
    keys = (saved.keys() | built.keys()) - NOT_ARCHITECTURE
    return {
        key: (saved.get(key), built.get(key))
        for key in sorted(keys)
        if not key.startswith("_") and saved.get(key) != built.get(key)
    }


def check_checkpoint_matches(checkpoint: str | os.PathLike, config: PreTrainedConfig) -> None:
    """Refuse to resume from a checkpoint whose model differs from the one this run builds (`config`),
    naming the fields; before any weights are loaded."""
    saved = type(config).from_pretrained(str(checkpoint)).to_dict()
    differences = architecture_differences(saved, config.to_dict())
    if differences:
        listed = "; ".join(
            f"{key}: checkpoint {old!r}, this run {new!r}" for key, (old, new) in differences.items()
        )
        raise ValueError(
            f"{checkpoint} holds another architecture than this run builds ({listed}): rerun with the "
            "arguments that checkpoint was trained with (--preset, --config_overrides, --tokenizer_name, "
            "--model_name_or_path), or start afresh with a new --output_dir or --overwrite_output_dir."
        )
