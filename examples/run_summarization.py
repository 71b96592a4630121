#!/usr/bin/env python
"""Train, evaluate and predict with a Pyramidion summarizer through `Seq2SeqTrainer`.

In the spirit of transformers' `examples/pytorch/summarization/run_summarization.py`, for models built from a
preset (`--preset pyramidion --config_overrides "d_model=256,decoder_layers=2" --tokenizer_name tok/`) or
loaded from a folder (`--model_name_or_path`). ROUGE-1/2/L/Lsum carry 95% bootstrap confidence intervals and
are computed by the project's offline evaluate metric, which also scores the Lead baseline
(`--lead_baseline`).

    python examples/run_summarization.py --preset pyramidion --tokenizer_name outputs/tok \\
        --dataset aclsum --do_train --do_predict --predict_with_generate \\
        --output_dir outputs/run --max_steps 200

Multi-process (CPU over gloo, or GPUs):
    torchrun --standalone --nproc_per_node 2 examples/run_summarization.py ...
    accelerate launch --config_file examples/configs/multi_gpu.yaml examples/run_summarization.py ...

Rank 0 writes to --output_dir: the model + tokenizer, checkpoint-N/, {train,eval,predict,lead}_results.json,
all_results.json, generated_predictions.jsonl (id, prediction, reference) and data_report.json (examples
kept, skipped and truncated per split). A rerun with the same --output_dir resumes from its last complete
checkpoint (--overwrite_output_dir trains from scratch). --push_to_hub exports output_dir/hub with
`pyramidion_hf.hub.export_repo` (remote code, model card with the test ROUGE, CIs and Lead baseline) and
uploads it to --hub_model_id once, at the end.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import transformers
from tqdm.auto import tqdm
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    EvalPrediction,
    HfArgumentParser,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    set_seed,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from pyramidion_hf import PyramidionForConditionalGeneration
from pyramidion_hf.presets import get_preset, list_presets
from pyramidion_hf.training.data import load_summarization_data, prepare_features
from pyramidion_hf.training.metrics import lead_summary, load_rouge_metric

logger = logging.getLogger("run_summarization")

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


@dataclass
class ModelArguments:
    """Which model (a preset to build from scratch, or a saved folder) and which tokenizer."""

    preset: str | None = field(
        default=None, metadata={"help": f"Build a fresh model from a named preset, one of {list_presets()}."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": 'Preset overrides, e.g. "d_model=256,decoder_layers=2,encoder_lengths=[2048,512]".'
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved model folder (or Hub id) to fine-tune / evaluate."}
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "Tokenizer folder (required with --preset; defaults to --model_name_or_path)."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow remote code when loading a model folder that is not ours."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "eager | sdpa (default: auto)."})


@dataclass
class DataArguments:
    """What to train and evaluate on, how long inputs and targets may be, and how to generate."""

    dataset: str = field(
        default="aclsum",
        metadata={"help": "aclsum, a Hub dataset name, or a local .json/.jsonl/.csv/.parquet."},
    )
    train_file: str | None = field(default=None, metadata={"help": "Local train file (overrides --dataset)."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file."})
    article_column: str = field(default="article", metadata={"help": "Column holding the documents."})
    summary_column: str = field(
        default="abstract", metadata={"help": "Column holding the reference summaries."}
    )
    train_split: str = field(default="train", metadata={"help": "Split used by --do_train."})
    validation_split: str = field(default="validation", metadata={"help": "Split used by --do_eval."})
    test_split: str = field(
        default="test", metadata={"help": "Split used by --do_predict and --lead_baseline."}
    )
    max_source_length: int | None = field(
        default=None, metadata={"help": "Input tokens kept per document (default: max_position_embeddings)."}
    )
    max_target_length: int = field(default=256, metadata={"help": "Summary tokens kept for training labels."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N train examples."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N eval examples."}
    )
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N test examples."}
    )
    no_repeat_ngram_size: int | None = field(
        default=3, metadata={"help": "Generation: forbid repeating n-grams of this size (0 or None = off)."}
    )
    repetition_penalty: float | None = field(
        default=None, metadata={"help": "Generation: penalty > 1 on tokens already generated (None = off)."}
    )
    lead_baseline: bool = field(
        default=False, metadata={"help": "Score the Lead baseline with the same metric on the test split."}
    )
    lead_sentences: int | None = field(
        default=None,
        metadata={"help": "Sentences in the Lead summary (default: the metric module's default)."},
    )
    n_bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for 95 percent CIs."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train from scratch even if output_dir holds checkpoints (default: resume from them)."
        },
    )


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


def parse_config_overrides(text: str | None) -> dict[str, Any]:
    """Parse "a=1,b=[2,3],c=linear,d=None" into {"a": 1, "b": [2, 3], "c": "linear", "d": None}."""
    if not text:
        return {}
    items, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    overrides: dict[str, Any] = {}
    for item in (i.strip() for i in items if i.strip()):
        if "=" not in item:
            raise ValueError(f"--config_overrides entry {item!r} is not key=value (e.g. 'd_model=256').")
        key, raw = (part.strip() for part in item.split("=", 1))
        try:
            overrides[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            overrides[key] = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
    return overrides


def load_tokenizer(model_args: ModelArguments) -> PreTrainedTokenizerBase:
    """The tokenizer from --tokenizer_name, else from the model folder."""
    path = model_args.tokenizer_name or model_args.model_name_or_path
    if path is None:
        raise ValueError(
            "No tokenizer: pass --tokenizer_name (train one with examples/train_tokenizer.py) "
            "or --model_name_or_path."
        )
    return AutoTokenizer.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)


def build_model(model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A fresh model from --preset (+ overrides; vocab and special ids from the tokenizer), or a saved one."""
    if (model_args.preset is None) == (model_args.model_name_or_path is None):
        raise ValueError(
            "Pass exactly one of --preset (train from scratch) or --model_name_or_path (a saved model)."
        )
    kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    if model_args.model_name_or_path is not None:
        if model_args.config_overrides:
            raise ValueError("--config_overrides applies to --preset only; a saved model keeps its config.")
        return AutoModelForSeq2SeqLM.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code, **kwargs
        )
    special = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.eos_token_id,
    }
    if any(value is None for value in special.values()):
        raise ValueError(
            f"The tokenizer lacks special tokens {special}: train it with examples/train_tokenizer.py."
        )
    overrides = parse_config_overrides(model_args.config_overrides)
    config = get_preset(model_args.preset, **{**special, **overrides})
    if model_args.attn_implementation:
        config._attn_implementation = model_args.attn_implementation
    return PyramidionForConditionalGeneration(config)


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
            json.loads((path / "trainer_state.json").read_text())
            return str(path)
        except (OSError, ValueError):
            logger.warning("Ignoring incomplete checkpoint %s (no readable trainer_state.json).", path)
    return None


def finished_checkpoint_state(
    checkpoint: str | None, training_args: Seq2SeqTrainingArguments
) -> dict[str, Any] | None:
    """The trainer state of `checkpoint` if it already reached the run's last step (None otherwise)."""
    if checkpoint is None or training_args.max_steps <= 0:
        return None
    state = json.loads(Path(checkpoint, "trainer_state.json").read_text())
    return state if state.get("global_step", 0) >= training_args.max_steps else None


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


def load_raw_data(data_args: DataArguments) -> datasets.DatasetDict:
    """The splits named by --train_file/--validation_file/--test_file, else those of --dataset."""
    files = {
        data_args.train_split: data_args.train_file,
        data_args.validation_split: data_args.validation_file,
        data_args.test_split: data_args.test_file,
    }
    files = {split: path for split, path in files.items() if path is not None}
    return load_summarization_data(
        files or data_args.dataset,
        article_column=data_args.article_column,
        summary_column=data_args.summary_column,
    )


def select(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """The first `limit` rows (all if None)."""
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def score(
    metric: Any, predictions: Sequence[str], references: Sequence[str], n_bootstrap: int
) -> dict[str, float]:
    """ROUGE with 95% bootstrap intervals (0-100) from the offline evaluate metric."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references.")
    result = metric.compute(
        predictions=list(predictions), references=list(references), n_bootstrap=n_bootstrap
    )
    return {key: float(value) for key, value in result.items()}


def decode(tokenizer: PreTrainedTokenizerBase, ids: np.ndarray) -> list[str]:
    """Token ids (B, L), -100 as padding, to stripped strings."""
    ids = np.where(ids != -100, ids, tokenizer.pad_token_id)
    return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def make_compute_metrics(
    tokenizer: PreTrainedTokenizerBase,
    metric: Any,
    references: Sequence[str] | None = None,
    n_bootstrap: int = 1000,
) -> Callable[[EvalPrediction], dict[str, float]]:
    """compute_metrics for Seq2SeqTrainer: ROUGE + CIs and mean generated length.

    Scores against the untruncated `references` (dataset order) when given, else the decoded labels.
    """

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        predictions = eval_prediction.predictions
        predictions = predictions[0] if isinstance(predictions, tuple) else predictions
        decoded = decode(tokenizer, predictions)
        targets = list(references) if references is not None else decode(tokenizer, eval_prediction.label_ids)
        if len(targets) != len(decoded):
            raise ValueError(f"{len(decoded)} generated summaries for {len(targets)} references.")
        result = score(metric, decoded, targets, n_bootstrap)
        lengths = np.count_nonzero((predictions != tokenizer.pad_token_id) & (predictions != -100), axis=-1)
        result["gen_len"] = float(np.mean(lengths))
        return result

    return compute_metrics


def lead_baseline(
    metric: Any, articles: Sequence[str], references: Sequence[str], n_sentences: int | None, n_bootstrap: int
) -> dict[str, float]:
    """ROUGE (+ CIs) of the first sentences of each article, scored like the model, keys prefixed `lead_`."""
    kwargs = {} if n_sentences is None else {"n_sentences": n_sentences}
    leads = [lead_summary(a, **kwargs) for a in tqdm(articles, desc="Lead baseline", leave=False)]
    return {f"lead_{k}": v for k, v in score(metric, leads, references, n_bootstrap).items()}


def report_to_dict(report: Any) -> dict[str, Any]:
    """A DataReport (dataclass, NamedTuple, mapping or object) as a JSON-able dict."""
    if is_dataclass(report):
        return asdict(report)
    if hasattr(report, "_asdict"):
        return dict(report._asdict())
    if isinstance(report, dict):
        return dict(report)
    return {k: v for k, v in vars(report).items() if not k.startswith("_")}


def setup_logging(training_args: Seq2SeqTrainingArguments) -> None:
    """INFO on the main process, warnings elsewhere."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def write_json(path: Path, payload: Any) -> None:
    """Pretty JSON, sorted keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def card_metrics(metrics: dict[str, Any], n_bootstrap: int) -> dict[str, Any] | None:
    """The test-set ROUGE (+ CIs) and the Lead baseline in the form `pyramidion_hf.hub.export_repo` takes."""
    model = {k[len("predict_") :]: v for k, v in metrics.items() if k.startswith("predict_rouge")}
    if not model:
        return None
    card: dict[str, Any] = {**model, "split": "test", "n_bootstrap": n_bootstrap}
    card["num_examples"] = metrics.get("predict_samples")
    lead = {k[len("lead_") :]: v for k, v in metrics.items() if k.startswith("lead_rouge")}
    if lead:
        card["lead"] = lead
    return card


def push_to_hub(
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
    repo_id = training_args.hub_model_id or Path(output_dir).absolute().name
    logger.info("Pushing %s to the Hub as %s", repo_dir, repo_id)
    push_repo(repo_dir, repo_id, private=bool(training_args.hub_private_repo), token=training_args.hub_token)
    return Path(repo_dir)


def training_summary(
    training_args: Seq2SeqTrainingArguments,
    metrics: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> dict[str, Any]:
    """The training facts worth a line in a model card (hyper-parameters, steps, time, examples)."""
    keys = (
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
    summary = {key: getattr(training_args, key) for key in keys}
    summary["world_size"] = training_args.world_size
    if base_model:
        summary["base_model"] = base_model
    else:
        summary["from_scratch"] = True
    for key, name in (
        ("train_samples", "train_examples"),
        ("train_runtime", "train_runtime"),
        ("train_final_loss", "train_loss"),
        ("train_steps", "global_step"),
    ):
        if metrics and key in metrics:
            summary[name] = metrics[key]
    return summary


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
    checkpoint = resolve_checkpoint(data_args, training_args)
    set_seed(training_args.seed)

    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_args)
    model = build_model(model_args, tokenizer)
    max_positions = model.config.max_position_embeddings
    source_length = data_args.max_source_length or max_positions
    if source_length > max_positions:
        raise ValueError(
            f"--max_source_length {source_length} exceeds the model's max_position_embeddings "
            f"{max_positions}: "
            "lower it, or build a model for longer inputs (--config_overrides max_position_embeddings=...)."
        )
    model.generation_config.max_length = training_args.generation_max_length or data_args.max_target_length
    model.generation_config.num_beams = training_args.generation_num_beams or 1
    if data_args.no_repeat_ngram_size:
        model.generation_config.no_repeat_ngram_size = data_args.no_repeat_ngram_size
    if data_args.repetition_penalty is not None:
        model.generation_config.repetition_penalty = data_args.repetition_penalty
    logger.info(
        "Model: %s parameters, config %s", f"{model.num_parameters():,}", model.config.to_json_string()
    )

    needed = {
        data_args.train_split: training_args.do_train,
        data_args.validation_split: training_args.do_eval,
        data_args.test_split: training_args.do_predict or data_args.lead_baseline,
    }
    raw = load_raw_data(data_args)
    for split, wanted in needed.items():
        if wanted and split not in raw:
            raise ValueError(
                f"The data has no split {split!r} (it has {list(raw)}): pass it as --train_file / "
                "--validation_file / --test_file, or name another with --train_split / --validation_split / "
                "--test_split."
            )
    limits = {
        data_args.train_split: data_args.max_train_samples,
        data_args.validation_split: data_args.max_eval_samples,
        data_args.test_split: data_args.max_predict_samples,
    }
    features, reports, references = {}, {}, {}
    for split, wanted in needed.items():
        if not wanted:
            continue
        split_data = select(raw[split], limits[split])
        ids = split_data["id"] if "id" in split_data.column_names else [None] * len(split_data)
        rows = list(zip(ids, split_data["article"], split_data["abstract"], strict=True))
        # a row index stands in for `id` so that the rows prepare_features keeps map back to their texts
        indexed = split_data.remove_columns([c for c in split_data.column_names if c == "id"])
        indexed = indexed.add_column("id", [str(i) for i in range(len(indexed))])
        with training_args.main_process_first(desc=f"{split} features"):
            feats, report = prepare_features(indexed, tokenizer, source_length, data_args.max_target_length)
        features[split], reports[split] = feats, report_to_dict(report)
        logger.info(
            "Data report for %s: %s", split, report.summary() if hasattr(report, "summary") else report
        )
        if len(feats) == 0:
            raise ValueError(f"No usable example left in split {split!r}: {reports[split]}.")
        references[split] = [rows[int(i)] for i in feats["id"]]
    keep = {"input_ids", "attention_mask", "labels"}
    features = {
        s: f.remove_columns([c for c in f.column_names if c not in keep]) for s, f in features.items()
    }

    with training_args.main_process_first(desc="load the ROUGE metric"):
        metric = load_rouge_metric()
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)
    eval_refs = [abstract for _, _, abstract in references.get(data_args.validation_split, [])]
    trainer = SummarizationTrainer(
        model=model,
        args=training_args,
        train_dataset=features.get(data_args.train_split),
        eval_dataset=features.get(data_args.validation_split),
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=callbacks,
        compute_metrics=make_compute_metrics(tokenizer, metric, eval_refs or None, data_args.n_bootstrap)
        if training_args.predict_with_generate
        else None,
    )
    output_dir = Path(training_args.output_dir)
    main_process = trainer.is_world_process_zero()
    if main_process:
        write_json(output_dir / "data_report.json", reports)

    all_metrics: dict[str, Any] = {"world_size": training_args.world_size}
    finished = finished_checkpoint_state(checkpoint, training_args) if training_args.do_train else None
    if finished is not None:
        # Trainer.train runs one step past max_steps when resumed from the final checkpoint: load it instead
        logger.info(
            "%s already holds the final step %d: not training further.", checkpoint, finished["global_step"]
        )
        trainer._load_from_checkpoint(checkpoint)
        trainer.state.global_step = finished["global_step"]
        trainer.state.log_history = finished["log_history"]
        trainer.save_model()
        metrics = {"train_steps": finished["global_step"], "train_final_loss": final_logged_loss(trainer)}
        metrics["train_samples"] = len(features[data_args.train_split])
        trainer.save_metrics("train", metrics)
        all_metrics.update(metrics)
    elif training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()
        metrics = dict(train_result.metrics)
        metrics["train_samples"] = len(features[data_args.train_split])
        metrics["train_final_loss"] = final_logged_loss(trainer)
        metrics["train_steps"] = trainer.state.global_step
        metrics["world_size"] = training_args.world_size
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        all_metrics.update(metrics)
    elif push:
        trainer.save_model()  # the Hub export reads the model from output_dir

    if training_args.do_eval:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        metrics["eval_samples"] = len(features[data_args.validation_split])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        all_metrics.update(metrics)

    predictions: list[str] = []
    test_rows = references.get(data_args.test_split, [])
    test_refs = [abstract for _, _, abstract in test_rows]
    if training_args.do_predict:
        if training_args.predict_with_generate:
            trainer.compute_metrics = make_compute_metrics(
                tokenizer, metric, test_refs, data_args.n_bootstrap
            )
        result = trainer.predict(features[data_args.test_split], metric_key_prefix="predict")
        metrics = dict(result.metrics)
        metrics["predict_samples"] = len(features[data_args.test_split])
        trainer.log_metrics("predict", metrics)
        trainer.save_metrics("predict", metrics)
        all_metrics.update(metrics)
        if training_args.predict_with_generate:
            predictions = decode(tokenizer, result.predictions)
            if main_process:
                with open(output_dir / "generated_predictions.jsonl", "w", encoding="utf-8") as handle:
                    for prediction, (row_id, _, reference) in zip(predictions, test_rows, strict=True):
                        record = {"id": row_id, "prediction": prediction, "reference": reference}
                        handle.write(json.dumps(record) + "\n")

    if data_args.lead_baseline:
        articles = [article for _, article, _ in test_rows]
        metrics = lead_baseline(metric, articles, test_refs, data_args.lead_sentences, data_args.n_bootstrap)
        metrics["lead_samples"] = len(articles)
        trainer.log_metrics("lead", metrics)
        trainer.save_metrics("lead", metrics)
        all_metrics.update(metrics)

    if main_process:
        write_json(
            output_dir / "all_results.json", {**load_json(output_dir / "all_results.json"), **all_metrics}
        )
        if push:
            push_to_hub(
                str(output_dir),
                training_args,
                all_metrics,
                dataset=data_args.dataset,
                n_bootstrap=data_args.n_bootstrap,
                base_model=model_args.model_name_or_path,
            )
    return RunResult(all_metrics, str(output_dir), reports, predictions)


def final_logged_loss(trainer: Seq2SeqTrainer) -> float:
    """The last training loss the Trainer logged (NaN if it logged none)."""
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return float(losses[-1]) if losses else math.nan


def load_json(path: Path) -> dict[str, Any]:
    """A JSON file's object, {} if it does not exist."""
    return json.loads(path.read_text()) if path.exists() else {}


def parse_args(
    argv: Sequence[str] | None = None,
) -> tuple[ModelArguments, DataArguments, Seq2SeqTrainingArguments]:
    """Parse the command line (or a single .json file of arguments) into the three dataclasses."""
    parser = HfArgumentParser((ModelArguments, DataArguments, Seq2SeqTrainingArguments))
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def use_cpu_without_accelerator() -> None:
    """Under torchrun on a machine without GPU, make the Trainer run DDP on CPU over gloo.

    Without this (or --use_cpu), accelerate sees no device backend and every process trains alone with world
    size 1, all writing the same output_dir.
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


def main(argv: Sequence[str] | None = None) -> RunResult:
    """Command-line entry point; tears the process group down at the end of a multi-process run."""
    use_cpu_without_accelerator()
    model_args, data_args, training_args = parse_args(argv)
    setup_logging(training_args)
    check_world_size(training_args)
    logger.warning(
        "Process rank %s / world size %s, device %s",
        training_args.process_index,
        training_args.world_size,
        training_args.device,
    )
    try:
        return run(model_args, data_args, training_args)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
