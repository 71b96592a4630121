"""What a run reports: JSON result files, the metrics and training facts of its model card, the Hub upload.

`card_metrics` and `training_summary` give `pyramidion_hf.hub.export_repo` the test ROUGE (+ CIs, Lead
baseline) and the hyper-parameters; `push_run_to_hub` exports output_dir/hub and uploads it once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transformers import Seq2SeqTrainingArguments

logger = logging.getLogger(__name__)

CARD_HYPERPARAMETERS = (
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "warmup_steps",
    "weight_decay",
    "lr_scheduler_type",
    "seed",
)
# run metric -> model card field
CARD_TRAINING_METRICS = {
    "train_samples": "train_examples",
    "train_runtime": "train_runtime",
    "train_final_loss": "train_loss",
    "train_steps": "global_step",
}


def write_json(path: Path, payload: Any) -> None:
    """Pretty JSON, sorted keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def load_json(path: Path) -> dict[str, Any]:
    """A JSON file's object, {} if it does not exist."""
    return json.loads(path.read_text()) if path.exists() else {}


def with_prefix(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries of `metrics` whose key starts with `prefix`, with the prefix removed."""
    return {key[len(prefix) :]: value for key, value in metrics.items() if key.startswith(prefix)}


def rouge_scores(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The ROUGE entries (rouge1, rouge1_low, ...) of one stage (`predict_`, `lead_`), prefix removed."""
    return {key: value for key, value in with_prefix(metrics, prefix).items() if key.startswith("rouge")}


def card_metrics(metrics: dict[str, Any], n_bootstrap: int) -> dict[str, Any] | None:
    """The test-set ROUGE (+ CIs) and the Lead baseline in the form `pyramidion_hf.hub.export_repo` takes."""
    model = rouge_scores(metrics, "predict_")
    if not model:
        return None
    card: dict[str, Any] = {**model, "split": "test", "n_bootstrap": n_bootstrap}
    card["num_examples"] = metrics.get("predict_samples")
    lead = rouge_scores(metrics, "lead_")
    if lead:
        card["lead"] = lead
    return card


def training_precision(training_args: Seq2SeqTrainingArguments) -> str:
    """How the run's arithmetic was done, for the card: fp32, or bf16 / fp16 autocast over fp32 weights."""
    for flag in ("bf16", "fp16"):
        if getattr(training_args, flag):
            return f"{flag} autocast, fp32 master weights"
    return "fp32"


def training_summary(
    training_args: Seq2SeqTrainingArguments,
    metrics: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> dict[str, Any]:
    """The training facts worth a line in a model card (hyper-parameters, steps, time, examples)."""
    summary = {key: getattr(training_args, key) for key in CARD_HYPERPARAMETERS}
    summary["world_size"] = training_args.world_size
    summary["precision"] = training_precision(training_args)
    if base_model:
        summary["base_model"] = base_model
    else:
        summary["from_scratch"] = True
    for key, name in CARD_TRAINING_METRICS.items():
        if metrics and key in metrics:
            summary[name] = metrics[key]
    return summary


def hub_repo_id(training_args: Seq2SeqTrainingArguments) -> str:
    """The Hub repository a run uploads to: --hub_model_id, else the name of its output folder."""
    return training_args.hub_model_id or Path(training_args.output_dir).absolute().name


def push_run_to_hub(
    output_dir: str,
    training_args: Seq2SeqTrainingArguments,
    metrics: dict[str, Any],
    *,
    dataset: str,
    n_bootstrap: int,
    base_model: str | None,
) -> Path:
    """Export output_dir as a Hub repo (model card with the test ROUGE) in output_dir/hub, then upload it."""
    from pyramidion_hf.hub import export_repo, push_repo

    repo_dir = export_repo(
        output_dir,
        Path(output_dir) / "hub",
        metrics=card_metrics(metrics, n_bootstrap),
        training=training_summary(training_args, metrics, base_model),
        dataset=dataset,
        overwrite=True,
    )
    repo_id = hub_repo_id(training_args)
    logger.info("Pushing %s to the Hub as %s", repo_dir, repo_id)
    push_repo(repo_dir, repo_id, private=bool(training_args.hub_private_repo), token=training_args.hub_token)
    return Path(repo_dir)
