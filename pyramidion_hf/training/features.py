"""Tokenized features of a summarization split for Seq2SeqTrainer, and the report of what was skipped and
truncated."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import datasets
import numpy as np

from .data import AnyDataset, dataset_columns

logger = logging.getLogger(__name__)




# ---------------------------------------------------------------------------------------------- features

SKIP_REASONS = ("empty_article", "empty_summary")


@dataclass
class DataReport:
    """What `prepare_features` did to one split: kept/skipped examples and truncation, lengths in tokens."""

    n_examples: int
    n_kept: int
    skipped: dict[str, int] = field(default_factory=dict)
    n_truncated_source: int = 0
    n_truncated_target: int = 0
    max_source_length: int = 0
    max_target_length: int = 0
    source_tokens_median: float = 0.0
    source_tokens_max: int = 0
    target_tokens_median: float = 0.0
    target_tokens_max: int = 0

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One line for logs."""
        skipped = ", ".join(f"{reason}={count}" for reason, count in self.skipped.items() if count) or "none"
        return (
            f"{self.n_examples} examples, {self.n_kept} kept, {self.n_skipped} skipped ({skipped}); "
            f"truncated: {self.n_truncated_source} sources > {self.max_source_length} tokens, "
            f"{self.n_truncated_target} targets > {self.max_target_length} tokens; "
            f"tokens before truncation: source median {self.source_tokens_median:g} "
            f"max {self.source_tokens_max}, "
            f"target median {self.target_tokens_median:g} max {self.target_tokens_max}"
        )


def _skip_reason(article: Any, summary: Any, index: int) -> str:
    for value, column in ((article, "article"), (summary, "summary")):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"row {index}: the {column} is a {type(value).__name__}, expected a string")
    if article is None or not article.strip():
        return "empty_article"
    if summary is None or not summary.strip():
        return "empty_summary"
    return ""


def _encode(
    tokenizer: Any, texts: list[str], max_length: int, target: bool
) -> tuple[list[list[int]], list[int]]:
    """Token ids truncated to `max_length` (the tokenizer's own truncation) and the untruncated lengths."""
    if not texts:  # every row of the batch was skipped
        return [], []
    key = "text_target" if target else "text"
    full = tokenizer(**{key: texts}, truncation=False, verbose=False)["input_ids"]
    lengths = [len(ids) for ids in full]
    long = [i for i, n in enumerate(lengths) if n > max_length]
    if long:
        cut = tokenizer(
            **{key: [texts[i] for i in long]}, truncation=True, max_length=max_length, verbose=False
        )
        for i, ids in zip(long, cut["input_ids"], strict=True):
            full[i] = ids
    return full, lengths


def _featurize(
    batch: dict[str, list[Any]],
    indices: list[int],
    *,
    tokenizer: Any,
    columns: tuple[str, str],
    lengths: tuple[int, int],
    source_prefix: str = "",
) -> dict[str, list[Any]]:
    """One `Dataset.map` batch: ids of the kept rows, empty lists plus a skip reason for the others.

    `columns` = (article, summary) column names, `lengths` = (max source, max target) tokens; `source_prefix`
    goes before every kept article.
    """
    articles, summaries = batch[columns[0]], batch[columns[1]]
    reasons = [_skip_reason(a, s, i) for a, s, i in zip(articles, summaries, indices, strict=True)]
    keep = [i for i, reason in enumerate(reasons) if not reason]
    sources, source_lengths = _encode(
        tokenizer, [source_prefix + articles[i] for i in keep], lengths[0], False
    )
    targets, target_lengths = _encode(tokenizer, [summaries[i] for i in keep], lengths[1], True)
    size = len(reasons)
    out: dict[str, list[Any]] = {
        "input_ids": [[] for _ in range(size)],
        "labels": [[] for _ in range(size)],
        "_source_length": [0] * size,
        "_target_length": [0] * size,
        "_skip": reasons,
    }
    for j, i in enumerate(keep):
        out["input_ids"][i], out["labels"][i] = sources[j], targets[j]
        out["_source_length"][i], out["_target_length"][i] = source_lengths[j], target_lengths[j]
    out["attention_mask"] = [[1] * len(ids) for ids in out["input_ids"]]
    return out


def _report(mapped: datasets.Dataset, n_examples: int, lengths: tuple[int, int]) -> DataReport:
    """The DataReport of a split mapped by `_featurize` (its `_skip` / `_*_length` columns)."""
    max_source_length, max_target_length = lengths
    stats = mapped.select_columns(["_skip", "_source_length", "_target_length"]).to_pandas()
    kept = stats["_skip"] == ""
    source_lengths = stats["_source_length"][kept].to_numpy()
    target_lengths = stats["_target_length"][kept].to_numpy()
    return DataReport(
        n_examples=n_examples,
        n_kept=int(kept.sum()),
        skipped={reason: int((stats["_skip"] == reason).sum()) for reason in SKIP_REASONS},
        n_truncated_source=int((source_lengths > max_source_length).sum()),
        n_truncated_target=int((target_lengths > max_target_length).sum()),
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        source_tokens_median=float(np.median(source_lengths)) if len(source_lengths) else 0.0,
        source_tokens_max=int(source_lengths.max(initial=0)),
        target_tokens_median=float(np.median(target_lengths)) if len(target_lengths) else 0.0,
        target_tokens_max=int(target_lengths.max(initial=0)),
    )


def _prepare_stream(
    dataset: datasets.IterableDataset, featurize: Any, remove: list[str], batch_size: int
) -> datasets.IterableDataset:
    """The features of a streamed split, computed lazily batch by batch, skipped rows dropped on the fly."""
    mapped = dataset.map(
        featurize, batched=True, batch_size=batch_size, with_indices=True, remove_columns=remove
    )
    kept = mapped.filter(lambda skip: [not s for s in skip], input_columns="_skip", batched=True)
    return kept.remove_columns(["_skip", "_source_length", "_target_length"])


def _check_split(dataset: AnyDataset, lengths: tuple[int, int], columns: tuple[str, str]) -> list[str]:
    """Refuse what prepare_features cannot tokenize (a DatasetDict, lengths < 2, no rows, missing columns);
    return the split's columns."""
    if isinstance(dataset, datasets.DatasetDict):
        raise ValueError(
            "prepare_features takes one split (a Dataset); call it per split, e.g. on data['train']"
        )
    if min(lengths) < 2:
        raise ValueError("max_source_length and max_target_length must be >= 2 (room for <s> and </s>)")
    if isinstance(dataset, datasets.Dataset) and len(dataset) == 0:
        raise ValueError(f"the split {str(dataset.split or '')!r} has no rows: give it examples")
    available = dataset_columns(dataset)
    for column, option in zip(columns, ("article_column", "summary_column"), strict=True):
        if column not in available:
            raise ValueError(
                f"the dataset has no column {column!r} (available columns: {available}); "
                f"set {option}= to the column to use"
            )
    return available


def prepare_features(
    dataset: AnyDataset,
    tokenizer: Any,
    max_source_length: int,
    max_target_length: int,
    *,
    article_column: str = "article",
    summary_column: str = "abstract",
    source_prefix: str = "",
    batch_size: int = 256,
    num_proc: int | None = None,
    load_from_cache_file: bool | None = None,
) -> tuple[AnyDataset, DataReport | None]:
    """Tokenize one split for Seq2SeqTrainer: `input_ids`, `attention_mask`, `labels` (+ `id` if present).

    Rows whose article or summary is empty/blank/None are skipped and counted by reason; sources longer than
    `max_source_length` and summaries longer than `max_target_length` tokens (special tokens included) are
    truncated by the tokenizer (keeping `</s>`) and counted. Batched `Dataset.map`: it scales and caches
    (`load_from_cache_file=False` tokenizes again). An `IterableDataset` is tokenized lazily as it is read:
    no `num_proc`, and no report (None) since its rows are not known in advance.
    """
    columns = _check_split(dataset, (max_source_length, max_target_length), (article_column, summary_column))
    featurize = functools.partial(
        _featurize,
        tokenizer=tokenizer,
        columns=(article_column, summary_column),
        lengths=(max_source_length, max_target_length),
        source_prefix=source_prefix,
    )
    remove = [c for c in columns if c != "id"]
    if isinstance(dataset, datasets.IterableDataset):
        if num_proc is not None:
            raise ValueError("num_proc does not apply to a streamed dataset: it is tokenized lazily")
        return _prepare_stream(dataset, featurize, remove, batch_size), None
    mapped = dataset.map(
        featurize, batched=True, batch_size=batch_size, with_indices=True, num_proc=num_proc,
        remove_columns=remove, load_from_cache_file=load_from_cache_file, desc="Tokenizing",
    )  # fmt: skip
    report = _report(mapped, len(dataset), (max_source_length, max_target_length))
    if report.n_skipped:
        mapped = mapped.filter(
            lambda skip: [not s for s in skip],
            input_columns="_skip",
            batched=True,
            batch_size=max(batch_size, 1000),
            num_proc=num_proc,
            load_from_cache_file=load_from_cache_file,
            desc="Dropping skipped rows",
        )
    features = mapped.remove_columns(["_skip", "_source_length", "_target_length"])
    logger.info("prepare_features: %s", report.summary())
    return features, report
