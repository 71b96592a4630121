"""Summarization data: ACLSum full papers (`aclsum.py`), Hub datasets (arXiv/PubMed), local files and
`save_to_disk` folders.

Every loader returns a `datasets.DatasetDict` (an `IterableDatasetDict` with `streaming=True`, for corpora
larger than memory) whose splits have the columns `article` and `abstract` (plus `id` where the source has
one); `features.prepare_features` tokenizes a split.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq

from .aclsum import load_aclsum

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
logger = logging.getLogger(__name__)


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
