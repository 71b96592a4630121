"""The checks a run can make before it loads anything: the state of --output_dir and, with --push_to_hub,
that the Hub answers and accepts the token, so that neither fails only after training and prediction; a
warning when --bf16 would run emulated on a CPU without bf16 units.

`run` calls `preflight` first; resuming (`checkpoints.resolve_checkpoint`, `check_checkpoint_matches`) and
the tokenizer / model fit (`model_setup.check_tokenizer_matches`) are checked next, still before training.
"""

from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id
from transformers import Seq2SeqTrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from pyramidion_hf.hub.push import LOGIN_HINT, hub_error_reason
from pyramidion_hf.model_folder import cpu_has_fast_bf16
from pyramidion_hf.training.arguments import DataArguments
from pyramidion_hf.training.results import hub_repo_id

logger = logging.getLogger(__name__)

# what a folder written by a run (or a saved model) holds; any of them makes --output_dir one of ours
RUN_FILE_PATTERNS = (
    f"{PREFIX_CHECKPOINT_DIR}-*",
    "*_results.json",
    "data_report.json",
    "trainer_state.json",
    "config.json",
    "model.safetensors",
)


def check_output_dir(data_args: DataArguments, training_args: Seq2SeqTrainingArguments) -> None:
    """Refuse an existing non-empty --output_dir that holds nothing of a run (transformers' convention),
    unless --overwrite_output_dir: the run would write its files among someone else's."""
    folder = Path(training_args.output_dir)
    if data_args.overwrite_output_dir or not folder.is_dir() or not any(folder.iterdir()):
        return
    if any(any(folder.glob(pattern)) for pattern in RUN_FILE_PATTERNS):
        return
    raise ValueError(
        f"--output_dir {folder} already exists, is not empty and holds no checkpoint or results of a run: "
        "choose another --output_dir, or pass --overwrite_output_dir to write into it anyway."
    )


def check_hub_access(training_args: Seq2SeqTrainingArguments) -> str:
    """With --push_to_hub: a valid repository id, a token, and a Hub that accepts it (one whoami call);
    returns the user name. ValueError with the reason and the fix otherwise."""
    repo_id = hub_repo_id(training_args)
    validate_repo_id(repo_id)
    token = training_args.hub_token or get_token()
    if token is None:
        raise ValueError(f"--push_to_hub needs a Hugging Face token to upload {repo_id}: {LOGIN_HINT}.")
    try:
        identity = HfApi().whoami(token=token)
    except OfflineModeIsEnabled:
        raise ValueError(
            "--push_to_hub with offline mode on (HF_HUB_OFFLINE=1): unset HF_HUB_OFFLINE, or drop "
            "--push_to_hub (`pyramidion-hub push` can upload the run's folder later)."
        ) from None
    except (LocalTokenNotFoundError, HTTPError) as err:
        raise ValueError(f"--push_to_hub cannot upload {repo_id}: {hub_error_reason(err)}") from None
    role = (identity.get("auth") or {}).get("accessToken", {}).get("role")
    if role == "read":
        raise ValueError(
            f"--push_to_hub cannot upload {repo_id}: the token is read-only; {LOGIN_HINT} with a write token."
        )
    name = str(identity.get("name"))
    logger.info("--push_to_hub: the Hub accepts %s's token; %s is uploaded at the end.", name, repo_id)
    return name


def warn_emulated_bf16(training_args: Seq2SeqTrainingArguments) -> None:
    """--bf16 on a CPU without AVX512-BF16 / AMX runs every bf16 matmul in software, far slower than fp32
    (measured on an AVX2-only EPYC: 0.7 vs 90 GFLOP/s); say so before training starts."""
    if training_args.bf16 and training_args.device.type == "cpu" and not cpu_has_fast_bf16():
        logger.warning(
            "--bf16 on this CPU, which has no bf16 units (no avx512_bf16 / amx_bf16 in /proc/cpuinfo): "
            "bf16 matmuls run emulated, about 100x slower than fp32. Drop --bf16 to train in fp32."
        )


def preflight(data_args: DataArguments, training_args: Seq2SeqTrainingArguments, push: bool) -> None:
    """What a run checks before it loads a tokenizer, a model or data: its output folder, the dtype, then
    the Hub."""
    check_output_dir(data_args, training_args)
    warn_emulated_bf16(training_args)
    if push:
        check_hub_access(training_args)
