"""Tests for pyramidion_hf.analysis.selection_task: the marked-span selection task and its recall."""

from __future__ import annotations

import pytest
import torch

from pyramidion_hf.analysis.selection_task import (
    BOS_ID,
    DECOY_CLOSE_ID,
    DECOY_OPEN_ID,
    EOS_ID,
    MARK_CLOSE_ID,
    MARK_OPEN_IDS,
    build_selection_dataset,
    selection_recall,
    vocabulary_layout,
)
from pyramidion_hf.modeling.pooling import RepresentationPooling


def _spans(ids: list[int], open_ids: range | tuple[int, ...], close_id: int) -> list[tuple[int, list[int]]]:
    """(start position of the content, content ids) of every (one of open_ids) .. close_id span."""
    spans, start = [], None
    for i, tok in enumerate(ids):
        if tok in open_ids:
            assert start is None, "nested or unclosed span"
            start = i + 1
        elif tok == close_id:
            assert start is not None, "close without open"
            spans.append((start, ids[start:i]))
            start = None
    assert start is None
    return spans


def test_default_documents_are_long_and_framed() -> None:
    ds = build_selection_dataset(3)
    assert set(ds.column_names) == {
        "input_ids", "attention_mask", "labels", "marked_positions", "distractor_positions"
    }
    for row in ds:
        assert len(row["input_ids"]) == 2048 == len(row["attention_mask"]) == sum(row["attention_mask"])
        assert row["input_ids"][0] == BOS_ID and row["input_ids"][-1] == EOS_ID
        assert row["labels"][0] == BOS_ID and row["labels"][-1] == EOS_ID
        assert len(row["labels"]) == 4 * 8 + 2 and len(row["marked_positions"]) == 4 * 8


def test_same_seed_same_data_other_seed_other_data() -> None:
    a = build_selection_dataset(4, doc_length=300, seed=7)
    b = build_selection_dataset(4, doc_length=300, seed=7)
    c = build_selection_dataset(4, doc_length=300, seed=8)
    assert a.to_dict() == b.to_dict()
    assert a["input_ids"] != c["input_ids"] and a["marked_positions"] != c["marked_positions"]


def test_variable_lengths_within_bounds() -> None:
    ds = build_selection_dataset(30, doc_length=400, min_doc_length=200, seed=1)
    lengths = [len(ids) for ids in ds["input_ids"]]
    assert min(lengths) >= 200 and max(lengths) <= 400 and len(set(lengths)) > 10
    assert all(len(m) == n for m, n in zip(ds["attention_mask"], lengths, strict=True))


@pytest.mark.parametrize(
    ("n_distractors", "numbered", "ordered"), [(0, True, True), (5, True, True), (5, False, False)]
)
def test_targets_are_the_marked_content_in_order(n_distractors: int, numbered: bool, ordered: bool) -> None:
    ds = build_selection_dataset(
        20, doc_length=256, n_spans=3, span_length=5, n_distractors=n_distractors, vocab_size=100,
        content_vocab_size=20, numbered_marks=numbered, ordered_content=ordered, seed=3,
    )
    content_start = vocabulary_layout(100, 20)["content"].start
    slice_of = []  # which slice of 4 content ids each span token came from
    layout = vocabulary_layout(100, 20)
    for row in ds:
        ids = row["input_ids"]
        marked = _spans(ids, MARK_OPEN_IDS, MARK_CLOSE_ID)
        assert len(marked) == 3 and all(len(content) == 5 for _, content in marked)
        # the i-th marked span opens with the i-th numbered opener (all with the first when not numbered)
        openers = [ids[start - 1] for start, _ in marked]
        assert openers == ([*MARK_OPEN_IDS[:3]] if numbered else [MARK_OPEN_IDS[0]] * 3)
        assert row["labels"][1:-1] == [tok for _, content in marked for tok in content]
        assert row["marked_positions"] == [s + i for s, _ in marked for i in range(5)]
        assert row["labels"][1:-1] == [ids[p] for p in row["marked_positions"]]
        decoys = _spans(ids, (DECOY_OPEN_ID,), DECOY_CLOSE_ID)
        slice_of += [[(tok - content_start) // 4 for tok in content] for _, content in marked + decoys]
        assert len(decoys) == n_distractors
        assert row["distractor_positions"] == [s + i for s, _ in decoys for i in range(5)]
        in_span = set(row["marked_positions"]) | set(row["distractor_positions"])
        for pos, tok in enumerate(ids):
            if pos in in_span:
                assert tok in layout["content"]
            elif tok not in (BOS_ID, EOS_ID, *MARK_OPEN_IDS, MARK_CLOSE_ID, DECOY_OPEN_ID, DECOY_CLOSE_ID):
                assert tok in layout["filler"], (pos, tok)
    # ordered content: token j of every span comes from slice j; otherwise the slices are mixed
    assert all(slices == list(range(5)) for slices in slice_of) == ordered


def test_distractors_are_never_targets() -> None:
    ds = build_selection_dataset(10, doc_length=512, n_spans=2, n_distractors=6, seed=4)
    for row in ds:
        assert not set(row["distractor_positions"]) & set(row["marked_positions"])
        assert len(row["distractor_positions"]) == 6 * 8
        # the decoy brackets never leak into the target, and the target holds no marker or filler ids
        assert all(tok in vocabulary_layout()["content"] for tok in row["labels"][1:-1])


def test_selection_recall() -> None:
    marked = [[3, 4, 5, 6], [10, 11]]
    kept = torch.tensor([[0, 3, 4, 9], [10, 11, -1, -1]])
    assert selection_recall(kept, marked) == pytest.approx(4 / 6)
    first_layer = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])
    assert selection_recall((first_layer, kept), marked) == pytest.approx(4 / 6)  # the last layer counts
    assert selection_recall([[3, 4, 5, 6], [11]], marked) == pytest.approx(5 / 6)
    assert selection_recall(torch.full((2, 4), -1), marked) == 0.0


def test_selection_recall_of_a_pooling_layer_on_the_task() -> None:
    """An oracle scorer (a marked-content flag feature) keeps every marked token; the index scorer not."""
    ds = build_selection_dataset(4, doc_length=256, n_spans=2, span_length=4, n_distractors=2, seed=5)
    ids = torch.tensor(ds["input_ids"])
    flag = torch.zeros(ids.shape)
    for b, positions in enumerate(ds["marked_positions"]):
        flag[b, positions] = 1.0
    hidden = torch.stack([flag, torch.randn(ids.shape, generator=torch.Generator().manual_seed(0))], -1)
    pool = RepresentationPooling(2, 8, scorer="embedding", embedding_index=0, topk="hard")
    assert selection_recall(pool(hidden).positions, ds["marked_positions"]) == 1.0
    index_pool = RepresentationPooling(2, 8, scorer="index", topk="hard")
    assert selection_recall(index_pool(hidden).positions, ds["marked_positions"]) < 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"doc_length": 50}, "doc_length >= 82"),
        ({"vocab_size": 60}, "at least 81"),
        ({"n_spans": 9, "span_length": 1, "n_distractors": 0}, "numbered_marks=False"),
        ({"content_vocab_size": 4, "span_length": 5}, "ordered_content=False"),
        ({"n_spans": 0}, "n_spans >= 1"),
        ({"min_doc_length": 3000}, "must lie in"),
    ],
)
def test_build_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_selection_dataset(2, **kwargs)


def test_recall_errors() -> None:
    with pytest.raises(ValueError, match="one row of positions per document"):
        selection_recall(torch.zeros(3, 2, dtype=torch.long), [[1], [2]])
    with pytest.raises(ValueError, match="no position"):
        selection_recall(torch.zeros(2, 2, dtype=torch.long), [[], []])
    with pytest.raises(ValueError, match="no pooling layer"):
        selection_recall((), [[1]])
