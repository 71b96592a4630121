"""Properties of the top-k operators (pyramidion_hf/topk.py), checked against a literal Algorithm 1."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import pyramidion_hf.modeling.topk as topk_module
from pyramidion_hf.topk import (
    TOPK_OPERATORS,
    TopKOutput,
    hard_topk,
    iterative_softmax_topk,
    successive_halving_topk,
)

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True)
SH_VARIANTS = [
    {},
    {"sort": False},
    {"weighting": "peaked", "base": 3.0},
    {"temperature": 0.3},
]
OPERATORS = [
    (successive_halving_topk, {}),
    (successive_halving_topk, {"sort": False}),
    (successive_halving_topk, {"weighting": "peaked"}),
    (hard_topk, {}),
    (iterative_softmax_topk, {}),
]


def literal_sh(hidden, scores, k, mask=None, *, temperature=1.0, sort=True, weighting="sigmoid", base=20.0):
    """Algorithm 1 step by step, one sample at a time, permuting the whole (m, d) tensor every round."""
    batch, n, d = hidden.shape
    mask = torch.ones(batch, n, dtype=torch.bool) if mask is None else mask
    rounds = 0
    while k * 2**rounds < n:
        rounds += 1
    size = k * 2**rounds
    results = []
    for b in range(batch):
        emb = torch.zeros(size, d, dtype=torch.float64)
        emb[:n] = hidden[b].double() * mask[b, :, None]
        v = torch.zeros(size, dtype=torch.float64)
        v[:n] = torch.where(mask[b], scores[b].double(), 0.0)
        real = torch.zeros(size, dtype=torch.bool)
        real[:n] = mask[b]
        index, weight = torch.arange(size), real.double()
        for r in range(rounds):
            if sort:  # SORT: descending scores, pads last, stable
                perm = sorted(range(len(v)), key=lambda i: (not real[i], -v[i].item()))
            elif r == 0:  # unsorted: only move the pads behind the real tokens
                perm = sorted(range(len(v)), key=lambda i: not real[i])
            else:
                perm = list(range(len(v)))
            emb, v, real, index, weight = emb[perm], v[perm], real[perm], index[perm], weight[perm]
            m = len(v)
            new = {"emb": [], "v": [], "real": [], "index": [], "weight": []}
            for i in range(m // 2):  # TOURNAMENT: pair i with m-1-i
                j = m - 1 - i
                if real[i] and real[j]:
                    if weighting == "sigmoid":
                        w = 1 / (1 + math.exp(-(v[i] - v[j]).item() / temperature))
                    else:  # softmax over (base**v_i, base**v_j) / temperature
                        w = 1 / (1 + math.exp(-(base ** v[i].item() - base ** v[j].item()) / temperature))
                else:
                    w = 1.0 if real[i] else 0.0
                new["emb"].append(w * emb[i] + (1 - w) * emb[j])
                new["v"].append(w * v[i] + (1 - w) * v[j])
                new["real"].append(bool(real[i] or real[j]))
                new["index"].append(index[i] if w >= 0.5 else index[j])
                new["weight"].append(weight[i] * w if w >= 0.5 else weight[j] * (1 - w))
            emb, v = torch.stack(new["emb"]), torch.stack(new["v"])
            real, index, weight = (
                torch.tensor(new["real"]),
                torch.stack(new["index"]),
                torch.stack(new["weight"]),
            )
        order = sorted(range(k), key=lambda i: (not real[i], index[i].item()))
        emb, v, real, index, weight = emb[order], v[order], real[order], index[order], weight[order]
        results.append(
            (
                emb * real[:, None],
                torch.where(real, v, 0.0),
                real,
                torch.where(real, index, -1),
                torch.where(real, weight, 0.0),
            )
        )
    return TopKOutput(*(torch.stack(parts) for parts in zip(*results, strict=True)))


@st.composite
def problems(draw, max_n=40, max_k=12, max_batch=4, masked=True):
    """(hidden (B,n,d) float64, distinct-ish scores (B,n), k, mask (B,n) or None)."""
    batch = draw(st.integers(1, max_batch))
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, max_k))
    d = draw(st.integers(1, 5))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    hidden = torch.randn(batch, n, d, generator=gen, dtype=torch.float64)
    scores = torch.randn(batch, n, generator=gen, dtype=torch.float64) * draw(
        st.sampled_from([0.1, 1.0, 4.0])
    )
    mask = None
    if masked and draw(st.booleans()):
        mask = torch.rand(batch, n, generator=gen) < draw(st.sampled_from([0.3, 0.7, 0.95]))
    return hidden, scores, k, mask


def assert_contract(out: TopKOutput, hidden: torch.Tensor, k: int, mask: torch.Tensor | None) -> None:
    """Shapes, dtypes, masked-slot values and ordering common to every operator."""
    batch, n, d = hidden.shape
    assert out.hidden.shape == (batch, k, d) and out.hidden.dtype == hidden.dtype
    assert out.scores.shape == out.mask.shape == out.indices.shape == out.weights.shape == (batch, k)
    assert out.mask.dtype == torch.bool and out.indices.dtype == torch.long
    real = torch.ones(batch, n, dtype=torch.bool) if mask is None else mask
    assert torch.equal(out.mask.sum(1), real.sum(1).clamp(max=k))  # min(k, #real) real slots
    assert torch.equal(out.mask, torch.arange(k) < out.mask.sum(1, keepdim=True))  # real slots first
    assert (out.hidden[~out.mask] == 0).all() and (out.scores[~out.mask] == 0).all()
    assert (out.indices[~out.mask] == -1).all() and (out.weights[~out.mask] == 0).all()
    for b in range(batch):
        idx = out.indices[b][out.mask[b]]
        assert torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == len(idx)  # ascending, unique
        assert real[b, idx].all()  # the dominating input of a real slot is real
    assert ((out.weights[out.mask] > 0) & (out.weights[out.mask] <= 1)).all()


@SETTINGS
@given(problems(), st.sampled_from(range(len(OPERATORS))))
def test_contract_shapes_dtypes_and_masked_slots(problem, op_index):
    hidden, scores, k, mask = problem
    op, kwargs = OPERATORS[op_index]
    assert_contract(op(hidden, scores, k, mask, **kwargs), hidden, k, mask)


@SETTINGS
@given(problems(), st.sampled_from(range(len(SH_VARIANTS))))
def test_successive_halving_matches_literal_algorithm_1(problem, variant):
    hidden, scores, k, mask = problem
    kwargs = SH_VARIANTS[variant]
    ours = successive_halving_topk(hidden, scores, k, mask, **kwargs)
    ref = literal_sh(hidden, scores, k, mask, **kwargs)
    assert torch.equal(ours.mask, ref.mask) and torch.equal(ours.indices, ref.indices)
    for name in ("hidden", "scores", "weights"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name), rtol=1e-9, atol=1e-10)


def test_literal_agreement_with_exact_ties():
    """All-equal scores: every weight is 0.5, ties keep the input order, as in the literal algorithm."""
    hidden = torch.randn(2, 13, 3, dtype=torch.float64)
    scores = torch.zeros(2, 13, dtype=torch.float64)
    ours, ref = successive_halving_topk(hidden, scores, 3), literal_sh(hidden, scores, 3)
    assert torch.equal(ours.indices, ref.indices)
    torch.testing.assert_close(ours.hidden, ref.hidden)
    torch.testing.assert_close(ours.weights, ref.weights)


@SETTINGS
@given(problems(max_k=8), st.integers(0, 20), st.sampled_from(range(len(OPERATORS))))
def test_sequence_alone_equals_sequence_in_padded_batch(problem, extra, op_index):
    """Results for a sequence depend neither on the batch around it nor on how much padding it gets."""
    hidden, scores, k, mask = problem
    op, kwargs = OPERATORS[op_index]
    hidden, scores = hidden.float(), scores.float()
    batch, n, d = hidden.shape
    mask = torch.ones(batch, n, dtype=torch.bool) if mask is None else mask
    big_hidden = torch.cat([hidden, torch.randn(batch, extra, d)], 1)
    big_scores = torch.cat([scores, torch.randn(batch, extra) * 100], 1)  # garbage in the padding
    big_mask = torch.cat([mask, torch.zeros(batch, extra, dtype=torch.bool)], 1)
    together = op(big_hidden, big_scores, k, big_mask, **kwargs)
    for b in range(batch):
        alone = op(hidden[b : b + 1], scores[b : b + 1], k, mask[b : b + 1], **kwargs)
        assert torch.equal(alone.mask, together.mask[b : b + 1])
        assert torch.equal(alone.indices, together.indices[b : b + 1])
        for name in ("hidden", "scores", "weights"):
            torch.testing.assert_close(getattr(alone, name), getattr(together, name)[b : b + 1])


def test_batch_of_one_equals_batch_of_eight():
    hidden, scores = torch.randn(8, 100, 16), torch.randn(8, 100)
    mask = torch.rand(8, 100) > 0.2
    for op, kwargs in OPERATORS:
        together = op(hidden, scores, 7, mask, **kwargs)
        for b in range(8):
            alone = op(hidden[b : b + 1], scores[b : b + 1], 7, mask[b : b + 1], **kwargs)
            assert torch.equal(alone.indices, together.indices[b : b + 1])
            torch.testing.assert_close(alone.hidden, together.hidden[b : b + 1])


class _OpCounter(torch.overrides.TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("op,kwargs", OPERATORS[:3])
def test_no_python_loop_over_batch_or_pairs(op, kwargs):
    """The number of torch calls depends on the number of rounds only, not on the batch size or n."""
    counts = []
    for batch, n in [(1, 64), (8, 64), (3, 60), (5, 33)]:  # k = 8: R = 3 rounds for all four
        with _OpCounter() as counter:
            op(torch.randn(batch, n, 4), torch.randn(batch, n), 8, torch.rand(batch, n) > 0.1, **kwargs)
        counts.append(counter.calls)
    assert len(set(counts)) == 1, counts


@SETTINGS
@given(problems(max_n=12, max_k=12, masked=True), st.sampled_from(range(len(OPERATORS))), st.integers(0, 3))
def test_identity_when_n_at_most_k(problem, op_index, spare):
    hidden, scores, _, mask = problem
    batch, n, d = hidden.shape
    k = n + spare
    op, kwargs = OPERATORS[op_index]
    out = op(hidden, scores, k, mask, **kwargs)
    real = torch.ones(batch, n, dtype=torch.bool) if mask is None else mask
    for b in range(batch):
        positions = real[b].nonzero().squeeze(1)
        count = len(positions)
        assert torch.equal(out.indices[b, :count], positions)
        assert torch.equal(out.hidden[b, :count], hidden[b, positions])
        assert torch.equal(out.scores[b, :count], scores[b, positions])
        assert (out.weights[b, :count] == 1).all() and not out.mask[b, count:].any()


@SETTINGS
@given(problems(max_n=48, max_k=10, masked=True))
def test_hard_topk_selects_exactly_the_top_real_scores(problem):
    hidden, scores, k, mask = problem
    out = hard_topk(hidden, scores, k, mask)
    real = torch.ones(scores.shape, dtype=torch.bool) if mask is None else mask
    for b in range(scores.shape[0]):
        candidates = real[b].nonzero().squeeze(1)
        best = candidates[scores[b, candidates].argsort(descending=True, stable=True)[:k]].sort().values
        assert torch.equal(out.indices[b][out.mask[b]], best)
        assert torch.equal(out.hidden[b][out.mask[b]], hidden[b, best])
        assert torch.equal(out.scores[b][out.mask[b]], scores[b, best])
        assert (out.weights[b][out.mask[b]] == 1).all()


@SETTINGS
@given(problems(max_n=48, max_k=10, masked=True), st.sampled_from(range(len(OPERATORS))))
def test_masked_inputs_never_selected_while_real_remain(problem, op_index):
    hidden, scores, k, mask = problem
    if mask is None:
        return
    op, kwargs = OPERATORS[op_index]
    scores = scores.masked_fill(~mask, 1e4)  # masked inputs would win on score alone
    out = op(hidden, scores, k, mask, **kwargs)
    chosen = out.indices.clamp(min=0)
    assert mask.gather(1, chosen)[out.mask].all()
    assert torch.equal(out.mask.sum(1), mask.sum(1).clamp(max=k))


@SETTINGS
@given(problems(max_n=64, max_k=10, masked=True), st.booleans())
def test_well_separated_scores_give_hard_topk(problem, peaked):
    """Scores 50 apart: every tournament weight is ~0/1, so SH equals hard top-k (nCCS = 1)."""
    hidden, _, k, mask = problem
    batch, n, _ = hidden.shape
    scores = torch.stack([torch.randperm(n).double() * 50 for _ in range(batch)])
    kwargs = {"weighting": "peaked", "base": 1.1} if peaked else {}
    soft, hard = (
        successive_halving_topk(hidden, scores, k, mask, **kwargs),
        hard_topk(hidden, scores, k, mask),
    )
    assert torch.equal(soft.indices, hard.indices) and torch.equal(soft.mask, hard.mask)
    torch.testing.assert_close(soft.hidden, hard.hidden, rtol=0, atol=1e-12)
    torch.testing.assert_close(soft.scores, hard.scores, rtol=0, atol=1e-12)


def test_unsorted_is_worse_than_sorted_on_average():
    """Appendix B.5: sorting makes the tournament closer to the real top-k (higher nCCS)."""
    gen = torch.Generator().manual_seed(0)
    hidden, scores = torch.rand(8, 256, 32, generator=gen) * 2 - 1, torch.rand(8, 256, generator=gen) * 4

    def nccs(out):
        exact = torch.nn.functional.normalize(hard_topk(hidden, scores, 16).hidden, dim=-1)
        approx = torch.nn.functional.normalize(out.hidden, dim=-1)
        return (approx @ exact.transpose(1, 2)).amax(-1).mean().item()

    sorted_, unsorted = (
        nccs(successive_halving_topk(hidden, scores, 16)),
        nccs(successive_halving_topk(hidden, scores, 16, sort=False)),
    )
    iterative = nccs(iterative_softmax_topk(hidden, scores, 16))
    assert sorted_ > unsorted and sorted_ > iterative


@pytest.mark.parametrize("op,kwargs", OPERATORS)
@pytest.mark.parametrize("magnitude", [1e6, 1e30, math.inf])
def test_huge_scores_give_finite_values_and_gradients(op, kwargs, magnitude):
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(3, 37, 8, generator=gen, requires_grad=True)
    signs = torch.randint(0, 2, (3, 37), generator=gen) * 2 - 1
    scores = (signs * magnitude).float()
    scores[2, ::3] = 0.5  # mix of huge and ordinary scores
    scores.requires_grad_(True)
    mask = torch.rand(3, 37, generator=gen) > 0.2
    out = op(hidden, scores, 5, mask, **kwargs)
    loss = (
        (out.hidden * torch.randn(out.hidden.shape, generator=gen)).sum()
        + out.scores.sum()
        + out.weights.sum()
    )
    grads = torch.autograd.grad(loss, [hidden, scores], allow_unused=True)
    values = (out.hidden, out.weights) if op is hard_topk else (out.hidden, out.scores, out.weights)
    for tensor in (*values, *(g for g in grads if g is not None)):  # hard top-k returns the raw scores
        assert torch.isfinite(tensor).all()


@pytest.mark.parametrize("kwargs", SH_VARIANTS)
def test_gradcheck_successive_halving(kwargs):
    gen = torch.Generator().manual_seed(2)
    hidden = torch.randn(2, 11, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    scores = torch.randn(2, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 7:] = False
    fn = lambda h, s: (
        successive_halving_topk(h, s, 3, mask, **kwargs)[:2]
        + (successive_halving_topk(h, s, 3, mask, **kwargs).weights,)
    )
    assert torch.autograd.gradcheck(fn, (hidden, scores))
    assert torch.autograd.gradgradcheck(
        lambda h, s: successive_halving_topk(h, s, 3, mask, **kwargs)[:2], (hidden, scores)
    )


def test_gradcheck_iterative_and_hard():
    gen = torch.Generator().manual_seed(3)
    hidden = torch.randn(2, 9, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    scores = torch.randn(2, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, 9, generator=gen) > 0.3
    assert torch.autograd.gradcheck(
        lambda h, s: iterative_softmax_topk(h, s, 4, mask, temperature=0.5)[:2], (hidden, scores)
    )
    assert torch.autograd.gradcheck(lambda h, s: hard_topk(h, s, 4, mask)[:2], (hidden, scores))


@pytest.mark.parametrize("path", ["fused", "chunked"])
def test_fast_backward_paths_equal_differentiable_backward(monkeypatch, path):
    """The fused-dot and the cache-blocked backward of the combine step equal the create_graph path."""
    hidden = torch.randn(3, 50, 8, dtype=torch.float64, requires_grad=True)
    scores = torch.randn(3, 50, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(3, 50) > 0.2
    grad_out = torch.randn(3, 6, 8, dtype=torch.float64)

    def grads(create_graph):
        out = successive_halving_topk(hidden, scores, 6, mask).hidden
        return torch.autograd.grad(out, [hidden, scores], grad_out, create_graph=create_graph)

    if path == "chunked":
        monkeypatch.setattr(topk_module, "_FUSED_DOT", None)
        monkeypatch.setattr(topk_module, "_BACKWARD_CHUNK_BYTES", 8 * 8 * 7)  # 7-row chunks
    for fast, plain in zip(grads(False), grads(True), strict=True):
        torch.testing.assert_close(fast, plain.detach(), rtol=1e-12, atol=1e-12)
    # only one of the two inputs needing a gradient
    g_hidden, g_scores = (g.detach() for g in grads(True))
    (only_scores,) = torch.autograd.grad(
        successive_halving_topk(hidden.detach(), scores, 6, mask).hidden, [scores], grad_out
    )
    (only_hidden,) = torch.autograd.grad(
        successive_halving_topk(hidden, scores.detach(), 6, mask).hidden, [hidden], grad_out
    )
    torch.testing.assert_close(only_scores, g_scores, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(only_hidden, g_hidden, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "op,kwargs",
    [(successive_halving_topk, variant) for variant in SH_VARIANTS] + [(iterative_softmax_topk, {})],
)
def test_gradients_nonzero_and_finite(op, kwargs):
    hidden = torch.randn(4, 64, 16, requires_grad=True)
    scores = torch.randn(4, 64, requires_grad=True)
    out = op(hidden, scores, 8, **kwargs)
    g_hidden, g_scores = torch.autograd.grad(
        (out.hidden * torch.randn_like(out.hidden)).sum(), [hidden, scores]
    )
    assert torch.isfinite(g_hidden).all() and torch.isfinite(g_scores).all()
    assert (g_scores.abs() > 0).float().mean() > 0.5  # gradients reach most scores, not just the top-k
    assert (g_hidden.abs().sum(-1) > 0).float().mean() > 0.5


def test_hard_topk_gives_no_gradient_through_selection():
    hidden = torch.randn(2, 16, 4, requires_grad=True)
    scores = torch.randn(2, 16, requires_grad=True)
    out = hard_topk(hidden, scores, 4)
    (g_scores,) = torch.autograd.grad(out.hidden.sum(), [scores], allow_unused=True, materialize_grads=True)
    assert (g_scores == 0).all()


@pytest.mark.parametrize("op,kwargs", OPERATORS)
def test_bfloat16_matches_float32(op, kwargs):
    gen = torch.Generator().manual_seed(4)
    hidden = torch.randn(2, 40, 8, generator=gen)
    scores = torch.randperm(80, generator=gen).view(2, 40).float() / 8  # exact in bf16, no ties
    out32 = op(hidden, scores, 6, **kwargs)
    h16, s16 = hidden.bfloat16().requires_grad_(True), scores.bfloat16().requires_grad_(True)
    out16 = op(h16, s16, 6, **kwargs)
    assert out16.hidden.dtype == out16.scores.dtype == torch.bfloat16
    assert torch.equal(out16.indices, out32.indices)
    torch.testing.assert_close(out16.hidden.float(), out32.hidden, rtol=0.05, atol=0.05)
    grads = torch.autograd.grad(
        out16.hidden.float().sum() + out16.scores.float().sum(), [h16, s16], allow_unused=True
    )
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@SETTINGS
@given(problems(max_n=40, max_k=10, masked=True))
def test_iterative_properties(problem):
    """Iterative top-k extracts the hard top-k in order; each output is a softmax-weighted average."""
    hidden, scores, k, mask = problem
    out = iterative_softmax_topk(hidden, scores, k, mask, temperature=0.7)
    hard = hard_topk(hidden, scores, k, mask)
    assert torch.equal(out.indices, hard.indices) and torch.equal(out.mask, hard.mask)
    real = torch.ones(scores.shape, dtype=torch.bool) if mask is None else mask
    lo = torch.where(real, scores, math.inf).amin(1, keepdim=True)
    hi = torch.where(real, scores, -math.inf).amax(1, keepdim=True)
    inside = (out.scores >= lo - 1e-9) & (out.scores <= hi + 1e-9)
    assert inside[out.mask].all()  # convex combinations of real scores
    sharp = iterative_softmax_topk(hidden, scores * 1e4, k, mask, temperature=1e-3)
    torch.testing.assert_close(sharp.hidden, hard.hidden, rtol=0, atol=1e-6)


def test_sh_weights_of_sorted_tournament_at_least_half_per_round():
    hidden, scores = torch.randn(4, 96, 8), torch.randn(4, 96)
    out = successive_halving_topk(hidden, scores, 6)  # 96 -> 6: R = 4 rounds
    assert (out.weights >= 0.5**4).all() and (out.weights <= 1).all()


def test_peaked_weighting_is_sharper_than_sigmoid_and_guarded():
    scores = torch.tensor([[0.9, 0.1, 0.8, 0.2]])
    hidden = torch.eye(4).unsqueeze(0)
    sig = successive_halving_topk(hidden, scores, 2)
    peaked = successive_halving_topk(hidden, scores, 2, weighting="peaked", base=20.0)
    assert (peaked.weights > sig.weights).all()
    expected = torch.stack(
        [
            torch.softmax(torch.tensor([20.0**hi, 20.0**lo]), 0)[0]  # authors' softmax(base**v)
            for hi, lo in [(0.9, 0.1), (0.8, 0.2)]
        ]
    )
    torch.testing.assert_close(peaked.weights[0], expected)
    huge = successive_halving_topk(hidden, scores * 1e6, 2, weighting="peaked", base=20.0)
    assert torch.isfinite(huge.hidden).all() and torch.equal(huge.indices, sig.indices)


def test_edge_cases_never_raise_on_k_larger_than_n_or_empty_input():
    out = successive_halving_topk(torch.randn(2, 0, 4), torch.randn(2, 0), 3)
    assert out.hidden.shape == (2, 3, 4) and not out.mask.any() and (out.indices == -1).all()
    for op, kwargs in OPERATORS:
        out = op(torch.randn(2, 3, 4), torch.randn(2, 3), 10, **kwargs)
        assert out.hidden.shape == (2, 10, 4) and torch.equal(out.mask.sum(1), torch.tensor([3, 3]))
    fully_masked = successive_halving_topk(
        torch.randn(1, 9, 2), torch.randn(1, 9), 2, torch.zeros(1, 9, dtype=bool)
    )
    assert not fully_masked.mask.any() and (fully_masked.hidden == 0).all()


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: successive_halving_topk(torch.randn(2, 5), torch.randn(2, 5), 2), "hidden must have shape"),
        (
            lambda: successive_halving_topk(torch.randn(2, 5, 3), torch.randn(2, 4), 2),
            "scores must have shape",
        ),
        (lambda: successive_halving_topk(torch.randn(2, 5, 3), torch.randn(2, 5), 0), "k must be a positive"),
        (
            lambda: hard_topk(torch.randn(2, 5, 3), torch.randn(2, 5), 2, torch.ones(2, 4, dtype=bool)),
            "mask must",
        ),
        (
            lambda: successive_halving_topk(torch.randn(1, 5, 3), torch.randn(1, 5), 2, temperature=0),
            "temperature",
        ),
        (
            lambda: successive_halving_topk(torch.randn(1, 5, 3), torch.randn(1, 5), 2, weighting="x"),
            "weighting",
        ),
        (
            lambda: successive_halving_topk(
                torch.randn(1, 5, 3), torch.randn(1, 5), 2, weighting="peaked", base=1
            ),
            "base",
        ),
        (
            lambda: iterative_softmax_topk(torch.randn(1, 5, 3), torch.randn(1, 5), 2, temperature=-1.0),
            "temperature",
        ),
        (lambda: hard_topk(torch.randn(1, 5, 3), torch.arange(5).view(1, 5), 2), "floating point"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_operator_registry():
    assert TOPK_OPERATORS == {
        "successive_halving": successive_halving_topk,
        "hard": hard_topk,
        "iterative": iterative_softmax_topk,
    }
