"""A synthetic long-document selection task: copy the marked spans of a document of filler, ignore the decoys.

The answer depends on a few input tokens only, which is what trainable pooling must learn to keep (paper
Appendix A / Table 4). Each document (``bos body eos``) is filler words with ``n_spans`` marked spans
``MARK_OPEN_i c1 .. cL MARK_CLOSE`` and ``n_distractors`` decoy spans ``DECOY_OPEN c1 .. cL DECOY_CLOSE``
whose content comes from the same content vocabulary. The target is the marked spans' content, in document
order.
Marked spans are numbered like citation markers: the i-th one (in document order) opens with
``MARK_OPEN_IDS[i]``, so the decoder can look spans up by number; with ``numbered_marks=False`` every marked
span opens with ``MARK_OPEN_IDS[0]`` and the order must be read from positions (a harder task).
With ``ordered_content`` the j-th token of every span (marked or decoy) comes from the j-th of ``span_length``
equal slices of the content vocabulary, so a token's place in its span is readable from the token itself (like
typed fields of a record); otherwise every content token is drawn from the whole content vocabulary.

Fixed vocabulary layout (ids):

====================  ==============================================================
0 / 1 / 2 / 3 / 4     bos ``<s>`` / pad ``<pad>`` / eos ``</s>`` / unk / mask (as ``training.tokenizer``)
5 .. 12               ``MARK_OPEN_IDS``: the opener of the 1st .. 8th marked span
13                    ``MARK_CLOSE``: closes a marked span
14 / 15               ``DECOY_OPEN`` / ``DECOY_CLOSE``: look-alike brackets around a distractor span
16 .. 16+C-1           content tokens (C = ``content_vocab_size``), used by marked and decoy spans
16+C .. vocab_size-1  filler tokens (the rest of the document)
====================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import datasets
import numpy as np
import torch

BOS_ID, PAD_ID, EOS_ID, UNK_ID, MASK_ID = 0, 1, 2, 3, 4
MAX_NUMBERED_SPANS = 8
MARK_OPEN_IDS = range(5, 5 + MAX_NUMBERED_SPANS)
MARK_CLOSE_ID = 13
DECOY_OPEN_ID, DECOY_CLOSE_ID = 14, 15
FIRST_CONTENT_ID = 16


def vocabulary_layout(vocab_size: int = 512, content_vocab_size: int = 64) -> dict[str, range | int]:
    """The id ranges of the task's vocabulary (see the module docstring)."""
    first_filler = FIRST_CONTENT_ID + content_vocab_size
    return {
        "bos": BOS_ID, "pad": PAD_ID, "eos": EOS_ID, "unk": UNK_ID, "mask": MASK_ID,
        "mark_open": MARK_OPEN_IDS, "mark_close": MARK_CLOSE_ID,
        "decoy_open": DECOY_OPEN_ID, "decoy_close": DECOY_CLOSE_ID,
        "content": range(FIRST_CONTENT_ID, first_filler), "filler": range(first_filler, vocab_size),
    }


def build_selection_dataset(
    n_examples: int,
    doc_length: int = 2048,
    n_spans: int = 4,
    span_length: int = 8,
    n_distractors: int = 4,
    vocab_size: int = 512,
    content_vocab_size: int = 64,
    min_doc_length: int | None = None,
    numbered_marks: bool = True,
    ordered_content: bool = True,
    seed: int = 0,
) -> datasets.Dataset:
    """Build ``n_examples`` documents of ``doc_length`` tokens (uniform in [min_doc_length, doc_length]);
    ``numbered_marks`` and ``ordered_content``: see the module docstring.

    Columns: ``input_ids``, ``attention_mask``, ``labels`` (``bos`` + marked content in order + ``eos``),
    ``marked_positions`` (positions in ``input_ids`` of the marked content tokens, for ``selection_recall``)
    and ``distractor_positions`` (positions of the decoy content tokens). Same args + seed -> same data.
    """
    needed = _check_args(
        n_examples, doc_length, n_spans, span_length, n_distractors, vocab_size, content_vocab_size,
        numbered_marks, ordered_content,
    )  # fmt: skip
    slice_size = content_vocab_size // span_length if ordered_content else content_vocab_size
    min_length = doc_length if min_doc_length is None else min_doc_length
    if not needed <= min_length <= doc_length:
        raise ValueError(
            f"min_doc_length={min_doc_length} must lie in [{needed}, doc_length={doc_length}] "
            "(room for bos, eos and every span)."
        )
    rng = np.random.default_rng(seed)
    layout = vocabulary_layout(vocab_size, content_vocab_size)
    # token j of a span: from slice j of the content ids (ordered_content) or from all of them
    firsts = layout["content"].start + (np.arange(span_length) * slice_size if ordered_content else 0)
    spans = _Spans(
        kinds=np.array([True] * n_spans + [False] * n_distractors, dtype=bool),
        length=span_length, firsts=firsts, slice_size=slice_size, numbered=numbered_marks,
    )  # fmt: skip
    columns: dict[str, list] = {k: [] for k in ("input_ids", "attention_mask", "labels", "marked_positions",
                                                "distractor_positions")}
    for _ in range(n_examples):
        length = int(rng.integers(min_length, doc_length + 1))
        ids, marked, decoys, target = _document(rng, length, spans, layout["filler"])
        columns["input_ids"].append(ids)
        columns["attention_mask"].append([1] * length)
        columns["labels"].append([BOS_ID, *target, EOS_ID])
        columns["marked_positions"].append(marked)
        columns["distractor_positions"].append(decoys)
    return datasets.Dataset.from_dict(columns)


@dataclass(frozen=True)
class _Spans:
    """How the spans of every document are drawn."""

    kinds: np.ndarray  # (n_spans + n_distractors,) bool: True = marked, False = decoy (shuffled per document)
    length: int  # content tokens per span
    firsts: np.ndarray  # (length,) or scalar: first content id each span token is drawn from
    slice_size: int  # each span token is firsts[j] + an int in [0, slice_size)
    numbered: bool  # the i-th marked span opens with MARK_OPEN_IDS[i] (else all with MARK_OPEN_IDS[0])


def _document(
    rng: np.random.Generator, length: int, spans: _Spans, filler: range
) -> tuple[list[int], list[int], list[int], list[int]]:
    """One document of `length` tokens: (input_ids, marked content positions, decoy content positions,
    marked content in order), the spans shuffled and placed between random runs of filler."""
    kinds = rng.permutation(spans.kinds)
    n_filler = length - 2 - len(kinds) * (spans.length + 2)
    cuts = np.sort(rng.integers(0, n_filler + 1, size=len(kinds)))
    gaps = np.diff(np.concatenate([[0], cuts, [n_filler]]))
    ids = [BOS_ID]
    marked, decoys, target = [], [], []
    for gap, is_marked in zip(gaps[:-1], kinds, strict=True):
        ids.extend(rng.integers(filler.start, filler.stop, size=gap).tolist())
        span = (spans.firsts + rng.integers(0, spans.slice_size, size=spans.length)).tolist()
        start = len(ids) + 1
        opener = MARK_OPEN_IDS[len(target) // spans.length if spans.numbered else 0]
        ids.append(opener if is_marked else DECOY_OPEN_ID)
        ids.extend(span)
        ids.append(MARK_CLOSE_ID if is_marked else DECOY_CLOSE_ID)
        (marked if is_marked else decoys).extend(range(start, start + spans.length))
        if is_marked:
            target.extend(span)
    ids.extend(rng.integers(filler.start, filler.stop, size=gaps[-1]).tolist())
    ids.append(EOS_ID)
    return ids, marked, decoys, target


def selection_recall(
    pooling_indices: torch.Tensor | Sequence[torch.Tensor] | Sequence[Sequence[int]],
    marked_positions: Sequence[Sequence[int]],
) -> float:
    """Fraction of all marked content positions that survive pooling (micro-averaged over the batch).

    ``pooling_indices``: (B, k) document positions, -1 = masked (a model's ``encoder_pooling_indices[-1]``);
    a tuple of per-layer tensors uses the last (what the decoder sees). ``marked_positions``: B lists.
    """
    if isinstance(pooling_indices, tuple):
        if not pooling_indices:
            raise ValueError("pooling_indices is an empty tuple: the model has no pooling layer to score.")
        pooling_indices = pooling_indices[-1]
    rows = pooling_indices.tolist() if isinstance(pooling_indices, torch.Tensor) else list(pooling_indices)
    if len(rows) != len(marked_positions):
        raise ValueError(
            f"pooling_indices has {len(rows)} rows but marked_positions has {len(marked_positions)}: "
            "pass one row of positions per document."
        )
    total = sum(len(m) for m in marked_positions)
    if total == 0:
        raise ValueError("marked_positions holds no position: recall is undefined.")
    kept = sum(len(set(row) & set(marked)) for row, marked in zip(rows, marked_positions, strict=True))
    return kept / total


def _check_args(
    n_examples: int, doc_length: int, n_spans: int, span_length: int, n_distractors: int, vocab_size: int,
    content_vocab_size: int, numbered_marks: bool, ordered_content: bool,
) -> int:
    """Raise on arguments no document can satisfy; return the tokens a document needs (bos, eos, spans)."""
    if n_examples < 0:
        raise ValueError(f"n_examples must be >= 0, got {n_examples}.")
    if n_spans < 1 or span_length < 1 or n_distractors < 0:
        raise ValueError(
            f"need n_spans >= 1, span_length >= 1 and n_distractors >= 0, got {n_spans}, {span_length}, "
            f"{n_distractors}."
        )
    if content_vocab_size < 1 or vocab_size < FIRST_CONTENT_ID + content_vocab_size + 1:
        raise ValueError(
            f"vocab_size={vocab_size} leaves no filler tokens: it must be at least "
            f"{FIRST_CONTENT_ID + content_vocab_size + 1} ({FIRST_CONTENT_ID} special ids + "
            "content_vocab_size + >= 1 filler)."
        )
    needed = 2 + (n_spans + n_distractors) * (span_length + 2)
    if doc_length < needed:
        raise ValueError(
            f"doc_length={doc_length} cannot hold bos, eos and {n_spans + n_distractors} spans of "
            f"{span_length}+2 tokens: use doc_length >= {needed} or fewer/shorter spans."
        )
    if numbered_marks and n_spans > MAX_NUMBERED_SPANS:
        raise ValueError(
            f"n_spans={n_spans} exceeds the {MAX_NUMBERED_SPANS} numbered span openers: use n_spans <= "
            f"{MAX_NUMBERED_SPANS} or numbered_marks=False."
        )
    if ordered_content and content_vocab_size < span_length:
        raise ValueError(
            f"ordered_content needs content_vocab_size >= span_length, got {content_vocab_size} < "
            f"{span_length}: raise content_vocab_size or pass ordered_content=False."
        )
    return needed
