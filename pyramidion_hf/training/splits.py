"""The splits a run needs, tokenized, with their data reports and the untruncated texts of the rows kept.

ROUGE is scored against the untruncated reference summaries, and `generated_predictions.jsonl` names each
row by its `id`: `PreparedSplits.rows` keeps (id, article, abstract) of every row in feature order.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase, Seq2SeqTrainingArguments

from pyramidion_hf.training.arguments import DataArguments
from pyramidion_hf.training.data import load_summarization_data, prepare_features

logger = logging.getLogger(__name__)

FEATURE_COLUMNS = ("input_ids", "attention_mask", "labels")


@dataclass
class PreparedSplits:
    """Per split name: features (input_ids, attention_mask, labels), data report, kept rows (id, article,
    abstract) in feature order."""

    features: dict[str, datasets.Dataset]
    reports: dict[str, dict[str, Any]]
    rows: dict[str, list[tuple[Any, str, str]]]

    def articles(self, split: str) -> list[str]:
        """The untruncated documents of the rows kept."""
        return [article for _, article, _ in self.rows.get(split, [])]

    def references(self, split: str) -> list[str]:
        """The untruncated reference summaries of the rows kept."""
        return [abstract for _, _, abstract in self.rows.get(split, [])]


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


def wanted_splits(data_args: DataArguments, training_args: Seq2SeqTrainingArguments) -> dict[str, int | None]:
    """The splits the requested stages read, each with its --max_*_samples limit."""
    wanted = {
        data_args.train_split: (training_args.do_train, data_args.max_train_samples),
        data_args.validation_split: (training_args.do_eval, data_args.max_eval_samples),
        data_args.test_split: (
            training_args.do_predict or data_args.lead_baseline,
            data_args.max_predict_samples,
        ),
    }
    return {split: limit for split, (needed, limit) in wanted.items() if needed}


def first_rows(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """The first `limit` rows (all if None)."""
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def prepare_split(
    split: str,
    split_data: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    lengths: tuple[int, int],
    training_args: Seq2SeqTrainingArguments,
) -> tuple[datasets.Dataset, dict[str, Any], list[tuple[Any, str, str]]]:
    """Features, report and kept rows of one split; `lengths` = (max source, max target) tokens."""
    ids = split_data["id"] if "id" in split_data.column_names else [None] * len(split_data)
    rows = list(zip(ids, split_data["article"], split_data["abstract"], strict=True))
    # a row index stands in for `id` so that the rows prepare_features keeps map back to their texts
    indexed = split_data.remove_columns([c for c in split_data.column_names if c == "id"])
    indexed = indexed.add_column("id", [str(i) for i in range(len(indexed))])
    with training_args.main_process_first(desc=f"{split} features"):
        features, report = prepare_features(indexed, tokenizer, *lengths)
    logger.info("Data report for %s: %s", split, report.summary())
    if len(features) == 0:
        raise ValueError(f"No usable example left in split {split!r}: {asdict(report)}.")
    kept = [rows[int(i)] for i in features["id"]]
    features = features.remove_columns([c for c in features.column_names if c not in FEATURE_COLUMNS])
    return features, asdict(report), kept


def prepare_splits(
    data_args: DataArguments,
    training_args: Seq2SeqTrainingArguments,
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int,
) -> PreparedSplits:
    """Load the data, check that every split the stages need exists, and prepare each of them."""
    raw = load_raw_data(data_args)
    wanted = wanted_splits(data_args, training_args)
    for split in wanted:
        if split not in raw:
            raise ValueError(
                f"The data has no split {split!r} (it has {list(raw)}): pass it as --train_file / "
                "--validation_file / --test_file, or name another with --train_split / --validation_split / "
                "--test_split."
            )
    prepared = PreparedSplits({}, {}, {})
    lengths = (max_source_length, data_args.max_target_length)
    for split, limit in wanted.items():
        features, report, rows = prepare_split(
            split, first_rows(raw[split], limit), tokenizer, lengths, training_args
        )
        prepared.features[split], prepared.reports[split], prepared.rows[split] = features, report, rows
    return prepared
