"""The splits a run needs, tokenized, with their data reports and the untruncated texts of the rows kept.

ROUGE is scored against the untruncated reference summaries, and `generated_predictions.jsonl` names each
row by its `id`: `PreparedSplits.rows` keeps (id, article, abstract) of every row in feature order. With
--streaming the train split is tokenized lazily as the Trainer reads it (--max_steps long), and a streamed
evaluation / test split is read into memory up to its --max_eval_samples / --max_predict_samples rows.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import datasets
from transformers import PreTrainedTokenizerBase, Seq2SeqTrainingArguments

from pyramidion_hf.training.arguments import DataArguments, ModelArguments
from pyramidion_hf.training.data import AnyDataset, load_summarization_data
from pyramidion_hf.training.features import prepare_features

logger = logging.getLogger(__name__)

FEATURE_COLUMNS = ("input_ids", "attention_mask", "labels")


@dataclass
class PreparedSplits:
    """Per split name: features (input_ids, attention_mask, labels), data report, kept rows (id, article,
    abstract) in feature order."""

    features: dict[str, AnyDataset]
    reports: dict[str, dict[str, Any]]
    rows: dict[str, list[tuple[Any, str, str]]]

    def n_examples(self, split: str) -> int | None:
        """The examples of a split's features (None for a streamed split: it has no length)."""
        features = self.features[split]
        return None if isinstance(features, datasets.IterableDataset) else len(features)

    def articles(self, split: str) -> list[str]:
        """The untruncated documents of the rows kept."""
        return [article for _, article, _ in self.rows.get(split, [])]

    def references(self, split: str) -> list[str]:
        """The untruncated reference summaries of the rows kept."""
        return [abstract for _, _, abstract in self.rows.get(split, [])]


def load_raw_data(
    data_args: DataArguments, model_args: ModelArguments | None = None
) -> datasets.DatasetDict | datasets.IterableDatasetDict:
    """The splits named by --train_file/--validation_file/--test_file, else those of --dataset (its
    --dataset_config_name; --cache_dir and --token from the model arguments)."""
    files = {
        data_args.train_split: data_args.train_file,
        data_args.validation_split: data_args.validation_file,
        data_args.test_split: data_args.test_file,
    }
    files = {split: path for split, path in files.items() if path is not None}
    hub = {} if model_args is None else {"cache_dir": model_args.cache_dir}
    if model_args is not None and model_args.token is not None and not files:
        hub["token"] = model_args.token
    return load_summarization_data(
        files or data_args.dataset,
        article_column=data_args.article_column,
        summary_column=data_args.summary_column,
        config_name=data_args.dataset_config_name,
        streaming=data_args.streaming,
        **hub,
    )


def wanted_splits(
    data_args: DataArguments, training_args: Seq2SeqTrainingArguments
) -> dict[str, tuple[int | None, str]]:
    """The splits the requested stages read, each with its --max_*_samples limit and that option's name; two
    stages may read one split (e.g. --test_split validation) if they ask for the same number of samples."""
    stages = (
        (data_args.train_split, training_args.do_train, data_args.max_train_samples),
        (data_args.validation_split, training_args.do_eval, data_args.max_eval_samples),
        (
            data_args.test_split,
            training_args.do_predict or data_args.lead_baseline,
            data_args.max_predict_samples,
        ),
    )
    wanted: dict[str, tuple[int | None, str]] = {}
    for (split, needed, limit), option in zip(stages, LIMIT_OPTIONS, strict=True):
        if not needed:
            continue
        if split in wanted and wanted[split][0] != limit:
            earlier, earlier_option = wanted[split]
            raise ValueError(
                f"Two stages read split {split!r} with different limits ({earlier_option} {earlier}, "
                f"{option} {limit}): give both the same value, or name different splits."
            )
        wanted.setdefault(split, (limit, option))
    return wanted


LIMIT_OPTIONS = ("--max_train_samples", "--max_eval_samples", "--max_predict_samples")


def label_pad_id(tokenizer: PreTrainedTokenizerBase, data_args: DataArguments) -> int:
    """The id that pads labels: -100 (left out of the loss) unless --ignore_pad_token_for_loss false."""
    return -100 if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id


def first_rows(dataset: AnyDataset, limit: int | None) -> AnyDataset:
    """The first `limit` rows (all if None)."""
    if limit is None:
        return dataset
    if isinstance(dataset, datasets.IterableDataset):
        return dataset.take(limit)
    return dataset.select(range(min(limit, len(dataset))))


def in_memory(split: str, split_data: AnyDataset, limit: int | None, option: str) -> datasets.Dataset:
    """A streamed evaluation / test split read into memory: its first `limit` rows (`option` sets it)."""
    if not isinstance(split_data, datasets.IterableDataset):
        return first_rows(split_data, limit)
    if limit is None:
        raise ValueError(
            f"Split {split!r} is streamed: pass {option} N to read its first N rows into memory for "
            "evaluation, or pass it as a file loaded without --streaming."
        )
    return datasets.Dataset.from_list(list(split_data.take(limit)))


def prepare_stream(
    split_data: datasets.IterableDataset, tokenizer: PreTrainedTokenizerBase, lengths: tuple[int, int],
    data_args: DataArguments,
) -> tuple[datasets.IterableDataset, dict[str, Any]]:  # fmt: skip
    """Lazy features of a streamed train split and its report (no counts: the stream is not read here)."""
    features, _ = prepare_features(
        split_data, tokenizer, *lengths, source_prefix=data_args.source_prefix or ""
    )
    report = {"streaming": True, "max_source_length": lengths[0], "max_target_length": lengths[1]}
    return features.select_columns(list(FEATURE_COLUMNS)), report


def prepare_split(
    split: str,
    split_data: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    lengths: tuple[int, int],
    training_args: Seq2SeqTrainingArguments,
    data_args: DataArguments,
) -> tuple[datasets.Dataset, dict[str, Any], list[tuple[Any, str, str]]]:
    """Features, report and kept rows of one split; `lengths` = (max source, max target) tokens."""
    ids = split_data["id"] if "id" in split_data.column_names else [None] * len(split_data)
    rows = list(zip(ids, split_data["article"], split_data["abstract"], strict=True))
    # a row index stands in for `id` so that the rows prepare_features keeps map back to their texts
    indexed = split_data.remove_columns([c for c in split_data.column_names if c == "id"])
    indexed = indexed.add_column("id", [str(i) for i in range(len(indexed))])
    with training_args.main_process_first(desc=f"{split} features"):
        features, report = prepare_features(
            indexed, tokenizer, *lengths, source_prefix=data_args.source_prefix or "",
            num_proc=data_args.preprocessing_num_workers,
            load_from_cache_file=False if data_args.overwrite_cache else None,
        )  # fmt: skip
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
    model_args: ModelArguments | None = None,
) -> PreparedSplits:
    """Load the data, check that every split the stages need exists, and prepare each of them."""
    if data_args.streaming and training_args.do_train and training_args.max_steps <= 0:
        raise ValueError("Training on a stream needs --max_steps N (a stream has no length to count epochs).")
    raw = load_raw_data(data_args, model_args)
    wanted = wanted_splits(data_args, training_args)
    for split in wanted:
        if split not in raw:
            raise ValueError(
                f"The data has no split {split!r} (it has {list(raw)}): pass it as --train_file / "
                "--validation_file / --test_file, or name another with --train_split / --validation_split / "
                "--test_split."
            )
    prepared = PreparedSplits({}, {}, {})
    for split, (limit, option) in wanted.items():
        lengths = (max_source_length, data_args.target_length(split))
        if split == data_args.train_split and isinstance(raw[split], datasets.IterableDataset):
            features, report = prepare_stream(first_rows(raw[split], limit), tokenizer, lengths, data_args)
            rows: list[tuple[Any, str, str]] = []
        else:
            split_data = in_memory(split, raw[split], limit, option)
            features, report, rows = prepare_split(
                split, split_data, tokenizer, lengths, training_args, data_args
            )
        prepared.features[split], prepared.reports[split], prepared.rows[split] = features, report, rows
    return prepared
