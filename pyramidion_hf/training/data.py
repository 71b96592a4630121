"""Summarization data: ACLSum full papers, Hub datasets (arXiv/PubMed), local files, and tokenized features.

Every loader returns a `datasets.DatasetDict` (an `IterableDatasetDict` with `streaming=True`, for corpora
larger than memory) whose splits have the columns `article` and `abstract` (plus `id` where the source has
one). `prepare_features` tokenizes a split and reports what it skipped and truncated.
"""

from __future__ import annotations

import codecs
import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.parquet as pq

from .metrics import split_sentences

ACLSUM_SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "test"}
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
LEAK_MIN_WORDS = 40  # a body passage sharing >= 40 consecutive words with the abstract is a copy of it
_LEAK_SHINGLE = 8  # n-gram size used to find shared passages
_WORD = re.compile(r"\w+")
logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- ACLSum


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _shared_runs(abstract_words: list[str], body_words: list[str]) -> list[tuple[int, int]]:
    """[start, end) word spans of `body_words` covered by 8-grams that also occur in `abstract_words`."""
    n = _LEAK_SHINGLE
    grams = {tuple(abstract_words[i : i + n]) for i in range(len(abstract_words) - n + 1)}
    covered = np.zeros(len(body_words) + 1, dtype=bool)  # the final False closes the last run
    for i in range(len(body_words) - n + 1):
        if tuple(body_words[i : i + n]) in grams:
            covered[i : i + n] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[False], covered]).astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _leaked_word_mask(abstract_words: list[str], body_words: list[str], min_words: int) -> np.ndarray:
    """(len(body_words),) bool: words in a shared run of >= `min_words` words."""
    leaked = np.zeros(len(body_words), dtype=bool)
    for start, end in _shared_runs(abstract_words, body_words):
        if end - start >= min_words:
            leaked[start:end] = True
    return leaked


def longest_shared_run(abstract: str, article: str) -> int:
    """Length in words of the longest passage of `article` made of 8-grams of `abstract` (normalised)."""
    return max((end - start for start, end in _shared_runs(_words(abstract), _words(article))), default=0)


def strip_abstract(
    paragraphs: list[list[str]], abstract: str, min_words: int = LEAK_MIN_WORDS
) -> tuple[list[list[str]], int]:
    """Drop the sentences of `paragraphs` (lists of sentences) that copy the abstract -> (kept, n_dropped).

    `kept` has one (possibly empty) list per input paragraph. A sentence goes when at least half its words lie
    in a passage of >= `min_words` consecutive words shared with the abstract (lower-cased word tokens, so
    spacing, punctuation and case do not hide a copy); this repeats, dropping every sentence such a passage
    touches, until no such passage is left.
    """
    abstract_words = _words(abstract)
    dropped_total, strict = 0, False
    while True:
        sentence_words = [[_words(s) for s in para] for para in paragraphs]
        flat = [w for para in sentence_words for words in para for w in words]
        leaked = _leaked_word_mask(abstract_words, flat, min_words)
        if not leaked.any():
            return paragraphs, dropped_total
        kept_paragraphs, position, dropped = [], 0, 0
        for para, para_words in zip(paragraphs, sentence_words, strict=True):
            kept = []
            for sentence, words in zip(para, para_words, strict=True):
                hits = int(leaked[position : position + len(words)].sum())
                position += len(words)
                if hits and (strict or 2 * hits >= len(words)):
                    dropped += 1
                else:
                    kept.append(sentence)
            kept_paragraphs.append(kept)
        paragraphs, dropped_total = kept_paragraphs, dropped_total + dropped
        strict = dropped == 0


def _clean(text: str) -> str:
    return " ".join(text.split())


def aclsum_example(document: Any) -> tuple[dict[str, str], int]:
    """One ACLSum paper as {"id", "article", "abstract"} and the number of body sentences dropped as copies.

    The article is the Grobid body: section titles on their own lines, then one line per paragraph, in order.
    """
    parse = document.get_fulltext_parse()
    pdf = parse["pdf_parse"]
    abstract = _clean(" ".join(p["text"] for p in pdf.get("abstract", [])))
    if not abstract:
        abstract = _clean(parse.get("abstract") or " ".join(document.sentences["abstract"]))
    sections, paragraphs = [], []
    for para in pdf["body_text"]:
        sentences = split_sentences(_clean(para["text"]))
        if sentences:
            sections.append(_clean(para.get("section") or ""))
            paragraphs.append(sentences)
    kept, n_dropped = strip_abstract(paragraphs, abstract)
    lines, current = [], None
    for section, sentences in zip(sections, kept, strict=True):
        if not sentences:
            continue
        if section and section != current:
            lines.append(section)
        current = section
        lines.append(" ".join(sentences))
    return {"id": document.id, "article": "\n".join(lines), "abstract": abstract}, n_dropped


@functools.cache
def _aclsum_rows(split: str) -> tuple[tuple[dict[str, str], ...], int]:
    try:
        from aclsum import ACLSum
    except ImportError as err:
        raise ImportError("load_aclsum needs the `aclsum` package: pip install aclsum") from err
    rows, n_stripped = [], 0
    for document in ACLSum(split):
        row, n_dropped = aclsum_example(document)
        rows.append(row)
        n_stripped += n_dropped > 0
    return tuple(rows), n_stripped


def load_aclsum(split: str) -> datasets.Dataset:
    """ACLSum (250 ACL papers; train 100 / val 50 / test 100) as full paper body -> abstract.

    `split` is "train", "val" (or "validation") or "test". Columns: `id` (ACL Anthology id), `article`
    (Grobid body text, section titles on their own lines) and `abstract`. Body sentences that copy the
    abstract (a passage of >= 40 consecutive shared words; 4 test papers) are removed so the target does not
    leak into the input.
    """
    if split not in ACLSUM_SPLITS:
        raise ValueError(f"unknown ACLSum split {split!r}: use one of {sorted(ACLSUM_SPLITS)}")
    rows, n_stripped = _aclsum_rows(ACLSUM_SPLITS[split])
    logger.info("ACLSum %s: %d papers, abstract copies stripped from %d", split, len(rows), n_stripped)
    features = datasets.Features({name: datasets.Value("string") for name in ("id", "article", "abstract")})
    return datasets.Dataset.from_list(
        list(rows), features=features, split=datasets.NamedSplit(ACLSUM_SPLITS[split])
    )


# ---------------------------------------------------------------------------------------- other sources


def _check_utf8(path: Path) -> None:
    """Raise ValueError naming `path` if it is not valid UTF-8 text (read in 1 MiB chunks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"cannot decode {path} as UTF-8 text (bad byte near offset {offset + err.start}); "
                    "re-encode the file as UTF-8"
                ) from err
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as err:
            raise ValueError(f"cannot decode {path} as UTF-8 text (truncated at the end)") from err


AnyDataset = datasets.Dataset | datasets.IterableDataset
AnyDatasetDict = datasets.DatasetDict | datasets.IterableDatasetDict


def dataset_columns(dataset: AnyDataset) -> list[str]:
    """The column names of a split; a stream without declared features is asked for its first row."""
    if dataset.column_names is not None:
        return list(dataset.column_names)
    return list(next(iter(dataset), {}))


def is_saved_dataset(path: str | Path) -> bool:
    """Whether `path` is a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`."""
    path = Path(path)
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _load_saved_split(path: Path, split: str, streaming: bool) -> AnyDataset:
    """One split of a save_to_disk folder: the Dataset itself, or the DatasetDict's `split` (or only) one."""
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded and len(loaded) != 1:
            raise ValueError(f"{path} holds the splits {list(loaded)}, not {split!r}")
        loaded = loaded[split] if split in loaded else next(iter(loaded.values()))
    return loaded.to_iterable_dataset() if streaming else loaded


def _load_local_file(
    path: str | Path, split: str, cache_dir: str | None, streaming: bool = False
) -> AnyDataset:
    path = Path(path)
    if is_saved_dataset(path):
        return _load_saved_split(path, split, streaming)
    fmt = LOCAL_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"unsupported file type {path.suffix!r} for {path}: use one of {sorted(LOCAL_FORMATS)} "
            "or a save_to_disk folder"
        )
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    if path.stat().st_size == 0:
        raise _no_rows(path, split)
    if fmt != "parquet":
        _check_utf8(path)
    try:
        return datasets.load_dataset(
            fmt, data_files={split: str(path)}, split=split, cache_dir=cache_dir, streaming=streaming
        )
    except Exception as err:  # datasets wraps parser errors in several types; name the file for the user
        if _has_no_rows(path, fmt, err):
            raise _no_rows(path, split) from None
        raise ValueError(f"cannot read {path} as {fmt}: {type(err).__name__}: {err}") from err


def _no_rows(path: Path, split: str) -> ValueError:
    """The error for a data file without rows (rather than datasets' StopIteration or 'no data')."""
    return ValueError(f"the file {path} has no rows: put the {split} examples in it, one per row")


def _has_no_rows(path: Path, fmt: str, error: Exception) -> bool:
    """Whether `datasets` failed on `path` because it holds no rows (a blank or header-only file)."""
    if fmt == "parquet":
        try:
            return pq.read_metadata(path).num_rows == 0
        except (OSError, ValueError):  # not a parquet file: the load error says so
            return False
    return "corresponds to no data" in str(error)


def _is_local(source: Any) -> bool:
    if isinstance(source, dict):
        return True
    if isinstance(source, Path):
        return True
    return isinstance(source, str) and (
        Path(source).suffix.lower() in LOCAL_FORMATS or Path(source).is_file() or is_saved_dataset(source)
    )


def _standardize(
    data: Mapping[str, AnyDataset], article_column: str, summary_column: str, id_column: str | None
) -> AnyDatasetDict:
    """Keep (id,) article, abstract under those names; ValueError if a configured column is missing."""
    out = {}
    for split, dataset in data.items():
        available = dataset_columns(dataset)
        wanted = {
            "article": (article_column, "article_column"),
            "abstract": (summary_column, "summary_column"),
        }
        if id_column is not None:
            wanted["id"] = (id_column, "id_column")
        elif "id" in available:
            wanted["id"] = ("id", "id_column")
        for column, option in wanted.values():
            if column not in available:
                raise ValueError(
                    f"split {split!r} has no column {column!r} (available columns: {available}); "
                    f"set {option}= to the column to use"
                )
        dataset = dataset.select_columns([column for column, _ in wanted.values()])
        mapping = {column: name for name, (column, _) in wanted.items() if column != name}
        if mapping:
            dataset = dataset.rename_columns(mapping)
        out[split] = dataset
    streamed = any(isinstance(dataset, datasets.IterableDataset) for dataset in out.values())
    return datasets.IterableDatasetDict(out) if streamed else datasets.DatasetDict(out)


def load_summarization_data(
    source: str | Path | dict[str, str | Path] = "aclsum",
    *,
    split: str | None = None,
    article_column: str = "article",
    summary_column: str = "abstract",
    id_column: str | None = None,
    config_name: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
    streaming: bool = False,
    **load_kwargs: Any,
) -> AnyDatasetDict:
    """Load a summarization corpus as a DatasetDict with columns `article`, `abstract` (and `id` if present).

    `source`: "aclsum" (splits train/validation/test); a local .jsonl/.json/.csv/.parquet file or
    `save_to_disk` folder (split "train", or `split`; a saved DatasetDict keeps its splits) or a dict split ->
    file / folder; otherwise a Hub dataset name passed to `datasets.load_dataset(source, config_name,
    split=split, revision=..., cache_dir=..., streaming=..., **load_kwargs)`, e.g. "ccdv/arxiv-summarization"
    (columns article/abstract). `streaming=True` returns an `IterableDatasetDict` read lazily (not for
    aclsum). `article_column`/`summary_column`/`id_column` name the source's columns; they are renamed to
    article/abstract/id. Empty texts are kept here and skipped (and counted) by `prepare_features`.
    """
    if isinstance(source, str) and source.lower() == "aclsum":
        if streaming:
            raise ValueError("aclsum (250 papers) is loaded in memory: drop streaming=True")
        names = [split] if split is not None else ["train", "validation", "test"]
        data = datasets.DatasetDict({name: load_aclsum(name) for name in names})
        return _standardize(data, "article", "abstract", None)
    if isinstance(source, (str, Path)) and split is None and (Path(source) / "dataset_dict.json").is_file():
        saved = datasets.load_from_disk(str(source))  # a saved DatasetDict keeps its split names
        data = {name: part.to_iterable_dataset() if streaming else part for name, part in saved.items()}
        return _standardize(data, article_column, summary_column, id_column)
    if _is_local(source):
        files = source if isinstance(source, dict) else {split or "train": source}
        if not files:
            raise ValueError("the dict of data files is empty: map split names to files")
        data = {name: _load_local_file(path, name, cache_dir, streaming) for name, path in files.items()}
    else:
        if streaming:
            load_kwargs["streaming"] = True
        data = datasets.load_dataset(
            str(source), name=config_name, split=split, revision=revision, cache_dir=cache_dir, **load_kwargs
        )
        if isinstance(data, (datasets.Dataset, datasets.IterableDataset)):
            data = {split.split("[")[0] if split else "train": data}
    return _standardize(data, article_column, summary_column, id_column)


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
