"""Top-k selection operators for representation pooling: pure tensor functions, no parameters.

Every operator maps ``hidden (B, n, d)``, ``scores (B, n)``, ``k`` and an optional ``mask (B, n)`` (True =
real token) to a :class:`TopKOutput` with ``k`` slots per sequence. Real outputs come first, ordered by the
original position of the input that dominates them; masked outputs (when a sequence has fewer than ``k`` real
tokens) come last with hidden 0, score 0, index -1 and weight 0.

* :func:`successive_halving_topk` -- the paper's soft tournament (section 4, Appendix B, Algorithm 1).
* :func:`hard_topk` -- the exact, non-differentiable-in-the-scores top-k.
* :func:`iterative_softmax_topk` -- the iterative peaked-softmax relaxation of Goyal et al. (2018).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "TOPK_OPERATORS",
    "TOPK_OPTIONS",
    "WEIGHTINGS",
    "TopKOutput",
    "hard_topk",
    "iterative_softmax_topk",
    "check_temperature",
    "successive_halving_topk",
]

# exp() argument cap of the "peaked" weighting: a pair whose base**v gap reaches exp(30) ~ 1e13 is saturated
# (weight 0 or 1 in fp32) anyway, and the cap bounds d weight / d score by ~1e13 so gradients stay finite.
_PEAKED_EXP_CAP = 30.0
# Scores are clamped to +-1e30 (so +-inf is allowed): score * gradient products stay finite in fp32.
_SCORE_BOUND = 1e30
# Elements of one (chunk, n) weight block of the iterative operator.
_ITERATIVE_CHUNK_ELEMENTS = 1 << 24
# Bytes of hidden-state rows per thread that the chunked backward processes at a time (L2-resident).
_BACKWARD_CHUNK_BYTES = 1 << 19
# Pair weightings of successive halving: the paper's sigmoid, the authors' code's peaked softmax over base**v.
WEIGHTINGS = ("sigmoid", "peaked")


class TopKOutput(NamedTuple):
    """Result of a top-k operator; masked slots hold hidden 0, score 0, index -1 and weight 0."""

    hidden: Tensor  # (B, k, d)
    scores: Tensor  # (B, k)
    mask: Tensor  # (B, k) bool, True = real
    indices: Tensor  # (B, k) long: input position of the input that dominates each output, -1 if masked
    weights: Tensor  # (B, k): coefficient of that dominating input in its output (1.0 for hard), 0 if masked


def _validate(hidden: Tensor, scores: Tensor, k: int, mask: Tensor | None) -> Tensor:
    """Check shapes and types; return the boolean (B, n) mask (all True when ``mask`` is None)."""
    if hidden.dim() != 3:
        raise ValueError(f"hidden must have shape (batch, n, d), got {tuple(hidden.shape)}")
    if scores.shape != hidden.shape[:2]:
        raise ValueError(
            f"scores must have shape (batch, n) = {tuple(hidden.shape[:2])}, got {tuple(scores.shape)}; "
            "squeeze a trailing score dimension first"
        )
    if not scores.is_floating_point() or not hidden.is_floating_point():
        raise ValueError(f"hidden and scores must be floating point, got {hidden.dtype} and {scores.dtype}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if mask is None:
        valid = torch.ones(scores.shape, dtype=torch.bool, device=scores.device)
    elif mask.shape != scores.shape:
        raise ValueError(f"mask must have shape (batch, n) = {tuple(scores.shape)}, got {tuple(mask.shape)}")
    else:
        valid = mask.to(device=scores.device, dtype=torch.bool)
    if bool((torch.isnan(scores.detach()) & valid).any()):
        rows = (torch.isnan(scores.detach()) & valid).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(
            f"scores are NaN at real (unmasked) positions of rows {rows}: the scorer or the hidden states it "
            "reads have diverged (check the loss for NaN, lower the learning rate, or train in bf16/fp32)."
        )
    return valid


def _zero_masked_rows(hidden: Tensor, valid: Tensor) -> Tensor:
    """hidden (B, n, d) with its masked rows zeroed when any of them is not finite: masked inputs enter the
    combinations with coefficient 0, and 0 * NaN would reach real outputs. Reads the masked rows only."""
    with torch.no_grad():
        masked = ~valid
        if not bool(masked.any()) or bool(torch.isfinite(hidden[masked]).all()):
            return hidden
    return hidden.masked_fill(masked.unsqueeze(-1), 0.0)


def check_temperature(temperature: float) -> None:
    """The one range check of the top-k temperature tau (operators, pooling layers and the config call it)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")


def _work_dtype(scores: Tensor) -> torch.dtype:
    """Tournament arithmetic runs in fp32 (fp64 if the scores are fp64)."""
    return torch.float64 if scores.dtype == torch.float64 else torch.float32


class _CastWithFiniteGrad(torch.autograd.Function):
    """scores.to(work) whose backward clamps the gradient to the scores' own finite range: in fp16 a score
    gradient of the peaked weighting (up to ~1e13) would otherwise become +-inf."""

    @staticmethod
    def forward(ctx, scores: Tensor, work: torch.dtype) -> Tensor:  # type: ignore[override]
        ctx.dtype = scores.dtype
        return scores.to(work)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        limit = torch.finfo(ctx.dtype).max
        return grad.clamp(-limit, limit).to(ctx.dtype), None


def _finite_scores(scores: Tensor, valid: Tensor, work: torch.dtype) -> Tensor:
    """Scores in the work dtype, clamped to +-_SCORE_BOUND (+-inf included), masked positions set to 0."""
    work_scores = _CastWithFiniteGrad.apply(scores, work) if scores.dtype != work else scores
    return torch.where(valid, work_scores.clamp(-_SCORE_BOUND, _SCORE_BOUND), 0.0)


def _num_rounds(n: int, k: int) -> int:
    """R = ceil(log2(n / k)) (0 when n <= k), computed exactly on integers."""
    rounds = 0
    while k << rounds < n:
        rounds += 1
    return rounds


def _pair_weight(vi: Tensor, vj: Tensor, temperature: float, weighting: str, base: float) -> Tensor:
    """Weight of the first member of each pair (B, m): sigmoid((vi - vj) / tau) or the peaked variant.

    "peaked" is the authors' softmax over (base**vi, base**vj) / tau = sigmoid((base**vi - base**vj) / tau),
    computed as sign * exp(min(hi*ln(base) - ln(tau), cap)) * (1 - base**(lo - hi)) so it never overflows.
    """
    if weighting == "sigmoid":
        return torch.sigmoid((vi - vj) / temperature)
    log_base = math.log(base)
    first_is_hi = vi >= vj
    hi = torch.where(first_is_hi, vi, vj)
    lo = torch.where(first_is_hi, vj, vi)
    scale = torch.exp(torch.clamp(hi * log_base - math.log(temperature), max=_PEAKED_EXP_CAP))
    magnitude = scale * -torch.expm1((lo - hi) * log_base)
    return torch.sigmoid(torch.where(first_is_hi, magnitude, -magnitude))


def _rows(x: Tensor, order: Tensor) -> Tensor:
    """Batched row gather: x (B, m, ...) , order (B, m') long -> (B, m', ...), via one flat index_select."""
    batch, m = x.shape[:2]
    offsets = torch.arange(batch, device=x.device).unsqueeze(1) * m
    return (
        x.reshape(batch * m, *x.shape[2:])
        .index_select(0, (order + offsets).reshape(-1))
        .view(batch, order.shape[1], *x.shape[2:])
    )


def _flat_leaves(leaves: Tensor, n: int) -> Tensor:
    """(B, k, G) leaf positions -> (B*k*G,) row indices into hidden.reshape(B*n, d); padding -> row 0 of b."""
    batch = leaves.shape[0]
    offsets = torch.arange(batch, device=leaves.device).view(batch, 1, 1) * n
    return (torch.where(leaves < n, leaves, 0) + offsets).reshape(-1)


# Fused per-row dot product <grad_out[bag], hidden[row]> (the per_sample_weights gradient of embedding_bag):
# one pass over hidden, no temporary. A private ATen op, so everything falls back to plain torch without it.
_FUSED_DOT = getattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward", None)


def _fused_dots(grad_rows: Tensor, rows_in: Tensor, leaves: Tensor, n: int) -> Tensor | None:
    """(B, k*G) dots <grad_rows[slot], rows_in[leaf]> in leaf order; None where the fused op is unusable."""
    if _FUSED_DOT is None or rows_in.dtype not in (torch.float32, torch.float64):
        return None
    batch, k, group = leaves.shape
    count = batch * k * group
    offsets = torch.arange(0, count, group, device=leaves.device)
    bags = torch.arange(count, device=leaves.device) // group
    try:
        dots = _FUSED_DOT(grad_rows, rows_in, _flat_leaves(leaves, n), offsets, bags, 0, -1)
    except (RuntimeError, TypeError):
        return None
    return dots.view(batch, k * group)


class _SlotCombine(torch.autograd.Function):
    """hidden (B,n,d), leaves (B,k,G) long, coef (B,k,G) -> (B,k,d): out[b,q] = sum_g coef * hidden[b, leaf].

    One fused weighted gather-sum forward (``embedding_bag``); the backward gathers the output gradient once
    per input row. Leaves >= n are padding (their coefficient must be 0); every position 0..k*G-1 occurs once.
    Masked rows enter with coefficient 0, so their hidden states must be finite (see `_zero_masked_rows`).
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, leaves: Tensor, coef: Tensor) -> Tensor:  # type: ignore[override]
        batch, n, d = hidden.shape
        k, group = leaves.shape[1:]
        out = F.embedding_bag(
            _flat_leaves(leaves, n).view(batch * k, group),
            hidden.reshape(batch * n, d),
            per_sample_weights=coef.to(hidden.dtype).reshape(batch * k, group),
            mode="sum",
        )
        ctx.save_for_backward(hidden, leaves, coef)
        return out.view(batch, k, d)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, None, Tensor | None]:  # type: ignore[override]
        hidden, leaves, coef = ctx.saved_tensors
        batch, n, d = hidden.shape
        k, group = leaves.shape[1:]
        total = k * group
        need_hidden, need_coef = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        flat_leaves = leaves.reshape(batch, total)
        slot_ids = torch.arange(batch * k, device=hidden.device).view(batch, k, 1).expand(batch, k, group)
        pos_slot = torch.empty_like(flat_leaves).scatter_(1, flat_leaves, slot_ids.reshape(batch, total))
        pos_slot = pos_slot[:, :n].reshape(-1)
        pos_coef = torch.zeros(batch, total, dtype=coef.dtype, device=coef.device)
        pos_coef = pos_coef.scatter_(1, flat_leaves, coef.reshape(batch, total))[:, :n].reshape(-1, 1)
        grad_rows = grad_out.reshape(batch * k, d)
        rows_in = hidden.reshape(batch * n, d)
        grad_hidden = grad_coef = None
        if torch.is_grad_enabled() or hidden.device.type != "cpu":  # create_graph=True (double backward), GPU
            rows = grad_rows.index_select(0, pos_slot)
            if need_coef:
                dots = F.pad((rows * rows_in).sum(-1, dtype=coef.dtype).view(batch, n), (0, total - n))
                grad_coef = dots.gather(1, flat_leaves)
            if need_hidden:
                grad_hidden = rows * pos_coef.to(rows.dtype)
        else:
            if need_coef:
                grad_coef = _fused_dots(grad_rows.contiguous(), rows_in, leaves, n)
            if need_coef and grad_coef is None:
                grad_coef, grad_hidden = _chunked_backward(
                    grad_rows, rows_in, pos_slot, pos_coef, need_hidden
                )
                grad_coef = F.pad(grad_coef.view(batch, n), (0, total - n)).gather(1, flat_leaves)
            elif need_hidden:
                grad_hidden = grad_rows.index_select(0, pos_slot).mul_(pos_coef.to(grad_rows.dtype))
        if grad_coef is not None:
            grad_coef = grad_coef.to(coef.dtype).view(batch, k, group)
        if grad_hidden is not None:
            grad_hidden = grad_hidden.view(batch, n, d)
        return grad_hidden, None, grad_coef


def _chunked_backward(
    grad_rows: Tensor, rows_in: Tensor, pos_slot: Tensor, pos_coef: Tensor, need_hidden: bool
) -> tuple[Tensor, Tensor | None]:
    """Per input row: dot <grad_rows[slot], rows_in> and grad rows * coef, in cache-sized row chunks."""
    rows_total, d = rows_in.shape
    chunk = max(1, _BACKWARD_CHUNK_BYTES * torch.get_num_threads() // (d * rows_in.element_size()))
    rows = torch.empty(rows_total if need_hidden else min(chunk, rows_total), d, dtype=grad_rows.dtype)
    dots = torch.empty(rows_total, dtype=pos_coef.dtype)
    for start in range(0, rows_total, chunk):
        stop = min(start + chunk, rows_total)
        part = rows[start:stop] if need_hidden else rows[: stop - start]
        torch.index_select(grad_rows, 0, pos_slot[start:stop], out=part)
        dots[start:stop] = (part * rows_in[start:stop]).sum(-1, dtype=pos_coef.dtype)
        if need_hidden:
            part.mul_(pos_coef[start:stop].to(part.dtype))
    return dots, rows if need_hidden else None


def _masked_output(hidden: Tensor, scores: Tensor, k: int) -> TopKOutput:
    """All-masked result for inputs with no positions (n == 0)."""
    batch, _, d = hidden.shape
    return TopKOutput(
        hidden=hidden.new_zeros(batch, k, d),
        scores=scores.new_zeros(batch, k),
        mask=torch.zeros(batch, k, dtype=torch.bool, device=scores.device),
        indices=torch.full((batch, k), -1, dtype=torch.long, device=scores.device),
        weights=scores.new_zeros(batch, k),
    )


def _order_by_index(mask: Tensor, indices: Tensor) -> Tensor:
    """(B, k) permutation putting real slots first by ascending index, masked slots last."""
    key = torch.where(mask, indices, torch.iinfo(torch.long).max)
    return key.argsort(dim=1, stable=True)


class _Slots(NamedTuple):
    """The tournament's m slots: score, mask, dominating input index and its coefficient (B, m); and per slot
    the input positions ("leaves", B x m x total/m) it is made of, with their coefficients."""

    scores: Tensor
    mask: Tensor
    index: Tensor
    weight: Tensor
    leaves: Tensor
    coef: Tensor

    def permute(self, order: Tensor) -> _Slots:
        """The slots in the order (B, m)."""
        gathered = (x.gather(1, order) for x in self[:4])
        return _Slots(*gathered, _rows(self.leaves, order), _rows(self.coef, order))


def _round_order(slots: _Slots, sort: bool, first_round: bool) -> Tensor | None:
    """Order of the slots before a round: by score, descending (stable); without sorting, real slots first
    in the first round and the current order after (None)."""
    if sort:
        key = slots.scores.detach().masked_fill(~slots.mask, -math.inf)
        return key.sort(dim=1, descending=True, stable=True).indices
    if first_round:
        return (~slots.mask).to(torch.uint8).sort(dim=1, stable=True).indices  # reals first, order kept
    return None


def _play_round(slots: _Slots, temperature: float, weighting: str, base: float) -> _Slots:
    """One round: slot i meets slot m-1-i and the pair merges into y = w*x_i + (1-w)*x_j (m -> m/2)."""
    half = slots.scores.shape[1] // 2

    def pairs(x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, :half], x[:, half:].flip(1)

    (vi, vj), (mi, mj) = pairs(slots.scores), pairs(slots.mask)
    w = _pair_weight(vi, vj, temperature, weighting, base)
    w = torch.where(mi & mj, w, mi.to(w.dtype))  # a real beats a pad with weight exactly 1
    first_wins = w >= 0.5
    (index_i, index_j), (weight_i, weight_j) = pairs(slots.index), pairs(slots.weight)
    (leaves_i, leaves_j), (coef_i, coef_j) = pairs(slots.leaves), pairs(slots.coef)
    return _Slots(
        scores=w * vi + (1 - w) * vj,
        mask=mi | mj,
        index=torch.where(first_wins, index_i, index_j),
        weight=torch.where(first_wins, weight_i * w, weight_j * (1 - w)),
        leaves=torch.cat([leaves_i, leaves_j], dim=2),
        coef=torch.cat([coef_i * w.unsqueeze(-1), coef_j * (1 - w).unsqueeze(-1)], dim=2),
    )


def successive_halving_topk(
    hidden: Tensor,
    scores: Tensor,
    k: int,
    mask: Tensor | None = None,
    *,
    temperature: float = 1.0,
    sort: bool = True,
    weighting: str = "sigmoid",
    base: float = 20.0,
) -> TopKOutput:
    """Successive Halving Top-k (Algorithm 1): hidden (B,n,d), scores (B,n), mask (B,n) -> k slots (B,k,...).

    R = ceil(log2(n/k)) rounds on a sequence padded to k*2^R (pads are byes). Each round sorts by score
    (``sort=False``: keeps the current order), pairs position i with m-1-i and merges each pair into
    y = w*x_i + (1-w)*x_j, u = w*v_i + (1-w)*v_j with w = sigmoid((v_i - v_j)/temperature) (``weighting=
    "peaked"``: the authors' softmax over base**v, exponent capped so it cannot overflow). Scores are clamped
    to +-1e30 (+-inf allowed). The tournament runs on the (B, n) scores only, tracking each input's output
    slot and coefficient (differentiable); hidden states are combined in one pass at the end.
    """
    valid, k = _validate(hidden, scores, k, mask), int(k)
    check_temperature(temperature)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if weighting == "peaked" and not (math.isfinite(base) and base > 1):
        raise ValueError(f"base must be a finite number > 1 for weighting='peaked', got {base!r}")
    batch, n, _ = hidden.shape
    if n == 0:
        return _masked_output(hidden, scores, k)
    rounds = _num_rounds(n, k)
    total, work = k << rounds, _work_dtype(scores)
    start = torch.arange(total, device=scores.device).expand(batch, total)
    cur_mask = F.pad(valid, (0, total - n), value=False)
    slots = _Slots(
        F.pad(_finite_scores(scores, valid, work), (0, total - n)),
        cur_mask,
        start,
        cur_mask.to(work),
        start.unsqueeze(-1),
        cur_mask.to(work).unsqueeze(-1),
    )
    for r in range(rounds):
        order = _round_order(slots, sort, first_round=r == 0)
        slots = _play_round(slots if order is None else slots.permute(order), temperature, weighting, base)

    order = _order_by_index(slots.mask, slots.index)
    out_mask = slots.mask.gather(1, order)
    hidden = _zero_masked_rows(hidden, valid)
    out_hidden = _SlotCombine.apply(hidden, _rows(slots.leaves, order), _rows(slots.coef, order))
    return TopKOutput(
        hidden=out_hidden,
        scores=torch.where(out_mask, slots.scores.gather(1, order), 0.0).to(scores.dtype),
        mask=out_mask,
        indices=torch.where(out_mask, slots.index.gather(1, order), -1),
        weights=torch.where(out_mask, slots.weight.gather(1, order), 0.0).to(scores.dtype),
    )


def _select_rows(hidden: Tensor, scores: Tensor, order: Tensor, valid: Tensor, k: int) -> TopKOutput:
    """Hard selection of the input positions ``order`` (B, k'), k' <= k, padded with masked slots to k."""
    batch, n, d = hidden.shape
    sel_mask = valid.gather(1, order)
    perm = _order_by_index(sel_mask, order)
    order, sel_mask = order.gather(1, perm), sel_mask.gather(1, perm)
    picked = torch.where(sel_mask.unsqueeze(-1), _rows(hidden, order), 0.0)
    sel_scores = torch.where(sel_mask, scores.gather(1, order), 0.0)
    extra = k - order.shape[1]
    return TopKOutput(
        hidden=F.pad(picked, (0, 0, 0, extra)),
        scores=F.pad(sel_scores, (0, extra)),
        mask=F.pad(sel_mask, (0, extra), value=False),
        indices=F.pad(torch.where(sel_mask, order, -1), (0, extra), value=-1),
        weights=F.pad(sel_mask.to(scores.dtype), (0, extra)),
    )


def hard_topk(hidden: Tensor, scores: Tensor, k: int, mask: Tensor | None = None) -> TopKOutput:
    """Exact top-k: hidden (B,n,d), scores (B,n), mask (B,n) -> the k best real inputs (B,k,...), in order.

    Masked inputs are never chosen while a real one remains; ties go to the earlier position. Gradients reach
    the selected hidden states and scores only (d output / d score of the selection is 0, Appendix B.1).
    """
    valid, k = _validate(hidden, scores, k, mask), int(k)
    if hidden.shape[1] == 0:
        return _masked_output(hidden, scores, k)
    key = scores.detach().to(_work_dtype(scores)).masked_fill(~valid, -math.inf)
    order = key.sort(dim=1, descending=True, stable=True).indices[:, :k]
    return _select_rows(hidden, scores, order, valid, k)


def iterative_softmax_topk(
    hidden: Tensor, scores: Tensor, k: int, mask: Tensor | None = None, *, temperature: float = 1.0
) -> TopKOutput:
    """Iterative soft top-k of Goyal et al. (2018): hidden (B,n,d), scores (B,n), mask (B,n) -> (B,k,...).

    Iteration t = 1..k takes the peaked softmax p_t = softmax(-(v - max v)^2 / temperature) over the inputs
    not yet extracted and outputs sum_i p_t,i x_i (scores likewise); then the arg-max input is masked out. The
    k iterations are computed as one batched tensor program (the masking depends only on the hard ranks), in
    chunks of iterations; cost O(n k d), the paper's baseline. A sequence with <= k real inputs is returned
    as is (identity plus masked padding), like the other operators.
    """
    valid, k = _validate(hidden, scores, k, mask), int(k)
    check_temperature(temperature)
    batch, n, _ = hidden.shape
    if n == 0:
        return _masked_output(hidden, scores, k)
    work = _work_dtype(scores)
    steps = min(k, n)
    v = _finite_scores(scores, valid, work)
    key = v.detach().masked_fill(~valid, -math.inf)
    order = key.sort(dim=1, descending=True, stable=True).indices  # extraction order of the hard arg-maxes
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=order.device).expand(batch, n))
    rank = rank.masked_fill(~valid, -1)  # masked inputs are never available
    picked = order[:, :steps]
    num_real = valid.sum(1, keepdim=True)
    exact = _select_rows(hidden, scores, picked, valid, k)  # identity for sequences with <= k real inputs
    few = num_real <= k
    if bool(few.all()):
        return exact
    hidden = _zero_masked_rows(hidden, valid)
    peak = v.gather(1, picked)  # (B, steps): the max of the still-available scores at each iteration
    chunk = max(1, _ITERATIVE_CHUNK_ELEMENTS // max(1, batch * n))
    hidden_parts, score_parts, weight_parts = [], [], []
    for start in range(0, steps, chunk):
        t = torch.arange(start, min(start + chunk, steps), device=v.device)
        gap = (v.unsqueeze(1) - peak[:, t].unsqueeze(2)).clamp(min=-1e15)  # (B, c, n); gap**2 stays finite
        logits = -(gap**2) / temperature
        available = rank.unsqueeze(1) >= t.view(1, -1, 1)
        available |= (t.view(1, -1) >= num_real).unsqueeze(-1)  # empty iterations: finite dummy, masked later
        probs = torch.softmax(logits.masked_fill(~available, -math.inf), dim=-1)
        hidden_parts.append(torch.bmm(probs.to(hidden.dtype), hidden))
        score_parts.append((probs * v.unsqueeze(1)).sum(-1))
        weight_parts.append(probs.gather(2, picked[:, t].unsqueeze(-1)).squeeze(-1))
    out_hidden = torch.cat(hidden_parts, 1)
    out_scores, out_weight = torch.cat(score_parts, 1), torch.cat(weight_parts, 1)
    sel_mask = valid.gather(1, picked)
    perm = _order_by_index(sel_mask, picked)
    sel_mask = sel_mask.gather(1, perm)
    extra = k - steps
    soft = TopKOutput(
        hidden=F.pad(_rows(out_hidden, perm) * sel_mask.unsqueeze(-1).to(hidden.dtype), (0, 0, 0, extra)),
        scores=F.pad(torch.where(sel_mask, out_scores.gather(1, perm), 0.0).to(scores.dtype), (0, extra)),
        mask=F.pad(sel_mask, (0, extra), value=False),
        indices=F.pad(torch.where(sel_mask, picked.gather(1, perm), -1), (0, extra), value=-1),
        weights=F.pad(torch.where(sel_mask, out_weight.gather(1, perm), 0.0).to(scores.dtype), (0, extra)),
    )
    pick = [torch.where(few.view(-1, *[1] * (a.dim() - 1)), a, b) for a, b in zip(exact, soft, strict=True)]
    return TopKOutput(*pick)


TOPK_OPERATORS: dict[str, Callable[..., TopKOutput]] = {
    "successive_halving": successive_halving_topk,
    "hard": hard_topk,
    "iterative": iterative_softmax_topk,
}
# The keyword options each operator takes, as named in its signature (the config fields are `topk_<name>`).
TOPK_OPTIONS: dict[str, tuple[str, ...]] = {
    "successive_halving": ("temperature", "sort", "weighting"),
    "hard": (),
    "iterative": ("temperature",),
}
