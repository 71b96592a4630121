"""ACLSum (the `aclsum` package's 250 papers) as summarization data: full paper bodies with their abstracts,
with the abstract stripped from the 4 bodies that still contain it (a leaked target otherwise)."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import datasets
import numpy as np

from .metrics import split_sentences

ACLSUM_SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "test"}
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
