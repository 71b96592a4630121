"""Opening a saved model folder (model + tokenizer) for our tools, refusing with the reason and the fix what
transformers would load silently wrong (another architecture, missing or non-finite tensors) or fail on
obscurely (no tokenizer, remote code, a cut weights file); and the dtype our applications run in."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from .modeling.modeling_pyramidion import AUTO_MAP, PyramidionForConditionalGeneration

__all__ = [
    "DTYPE_CHOICES",
    "DTYPE_ENV",
    "check_model_folder",
    "check_tokenizer_fits",
    "cpu_has_fast_bf16",
    "load_model_folder",
    "missing_files",
    "resolve_dtype",
]

DTYPE_ENV = "PYRAMIDION_DTYPE"
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
DTYPE_CHOICES = ("auto", *DTYPES)
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
CONVERTIBLE_TYPES = ("bart", "mbart", "pegasus", "led")
CORRUPT_WEIGHTS = (SafetensorError, pickle.UnpicklingError, EOFError)


# ------------------------------------------------------------------------------------------------ dtype


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX or AVX512-BF16): /proc/cpuinfo or torch's probe."""
    try:
        flags = CPUINFO.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        flags = []
    return any(flag in flags for flag in CPU_BF16_FLAGS) or "AMX" in torch.backends.cpu.get_cpu_capability()


def resolve_dtype(dtype: str = "auto", device: str | torch.device = "cpu") -> torch.dtype:
    """torch dtype for "auto" | "bf16" | "fp32"; "auto" = $PYRAMIDION_DTYPE if set, else bf16 on CUDA with
    bf16 and on CPUs with fast bf16 (`cpu_has_fast_bf16`), fp32 otherwise."""
    choices = ", ".join(DTYPE_CHOICES)
    if dtype == "auto":
        dtype = os.environ.get(DTYPE_ENV, "").strip().lower() or "auto"
        if dtype not in DTYPE_CHOICES:
            raise ValueError(f"{DTYPE_ENV}={dtype!r}: set it to one of {choices} or unset it.")
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype must be one of {choices}, got {dtype!r}.")
    if dtype != "auto":
        return DTYPES[dtype]
    kind = torch.device(device).type
    fast = torch.cuda.is_bf16_supported() if kind == "cuda" else kind == "cpu" and cpu_has_fast_bf16()
    return torch.bfloat16 if fast else torch.float32


# ------------------------------------------------------------------------------------------------ checks


def missing_files(folder: Path) -> list[str]:
    """What a saved model folder lacks (config, weights, tokenizer), each saying what writes it."""
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json (model.save_pretrained(folder) writes it)")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append(
            "model weights (model.safetensors or pytorch_model.bin; model.save_pretrained writes them)"
        )
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append(
            "tokenizer files (tokenizer.json / tokenizer_config.json; tokenizer.save_pretrained(folder) "
            "writes them, or copy them from the model it was trained from)"
        )
    return missing


def _not_pyramidion(folder: Path, model_type: Any) -> ValueError:
    """The refusal for a folder of another architecture, with the way to use it."""
    hint = (
        f"convert it with `pyramidion-convert {folder} OUT_DIR`, or load it with transformers' own classes"
        if model_type in CONVERTIBLE_TYPES
        else "load it with transformers' own classes (AutoModelForSeq2SeqLM)"
    )
    return ValueError(
        f"{folder}/config.json has model_type {model_type!r}: this is not a Pyramidion model; {hint}."
    )


def check_model_folder(folder: str | Path) -> bool:
    """Raise ValueError unless `folder` is a complete saved Pyramidion; return whether loading it runs the
    folder's own code (its auto_map names classes other than this package's)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"Model folder {folder} does not exist: pass the folder written by save_pretrained.")
    missing = missing_files(folder)
    if missing:
        raise ValueError(f"{folder} is not a complete saved model; missing: " + "; ".join(missing) + ".")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{folder}/config.json is not valid JSON ({err}): save the model again.") from None
    if not isinstance(config, dict):
        raise ValueError(f"{folder}/config.json must hold a JSON object: save the model again.")
    model_type = config.get("model_type")
    named = (config.get("auto_map") or {}).get("AutoModelForSeq2SeqLM")
    named = named.split("--")[-1] if isinstance(named, str) else None
    if model_type == "pyramidion" and named in (None, AUTO_MAP["AutoModelForSeq2SeqLM"]):
        return False
    if named is None:
        raise _not_pyramidion(folder, model_type)
    return True


def _non_finite(model: PreTrainedModel) -> str | None:
    """'name (n of m values)' of the first weight or buffer holding NaN or inf; None when all are finite."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                return f"{name} ({bad} of {tensor.numel()} values)"
    return None


def check_tokenizer_fits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """Raise ValueError unless the tokenizer's vocabulary and special-token ids are the model's."""
    config = model.config
    if len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"The tokenizer in {folder} has {len(tokenizer)} tokens but the model's vocab_size is "
            f"{config.vocab_size}: they were not trained together; save the model's own tokenizer there."
        )
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        tok_id, cfg_id = getattr(tokenizer, name, None), getattr(config, name, None)
        if tok_id is not None and cfg_id is not None and tok_id != cfg_id:
            raise ValueError(
                f"tokenizer.{name} = {tok_id} but config.{name} = {cfg_id} in {folder}: save the config with "
                "the tokenizer's special-token ids."
            )


# ------------------------------------------------------------------------------------------------ loading


def _listing(names: list[str], shown: int = 5) -> str:
    """The first `shown` names, comma-separated, and how many more there are."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """No progress bar and no load report from transformers: we check what they show and raise ourselves."""
    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def _load_weights(folder: Path, remote: bool, dtype: torch.dtype | None) -> PreTrainedModel:
    """The model with every tensor read from the folder (ValueError for a cut file, missing, unexpected or
    wrongly shaped tensors)."""
    cls = AutoModelForSeq2SeqLM if remote else PyramidionForConditionalGeneration
    kwargs: dict[str, Any] = {
        "output_loading_info": True,
        "trust_remote_code": remote,
        "ignore_mismatched_sizes": True,  # reported in the loading info, refused below
    }
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        with _quiet_loading():
            model, info = cls.from_pretrained(folder, **kwargs)
    except CORRUPT_WEIGHTS as err:
        raise ValueError(
            f"The weights file in {folder} is truncated or corrupt ({type(err).__name__}: {err}): save the "
            "model again or copy the file again."
        ) from err
    shapes = [f"{key} (file {list(old)}, config {list(new)})" for key, old, new in info["mismatched_keys"]]
    problems = [
        f"{what}: {_listing(sorted(names))}"
        for what, names in (
            ("missing keys", info["missing_keys"]),
            ("unexpected keys", info["unexpected_keys"]),
            ("mismatched keys", shapes),
        )
        if names
    ]
    if problems:
        raise ValueError(
            f"The weights in {folder} do not match its config ({'; '.join(problems)}); transformers would "
            "fill such tensors with random values: save the complete model again."
        )
    return model


def load_model_folder(
    path: str | Path,
    *,
    dtype: str | None = "auto",
    trust_remote_code: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(eval-mode model on `device`, tokenizer) of a saved Pyramidion folder, checked complete and finite.

    dtype: "auto" (bf16 where the hardware is fast at it, see `resolve_dtype`), "bf16", "fp32", or None for
    transformers' default (the dtype saved in the folder). A folder whose auto_map names other classes than
    this package's runs its own code: refused unless trust_remote_code=True.
    """
    folder = Path(path)
    remote = check_model_folder(folder)
    if remote and not trust_remote_code:
        raise ValueError(
            f"{folder} loads with its own code (config.json auto_map), not this package's classes: pass "
            "--trust-remote-code (trust_remote_code=True) if you trust that code."
        )
    torch_dtype = None if dtype is None else resolve_dtype(dtype, device)
    model = _load_weights(folder, remote, torch_dtype)
    if not type(model).__name__.startswith("Pyramidion"):
        raise ValueError(f"{folder} holds a {type(model).__name__}, not a Pyramidion model.")
    bad = _non_finite(model)
    if bad is not None:
        raise ValueError(
            f"The weights in {folder} hold NaN or inf values, first in {bad}: the model diverged or the file "
            "was damaged; use an earlier checkpoint."
        )
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=remote)
    check_tokenizer_fits(model, tokenizer, folder)
    return model.to(device).eval(), tokenizer
