"""A synthetic long-document selection task: copy the marked spans of a document of filler, ignore the decoys.

The answer depends on a few input tokens only, which is what trainable pooling must learn to keep (paper
Appendix A / Table 4). Each document (``bos body eos``) is filler words with ``n_spans`` marked spans
``MARK_OPEN c1 .. cL MARK_CLOSE`` and ``n_distractors`` decoy spans ``DECOY_OPEN c1 .. cL DECOY_CLOSE`` whose
content comes from the same content vocabulary. The target is the marked spans' content, in document order.

Fixed vocabulary layout (ids):

====================  ==============================================================
0 / 1 / 2 / 3 / 4     bos ``<s>`` / pad ``<pad>`` / eos ``</s>`` / unk / mask (as ``pyramidion_hf.tokenizer``)
5 / 6                 ``MARK_OPEN`` / ``MARK_CLOSE``: the marker pair around a span to copy
7 / 8                 ``DECOY_OPEN`` / ``DECOY_CLOSE``: look-alike brackets around a distractor span
9 .. 9+C-1             content tokens (C = ``content_vocab_size``), used by marked and decoy spans
9+C .. vocab_size-1   filler tokens (the rest of the document)
====================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np
import torch

BOS_ID, PAD_ID, EOS_ID, UNK_ID, MASK_ID = 0, 1, 2, 3, 4
MARK_OPEN_ID, MARK_CLOSE_ID = 5, 6
DECOY_OPEN_ID, DECOY_CLOSE_ID = 7, 8
FIRST_CONTENT_ID = 9


def vocabulary_layout(vocab_size: int = 512, content_vocab_size: int = 64) -> dict[str, range | int]:
    """The id ranges of the task's vocabulary (see the module docstring)."""
    first_filler = FIRST_CONTENT_ID + content_vocab_size
    return {
        "bos": BOS_ID, "pad": PAD_ID, "eos": EOS_ID, "unk": UNK_ID, "mask": MASK_ID,
        "mark_open": MARK_OPEN_ID, "mark_close": MARK_CLOSE_ID,
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
    seed: int = 0,
) -> datasets.Dataset:
    """Build ``n_examples`` documents of ``doc_length`` tokens (uniform in [min_doc_length, doc_length]).

    Columns: ``input_ids``, ``attention_mask``, ``labels`` (``bos`` + marked content in order + ``eos``),
    ``marked_positions`` (positions in ``input_ids`` of the marked content tokens, for ``selection_recall``)
    and ``distractor_positions`` (positions of the decoy content tokens). Same args + seed -> same data.
    """
    _check_args(n_examples, doc_length, n_spans, span_length, n_distractors, vocab_size, content_vocab_size)
    min_length = doc_length if min_doc_length is None else min_doc_length
    needed = 2 + (n_spans + n_distractors) * (span_length + 2)
    if not needed <= min_length <= doc_length:
        raise ValueError(
            f"min_doc_length={min_doc_length} must lie in [{needed}, doc_length={doc_length}] "
            "(room for bos, eos and every span)."
        )
    rng = np.random.default_rng(seed)
    layout = vocabulary_layout(vocab_size, content_vocab_size)
    content, filler = layout["content"], layout["filler"]
    columns: dict[str, list] = {k: [] for k in ("input_ids", "attention_mask", "labels", "marked_positions",
                                                "distractor_positions")}
    for _ in range(n_examples):
        length = int(rng.integers(min_length, doc_length + 1))
        kinds = rng.permutation(np.array([True] * n_spans + [False] * n_distractors, dtype=bool))
        n_filler = length - 2 - len(kinds) * (span_length + 2)
        cuts = np.sort(rng.integers(0, n_filler + 1, size=len(kinds)))
        gaps = np.diff(np.concatenate([[0], cuts, [n_filler]]))
        ids = [BOS_ID]
        marked, decoys, target = [], [], []
        for gap, is_marked in zip(gaps[:-1], kinds, strict=True):
            ids.extend(rng.integers(filler.start, filler.stop, size=gap).tolist())
            span = rng.integers(content.start, content.stop, size=span_length).tolist()
            start = len(ids) + 1
            ids.append(MARK_OPEN_ID if is_marked else DECOY_OPEN_ID)
            ids.extend(span)
            ids.append(MARK_CLOSE_ID if is_marked else DECOY_CLOSE_ID)
            (marked if is_marked else decoys).extend(range(start, start + span_length))
            if is_marked:
                target.extend(span)
        ids.extend(rng.integers(filler.start, filler.stop, size=gaps[-1]).tolist())
        ids.append(EOS_ID)
        columns["input_ids"].append(ids)
        columns["attention_mask"].append([1] * length)
        columns["labels"].append([BOS_ID, *target, EOS_ID])
        columns["marked_positions"].append(marked)
        columns["distractor_positions"].append(decoys)
    return datasets.Dataset.from_dict(columns)


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
    content_vocab_size: int,
) -> None:
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
            f"{FIRST_CONTENT_ID + content_vocab_size + 1} (9 special ids + content_vocab_size + >= 1 filler)."
        )
    needed = 2 + (n_spans + n_distractors) * (span_length + 2)
    if doc_length < needed:
        raise ValueError(
            f"doc_length={doc_length} cannot hold bos, eos and {n_spans + n_distractors} spans of "
            f"{span_length}+2 tokens: use doc_length >= {needed} or fewer/shorter spans."
        )
