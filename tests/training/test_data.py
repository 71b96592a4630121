"""Data loading (ACLSum, local files, Hub names) and feature preparation with exact skip/truncation counts."""

import json
import re
from dataclasses import asdict

import datasets
import pandas as pd
import pytest
from aclsum import ACLSum

from pyramidion_hf.training.aclsum import LEAK_MIN_WORDS, load_aclsum, longest_shared_run, strip_abstract
from pyramidion_hf.training.data import load_summarization_data
from pyramidion_hf.training.features import DataReport, prepare_features
from pyramidion_hf.training.tokenizer import train_tokenizer


def _normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


@pytest.fixture(scope="module")
def aclsum():
    return load_summarization_data("aclsum")


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["the quick brown fox jumps over the lazy dog", "summaries of long documents", "a b c d e f g"]
    return train_tokenizer(texts * 10, vocab_size=300, min_frequency=1)


# ------------------------------------------------------------------------------------------------ ACLSum


def test_aclsum_splits_sizes_and_columns(aclsum):
    assert {name: len(split) for name, split in aclsum.items()} == {
        "train": 100,
        "validation": 50,
        "test": 100,
    }
    ids = [set(split["id"]) for split in aclsum.values()]
    assert [len(s) for s in ids] == [100, 50, 100]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert ids[0] == {doc.id for doc in ACLSum("train")}  # the package's own split, kept as is
    assert len(load_aclsum("val")) == len(load_aclsum("validation")) == 50
    for split in aclsum.values():
        assert set(split.column_names) == {"id", "article", "abstract"}
        for row in split:
            assert len(row["article"].split()) > 500 and len(row["abstract"].split()) > 20


def test_no_article_contains_its_abstract_and_four_were_stripped(aclsum):
    stripped = []
    for name, split in aclsum.items():
        for doc, row in zip(ACLSum("val" if name == "validation" else name), split, strict=True):
            assert doc.id == row["id"]
            assert _normalised(row["abstract"]) not in _normalised(row["article"])
            assert longest_shared_run(row["abstract"], row["article"]) < LEAK_MIN_WORDS
            body = "\n".join(p["text"] for p in doc.get_fulltext_parse()["pdf_parse"]["body_text"])
            if longest_shared_run(row["abstract"], body) >= LEAK_MIN_WORDS:
                stripped.append(row["id"])
                assert len(row["article"]) < len(" ".join(body.split()))
    assert sorted(stripped) == ["P01-1040", "P08-1083", "P16-1031", "P93-1015"]


def test_article_keeps_sections_in_order(aclsum):
    for name, split in aclsum.items():
        for doc, row in zip(ACLSum("val" if name == "validation" else name), split, strict=True):
            paragraphs = [p for p in doc.get_fulltext_parse()["pdf_parse"]["body_text"] if p["section"]]
            first, last = paragraphs[0]["section"], paragraphs[-1]["section"]
            article = row["article"]
            lines = article.split("\n")
            assert first in lines and last in lines  # section titles are their own lines
            if first != last:
                assert lines.index(first) < len(lines) - 1 - lines[::-1].index(last)
    first_line = aclsum["train"][0]["article"].split("\n")[0]
    assert first_line == "Introduction"


def test_strip_abstract_drops_copied_sentences_only():
    abstract = " ".join(f"word{i}" for i in range(60)) + "."
    copied = " ".join(f"word{i}" for i in range(50)) + "."
    paragraphs = [
        ["An original opening sentence.", copied, "Original closing words."],
        ["Another paragraph."],
    ]
    kept, dropped = strip_abstract(paragraphs, abstract)
    assert dropped == 1
    assert kept == [["An original opening sentence.", "Original closing words."], ["Another paragraph."]]
    short = " ".join(f"word{i}" for i in range(20)) + "."
    assert strip_abstract([[short]], abstract) == ([[short]], 0)  # a short quote is normal reuse


# ------------------------------------------------------------------------------------------- local files

ROWS = [
    {"doc_id": "a", "text": "First document body.", "summary": "First summary."},
    {"doc_id": "b", "text": "Second document body.", "summary": "Second summary."},
    {"doc_id": "c", "text": "Third document body, with ünïcödé.", "summary": "Third summary."},
]


def _write(frame: pd.DataFrame, path, fmt: str) -> None:
    if fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_local_files_load_and_rename_columns(tmp_path, fmt):
    frame = pd.DataFrame(ROWS)
    path = tmp_path / f"data.{fmt}"
    _write(frame, path, fmt)
    data = load_summarization_data(
        str(path),
        article_column="text",
        summary_column="summary",
        id_column="doc_id",
        cache_dir=str(tmp_path),
    )
    assert list(data) == ["train"]
    assert set(data["train"].column_names) == {"id", "article", "abstract"}
    assert data["train"]["article"] == [r["text"] for r in ROWS]
    assert data["train"]["abstract"] == [r["summary"] for r in ROWS]
    assert data["train"]["id"] == ["a", "b", "c"]


def test_dict_of_split_files(tmp_path):
    frame = pd.DataFrame(ROWS).rename(columns={"text": "article", "summary": "abstract"})
    _write(frame.iloc[:2], tmp_path / "train.jsonl", "jsonl")
    _write(frame.iloc[2:], tmp_path / "test.parquet", "parquet")
    files = {"train": tmp_path / "train.jsonl", "test": str(tmp_path / "test.parquet")}
    data = load_summarization_data(files, cache_dir=str(tmp_path))
    assert {k: len(v) for k, v in data.items()} == {"train": 2, "test": 1}
    assert data["test"]["article"] == ["Third document body, with ünïcödé."]
    assert data["test"].column_names == ["article", "abstract"]  # doc_id is not `id`: dropped


def test_missing_column_names_available_columns_and_option(tmp_path):
    path = tmp_path / "data.jsonl"
    _write(pd.DataFrame(ROWS), path, "jsonl")
    with pytest.raises(ValueError, match=r"no column 'article'.*doc_id.*text.*summary.*article_column="):
        load_summarization_data(str(path), cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"no column 'abstract'.*summary_column="):
        load_summarization_data(str(path), article_column="text", cache_dir=str(tmp_path))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.jsonl", b'{"article": "ok", "abstract": "ok"}\n\xff\xfe\xfa broken bytes\n'),
        ("bad.csv", b"article,abstract\n\x80\x81,\xfe\n"),
        ("bad2.jsonl", b'{"article": "ok", "abstract": \n'),
        ("bad.parquet", b"PAR1 this is not a parquet file"),
    ],
)
def test_undecodable_file_names_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_summarization_data(str(path), cache_dir=str(tmp_path / "cache"))


def test_unsupported_or_missing_files(tmp_path):
    with pytest.raises(ValueError, match="unsupported file type"):
        (tmp_path / "data.txt").write_text("x")
        load_summarization_data({"train": tmp_path / "data.txt"})
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_summarization_data(str(tmp_path / "missing.jsonl"))


def test_hub_name_goes_to_datasets_load_dataset(monkeypatch):
    calls = []
    fake = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"article": ["a long paper"], "abstract": ["short"], "x": [1]}
            ),
            "validation": datasets.Dataset.from_dict({"article": ["b"], "abstract": ["c"], "x": [2]}),
        }
    )

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return fake if kwargs.get("split") is None else fake["train"]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_summarization_data("ccdv/arxiv-summarization", config_name="document", revision="main")
    assert calls[-1] == (
        "ccdv/arxiv-summarization",
        "document",
        {"split": None, "revision": "main", "cache_dir": None},
    )
    assert list(data) == ["train", "validation"] and data["train"].column_names == ["article", "abstract"]
    one = load_summarization_data("ccdv/pubmed-summarization", split="train[:1]", num_proc=2)
    assert calls[-1] == (
        "ccdv/pubmed-summarization",
        None,
        {"split": "train[:1]", "revision": None, "cache_dir": None, "num_proc": 2},
    )
    assert list(one) == ["train"] and one["train"]["abstract"] == ["short"]
    with pytest.raises(ValueError, match=r"available columns: \['article', 'abstract', 'x'\]"):
        load_summarization_data("ccdv/arxiv-summarization", summary_column="summary")


# ---------------------------------------------------------------------------------------------- features


def _ids(tokenizer, text):
    return tokenizer(text).input_ids


def test_prepare_features_exact_counts(tokenizer):
    long_article = "the quick brown fox jumps over the lazy dog " * 3
    long_summary = "summaries of long documents " * 4
    rows = [
        {"id": "ok", "article": "a b c", "abstract": "d e"},
        {"id": "empty_article", "article": "", "abstract": "d e"},
        {"id": "blank_article", "article": "  \n\t ", "abstract": "d e"},
        {"id": "none_summary", "article": "a b c", "abstract": None},
        {"id": "blank_summary", "article": "a b c", "abstract": "   "},
        {"id": "both_empty", "article": "", "abstract": ""},
        {"id": "long_source", "article": long_article, "abstract": "d e"},
        {"id": "long_target", "article": "a b c", "abstract": long_summary},
        {"id": "long_both", "article": long_article, "abstract": long_summary},
    ]
    max_source, max_target = 12, 8
    assert len(_ids(tokenizer, long_article)) > max_source and len(_ids(tokenizer, "a b c")) <= max_source
    assert len(_ids(tokenizer, long_summary)) > max_target and len(_ids(tokenizer, "d e")) <= max_target
    features, report = prepare_features(datasets.Dataset.from_list(rows), tokenizer, max_source, max_target)
    assert isinstance(report, DataReport)
    assert report.n_examples == 9 and report.n_kept == 4 and report.n_skipped == 5
    assert report.skipped == {"empty_article": 3, "empty_summary": 2}
    assert report.n_truncated_source == 2 and report.n_truncated_target == 2
    assert report.source_tokens_max == len(_ids(tokenizer, long_article))
    assert report.target_tokens_max == len(_ids(tokenizer, long_summary))
    assert features["id"] == ["ok", "long_source", "long_target", "long_both"]
    assert set(features.column_names) == {"id", "input_ids", "attention_mask", "labels"}
    by_id = {row["id"]: row for row in features}
    assert by_id["ok"]["input_ids"] == _ids(tokenizer, "a b c")
    assert by_id["ok"]["labels"] == _ids(tokenizer, "d e")
    truncated = by_id["long_both"]
    assert len(truncated["input_ids"]) == max_source and len(truncated["labels"]) == max_target
    assert truncated["input_ids"][0] == 0 and truncated["input_ids"][-1] == 2 and truncated["labels"][-1] == 2
    assert truncated["input_ids"][:-1] == _ids(tokenizer, long_article)[: max_source - 1]
    assert all(
        len(r["attention_mask"]) == len(r["input_ids"]) and set(r["attention_mask"]) == {1} for r in features
    )
    line = report.summary()
    assert (
        "\n" not in line and "9 examples" in line and "empty_article=3" in line and "2 sources > 12" in line
    )
    json.dumps(asdict(report))


def test_prepare_features_counts_survive_the_map_cache(tmp_path, tokenizer):
    rows = [{"article": "a b c " * 10, "abstract": "d"}, {"article": " ", "abstract": "d"}]
    path = tmp_path / "data.jsonl"
    _write(pd.DataFrame(rows), path, "jsonl")
    split = load_summarization_data(str(path), cache_dir=str(tmp_path / "cache"))["train"]
    features, first = prepare_features(split, tokenizer, 8, 8)
    cached, second = prepare_features(split, tokenizer, 8, 8)
    assert cached.cache_files == features.cache_files and len(features.cache_files) > 0  # map was not rerun
    assert first == second and first.n_truncated_source == 1 and first.skipped["empty_article"] == 1


def test_prepare_features_when_every_row_is_skipped(tmp_path, tokenizer):
    path = tmp_path / "empty.csv"
    path.write_text("article,abstract\n,d\n,\n")  # pandas reads the blank cells as missing (None / NaN)
    split = load_summarization_data(str(path), cache_dir=str(tmp_path / "cache"))["train"]
    features, report = prepare_features(split, tokenizer, 8, 8)
    assert len(features) == 0 and report.n_kept == 0
    assert report.skipped == {"empty_article": 2, "empty_summary": 0}
    assert report.source_tokens_median == 0.0 and "0 kept" in report.summary()


def test_prepare_features_bad_input(tokenizer):
    dataset = datasets.Dataset.from_list([{"article": "a", "abstract": "b"}])
    with pytest.raises(ValueError, match="one split"):
        prepare_features(datasets.DatasetDict({"train": dataset}), tokenizer, 8, 8)
    with pytest.raises(ValueError, match=r"no column 'text'.*article_column="):
        prepare_features(dataset, tokenizer, 8, 8, article_column="text")
    with pytest.raises(ValueError, match=">= 2"):
        prepare_features(dataset, tokenizer, 1, 8)
    numbers = datasets.Dataset.from_list([{"article": "a", "abstract": 3}])
    with pytest.raises(ValueError, match="expected a string"):
        prepare_features(numbers, tokenizer, 8, 8)
