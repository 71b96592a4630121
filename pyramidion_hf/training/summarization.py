"""Train, evaluate and predict with a summarizer through `Seq2SeqTrainer`, plus the Lead baseline.

`run(model_args, data_args, training_args)` is what `examples/run_summarization.py` does: each stage the
arguments ask for (--do_train / --do_eval / --do_predict / --lead_baseline) is one function below. Rank 0
writes to output_dir: the model + tokenizer, {train,eval,predict,lead}_results.json, all_results.json,
generated_predictions.jsonl and data_report.json.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import (
    DataCollatorForSeq2Seq,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    set_seed,
)

from pyramidion_hf.training.arguments import DataArguments, ModelArguments
from pyramidion_hf.training.checkpoints import (
    check_checkpoint_matches,
    finished_checkpoint_state,
    resolve_checkpoint,
)
from pyramidion_hf.training.metrics import build_compute_metrics, decode_ids, lead_summary, rouge_with_ci
from pyramidion_hf.training.model_setup import (
    build_config,
    build_model,
    configure_generation,
    load_saved_model,
    load_tokenizer,
    source_length,
)
from pyramidion_hf.training.preflight import preflight
from pyramidion_hf.training.results import load_json, push_run_to_hub, write_json
from pyramidion_hf.training.splits import PreparedSplits, label_pad_id, prepare_splits

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What `run` produced: the metrics of every stage and where the trained model lives."""

    metrics: dict[str, Any]
    output_dir: str
    data_report: dict[str, Any]
    predictions: list[str] = field(default_factory=list)


class SummarizationTrainer(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose multi-process evaluation scores every example exactly once.

    `Seq2SeqTrainer.evaluate/predict` gather with `accelerator.gather`, which keeps the samples the
    distributed sampler repeats to even out the last batch (N + padding predictions); `gather_for_metrics`
    drops them.
    """

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        self.gather_function = self.accelerator.gather_for_metrics
        return super().evaluation_loop(*args, **kwargs)


def lead_baseline(
    articles: Sequence[str], references: Sequence[str], n_sentences: int | None, n_bootstrap: int,
    disable_tqdm: bool = False,
) -> dict[str, float]:  # fmt: skip
    """ROUGE (+ CIs) of the first sentences of each article, scored like the model, keys prefixed `lead_`."""
    kwargs = {} if n_sentences is None else {"n_sentences": n_sentences}
    leads = [
        lead_summary(a, **kwargs)
        for a in tqdm(articles, desc="Lead baseline", leave=False, disable=disable_tqdm)
    ]
    scores = rouge_with_ci(leads, list(references), n_bootstrap=n_bootstrap)
    return {f"lead_{key}": value for key, value in scores.items()}


def final_logged_loss(log_history: Sequence[dict[str, Any]]) -> float:
    """The last training loss the Trainer logged (NaN if it logged none)."""
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return float(losses[-1]) if losses else math.nan


def record(trainer: Seq2SeqTrainer, stage: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """Log a stage's metrics and write them to output_dir/{stage}_results.json."""
    trainer.log_metrics(stage, metrics)
    trainer.save_metrics(stage, metrics)
    return metrics


def build_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    splits: PreparedSplits,
    data_args: DataArguments,
    training_args: Seq2SeqTrainingArguments,
    callbacks: list[TrainerCallback] | None,
) -> SummarizationTrainer:
    """The trainer over the prepared splits; with --predict_with_generate it scores ROUGE on evaluation."""
    eval_references = splits.references(data_args.validation_split)
    compute_metrics = build_compute_metrics(
        tokenizer, references=eval_references or None, n_bootstrap=data_args.n_bootstrap
    )
    return SummarizationTrainer(
        model=model,
        args=training_args,
        train_dataset=splits.features.get(data_args.train_split),
        eval_dataset=splits.features.get(data_args.validation_split),
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(
            tokenizer, model=model, label_pad_token_id=label_pad_id(tokenizer, data_args)
        ),
        callbacks=callbacks,
        compute_metrics=compute_metrics if training_args.predict_with_generate else None,
    )


def train(
    trainer: Seq2SeqTrainer, checkpoint: str | None, finished: dict[str, Any] | None, n_samples: int | None
) -> dict[str, Any]:
    """Train (resuming from `checkpoint`) and save the model; a `finished` checkpoint is only saved again."""
    if finished is not None:
        logger.info(
            "%s already holds the final step %d: not training further.", checkpoint, finished["global_step"]
        )
        trainer.save_model()
        metrics = {
            "train_steps": finished["global_step"],
            "train_final_loss": final_logged_loss(finished["log_history"]),
            "train_samples": n_samples,
        }
        trainer.save_metrics("train", metrics)
        return metrics
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()
    metrics = dict(train_result.metrics)
    if n_samples is not None:  # None: a streamed train split has no length
        metrics["train_samples"] = n_samples
    metrics["train_final_loss"] = final_logged_loss(trainer.state.log_history)
    metrics["train_steps"] = trainer.state.global_step
    metrics["world_size"] = trainer.args.world_size
    record(trainer, "train", metrics)
    trainer.save_state()
    return metrics


def evaluate(trainer: Seq2SeqTrainer, n_samples: int) -> dict[str, Any]:
    """Loss (and ROUGE with --predict_with_generate) on the validation split."""
    metrics = trainer.evaluate(metric_key_prefix="eval")
    metrics["eval_samples"] = n_samples
    return record(trainer, "eval", metrics)


def predict(
    trainer: Seq2SeqTrainer, splits: PreparedSplits, data_args: DataArguments
) -> tuple[dict[str, Any], list[str]]:
    """Loss on the test split; with --predict_with_generate also ROUGE, the summaries and their file."""
    split, generate = data_args.test_split, trainer.args.predict_with_generate
    if generate:
        trainer.compute_metrics = build_compute_metrics(
            trainer.processing_class, references=splits.references(split), n_bootstrap=data_args.n_bootstrap
        )
    result = trainer.predict(splits.features[split], metric_key_prefix="predict")
    metrics = dict(result.metrics)
    metrics["predict_samples"] = len(splits.features[split])
    record(trainer, "predict", metrics)
    predictions = decode_ids(trainer.processing_class, result.predictions) if generate else []
    if generate and trainer.is_world_process_zero():
        path = Path(trainer.args.output_dir) / "generated_predictions.jsonl"
        write_predictions(path, predictions, splits.rows[split])
    return metrics, predictions


def write_predictions(path: Path, predictions: Sequence[str], rows: Sequence[tuple[Any, str, str]]) -> None:
    """generated_predictions.jsonl: one {id, prediction, reference} per test row kept."""
    with open(path, "w", encoding="utf-8") as handle:
        for prediction, (row_id, _, reference) in zip(predictions, rows, strict=True):
            handle.write(json.dumps({"id": row_id, "prediction": prediction, "reference": reference}) + "\n")


def score_lead(trainer: Seq2SeqTrainer, splits: PreparedSplits, data_args: DataArguments) -> dict[str, Any]:
    """The Lead baseline on the test split, scored by the same metric as the model."""
    articles, references = splits.articles(data_args.test_split), splits.references(data_args.test_split)
    metrics = lead_baseline(
        articles, references, data_args.lead_sentences, data_args.n_bootstrap, trainer.args.disable_tqdm
    )
    metrics["lead_samples"] = len(articles)
    return record(trainer, "lead", metrics)


def prepare_model(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: Seq2SeqTrainingArguments,
    tokenizer: PreTrainedTokenizerBase,
    finished_checkpoint: str | None,
) -> PreTrainedModel:
    """The model to run: a finished checkpoint's weights, else as --preset / --model_name_or_path say."""
    if finished_checkpoint is not None:
        model = load_saved_model(finished_checkpoint, model_args)
    else:
        model = build_model(model_args, tokenizer)
    configure_generation(
        model, data_args, training_args.generation_max_length, training_args.generation_num_beams
    )
    logger.info(
        "Model: %s parameters, config %s", f"{model.num_parameters():,}", model.config.to_json_string()
    )
    return model


def run(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: Seq2SeqTrainingArguments,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    callbacks: list[TrainerCallback] | None = None,
) -> RunResult:
    """Train / evaluate / predict as the arguments say; rank 0 writes metrics, data report and predictions."""
    if not (
        training_args.do_train or training_args.do_eval or training_args.do_predict or data_args.lead_baseline
    ):
        raise ValueError("Nothing to do: pass --do_train, --do_eval, --do_predict and/or --lead_baseline.")
    push = training_args.push_to_hub
    training_args.push_to_hub = False  # we push an exported repo (model card with ROUGE + CIs) at the end
    preflight(data_args, training_args, push)
    checkpoint = resolve_checkpoint(data_args, training_args)
    finished = None
    if training_args.do_train:
        finished = finished_checkpoint_state(checkpoint, training_args.max_steps)
    set_seed(training_args.seed)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_args)
    if checkpoint is not None:
        check_checkpoint_matches(checkpoint, build_config(model_args, tokenizer))
    model = prepare_model(model_args, data_args, training_args, tokenizer, checkpoint if finished else None)
    splits = prepare_splits(data_args, training_args, tokenizer, source_length(model, data_args), model_args)
    trainer = build_trainer(model, tokenizer, splits, data_args, training_args, callbacks)
    output_dir, main_process = Path(training_args.output_dir), trainer.is_world_process_zero()
    if main_process:
        write_json(output_dir / "data_report.json", splits.reports)
    metrics: dict[str, Any] = {"world_size": training_args.world_size}
    if training_args.do_train:
        metrics.update(train(trainer, checkpoint, finished, splits.n_examples(data_args.train_split)))
    elif push:
        trainer.save_model()  # the Hub export reads the model from output_dir
    if training_args.do_eval:
        metrics.update(evaluate(trainer, len(splits.features[data_args.validation_split])))
    predictions: list[str] = []
    if training_args.do_predict:
        predict_metrics, predictions = predict(trainer, splits, data_args)
        metrics.update(predict_metrics)
    if data_args.lead_baseline:
        metrics.update(score_lead(trainer, splits, data_args))
    if main_process:
        write_json(output_dir / "all_results.json", {**load_json(output_dir / "all_results.json"), **metrics})
    if main_process and push:
        push_run_to_hub(
            str(output_dir), training_args, metrics, dataset=data_args.dataset,
            n_bootstrap=data_args.n_bootstrap, base_model=model_args.model_name_or_path,
        )  # fmt: skip
    return RunResult(metrics, str(output_dir), splits.reports, predictions)
