"""Trainable representation pooling (paper §3.1, Appendix A): score vectors, keep k with a top-k operator.

Scorers (``SCORERS``):
- ``linear``: S(e) = e·w + b (the paper's default).
- ``nonlinear``: RoBERTa classification-head style, S(e) = tanh(e W1 + b1)·w2 + b2 with W1 a d×d matrix.
  The paper writes w1 ∈ R^d, which would make tanh(e·w1 + b1) a scalar and S a monotone function of a linear
  score (no more expressive than ``linear``); RoBERTa's head, which the paper follows, has a d×d dense layer.
- ``power``: attention received in the preceding layer (PoWER-BERT), passed in as ``attention_received``.
- ``embedding``: a fixed coordinate ``embedding_index`` of the vector (no parameters).
- ``random``: uniform [0, 1) scores (a baseline).
- ``index``: 1 on the first token of every window of ceil(n/k) tokens (= every (n//k)-th token when k divides
  n), else 0, with n the sequence's real length; the windows are those of ``mean``/``max``.
- ``mean`` / ``max``: strided pooling over windows of ceil(n/k) real tokens (window = stride), no top-k.

``normalize_scorer_input``: the ``FEATURE_SCORERS`` (``linear``, ``nonlinear``, ``embedding``) score a
layer-normalized (no affine) copy of the vectors; the kept vectors themselves are not normalized. Pre-norm
encoders set it: their residual stream grows in scale (RMS ~2.5 at init in the selection ablation's model),
which would saturate the nonlinear scorer's tanh and make every pair weight hard at small temperatures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .precision import fp32_linear
from .topk import TOPK_OPERATORS, TOPK_OPTIONS, WEIGHTINGS, TopKOutput, check_temperature

SCORERS = ("linear", "nonlinear", "power", "embedding", "random", "index", "mean", "max")
STRIDED_SCORERS = ("mean", "max")
FEATURE_SCORERS = ("linear", "nonlinear", "embedding")  # the scorers that read the vectors themselves
_NEEDS_ATTENTION = (
    "scorer='power' needs attention_received (B, n): the attention probabilities each token received in the "
    "preceding layer, summed over heads and queries (the model computes it; see needs_attention_received)."
)


class PoolingOutput(NamedTuple):
    """What a pooling layer hands to the next layer; masked slots: hidden 0, position/index -1, weight 0."""

    hidden: Tensor  # (B, k, d)
    mask: Tensor  # (B, k) bool, True = real
    positions: Tensor  # (B, k) long: document token positions of the dominating inputs; -1 where masked
    scores: Tensor  # (B, k)
    weights: Tensor  # (B, k): coefficient of the dominating input in its output
    indices: Tensor  # (B, k) long: indices into this layer's input; -1 where masked


class RepresentationPooling(nn.Module):
    """Scores (B, n, d) vectors and keeps k of them (B, k, d), with their mask and document positions.

    DDP: the Trainer runs DDP with ``find_unused_parameters=False``, so every scorer parameter must be reached
    by backward in every step, also when the operator passes no gradient to the scores (``topk="hard"``, or
    n <= k, where every operator is the identity). The pooled hidden states therefore carry a zero-valued
    anchor, ``0 * sum(real scores)`` per sequence: forward values are unchanged and the scorer receives exact
    zero gradients from it, so hard top-k still does not train the scorer (the paper's point) and DDP works.
    """

    def __init__(
        self,
        d_model: int,
        k: int,
        scorer: str = "linear",
        topk: str = "successive_halving",
        temperature: float = 1.0,
        sort: bool = True,
        weighting: str = "sigmoid",
        embedding_index: int = 0,
        normalize_scorer_input: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(d_model, int) or d_model < 1:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}.")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k (the number of vectors to keep) must be an int >= 1, got {k!r}.")
        if scorer not in SCORERS:
            raise ValueError(f"Unknown scorer {scorer!r}; choose one of {', '.join(SCORERS)}.")
        if topk not in TOPK_OPERATORS:
            raise ValueError(f"Unknown topk operator {topk!r}; choose one of {', '.join(TOPK_OPERATORS)}.")
        check_temperature(temperature)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"Unknown weighting {weighting!r}; choose one of {', '.join(WEIGHTINGS)}.")
        if scorer == "embedding":
            check_embedding_index(embedding_index, d_model)
        self.d_model = d_model
        self.k = k
        self.scorer = scorer
        self.topk = topk
        self.temperature = float(temperature)
        self.sort = sort
        self.weighting = weighting
        self.embedding_index = embedding_index
        self.normalize_scorer_input = normalize_scorer_input
        if scorer == "linear":
            self.score_proj = nn.Linear(d_model, 1)
        elif scorer == "nonlinear":
            self.dense = nn.Linear(d_model, d_model)
            self.score_proj = nn.Linear(d_model, 1)
        options = {"temperature": self.temperature, "sort": sort, "weighting": weighting}
        self.topk_options = {name: options[name] for name in TOPK_OPTIONS[topk]}
        self._select: Callable[..., TopKOutput] = functools.partial(TOPK_OPERATORS[topk], **self.topk_options)
        if self.uses_topk:
            self._score: Callable[..., Tensor] = getattr(self, f"_{scorer}_scores")
        self.reset_parameters()

    @property
    def needs_attention_received(self) -> bool:
        """True when forward needs ``attention_received`` (scorer ``power``)."""
        return self.scorer == "power"

    @property
    def uses_topk(self) -> bool:
        """False for the strided ``mean``/``max`` pooling, which bypasses the top-k operator."""
        return self.scorer not in STRIDED_SCORERS

    def reset_parameters(self) -> None:
        """Initialise the scorer (call it from a model's ``_init_weights``; no-op without parameters)."""
        # Layer-norm scaled inputs (unit-variance coordinates): std 1/sqrt(d) gives scores of std ~1 = tau,
        # distinct (no degenerate tie tournament) yet soft (mean pair weight ~0.77, none one-hot). tanh of a
        # unit-variance input has RMS ~0.63, hence the 1.6 gain on the nonlinear scorer's output layer.
        std = 1.0 / math.sqrt(self.d_model)
        if self.scorer == "nonlinear":
            nn.init.normal_(self.dense.weight, mean=0.0, std=std)
            nn.init.zeros_(self.dense.bias)
        if self.scorer in ("linear", "nonlinear"):
            gain = 1.6 if self.scorer == "nonlinear" else 1.0
            nn.init.normal_(self.score_proj.weight, mean=0.0, std=gain * std)
            nn.init.zeros_(self.score_proj.bias)

    def extra_repr(self) -> str:
        opts = f"d_model={self.d_model}, k={self.k}, scorer={self.scorer!r}"
        if self.normalize_scorer_input and self.scorer in FEATURE_SCORERS:
            opts += ", normalize_scorer_input=True"
        if self.uses_topk:
            opts += f", topk={self.topk!r}"
            opts += "".join(f", {name}={value!r}" for name, value in self.topk_options.items())
        return opts

    def score(
        self, hidden: Tensor, mask: Tensor | None = None, attention_received: Tensor | None = None
    ) -> Tensor:
        """Scores (B, n) for hidden (B, n, d) and mask (B, n) bool (None = all real); none for mean/max."""
        if not self.uses_topk:
            raise ValueError(f"scorer={self.scorer!r} pools strided windows and has no scores.")
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        # fp32 scores under autocast and with bf16 weights alike: bf16 scores (8-bit mantissa) tie and flip
        # selections (measured on the demo model: a quarter of a 512 -> 256 selection changed)
        with torch.autocast(hidden.device.type, enabled=False):
            if self.normalize_scorer_input and self.scorer in FEATURE_SCORERS:
                hidden = F.layer_norm(hidden.float(), (self.d_model,))
            return self._score(hidden, mask.bool(), attention_received).float()

    def _linear_scores(self, hidden: Tensor, mask: Tensor, received: Tensor | None) -> Tensor:
        return fp32_linear(self.score_proj, hidden).squeeze(-1)

    def _nonlinear_scores(self, hidden: Tensor, mask: Tensor, received: Tensor | None) -> Tensor:
        features = torch.tanh(self.dense(hidden.to(self.dense.weight.dtype)))  # (B, n, d), model dtype
        return fp32_linear(self.score_proj, features).squeeze(-1)

    def _power_scores(self, hidden: Tensor, mask: Tensor, received: Tensor | None) -> Tensor:
        if received is None:
            raise ValueError(_NEEDS_ATTENTION)
        return received.to(hidden.dtype)

    def _embedding_scores(self, hidden: Tensor, mask: Tensor, received: Tensor | None) -> Tensor:
        return hidden[..., self.embedding_index]

    def _random_scores(self, hidden: Tensor, mask: Tensor, received: Tensor | None) -> Tensor:
        return torch.rand(hidden.shape[:2], device=hidden.device, dtype=hidden.dtype)

    def _index_scores(self, hidden: Tensor, mask: Tensor, received: Tensor | None) -> Tensor:
        rank, stride = _rank_and_stride(mask, self.k)
        return ((rank % stride[:, None] == 0) & mask).to(hidden.dtype)

    def forward(
        self,
        hidden: Tensor,
        mask: Tensor | None = None,
        positions: Tensor | None = None,
        attention_received: Tensor | None = None,
    ) -> PoolingOutput:
        """Pool hidden (B, n, d) with mask (B, n) bool (None = all real) and document positions (B, n) long
        (None = 0..n-1) to k vectors; ``attention_received`` (B, n) is required for scorer ``power``."""
        mask, positions = self._check_inputs(hidden, mask, positions, attention_received)
        if not self.uses_topk:
            out = _strided_pool(hidden, mask, self.k, self.scorer)
        else:
            scores = self.score(hidden, mask, attention_received)
            out = self._select(hidden, scores, self.k, mask)
            if self.scorer in ("linear", "nonlinear"):
                anchor = scores.masked_fill(~mask, 0.0).sum(dim=1) * 0.0  # DDP anchor, see class docstring
                out = out._replace(hidden=out.hidden + anchor[:, None, None].to(out.hidden.dtype))
        out_positions = positions.gather(1, out.indices.clamp(min=0)).masked_fill(~out.mask, -1)
        dtype = hidden.dtype  # scores and weights are fp32 inside, returned in the hidden states' dtype
        return PoolingOutput(
            out.hidden, out.mask, out_positions, out.scores.to(dtype), out.weights.to(dtype), out.indices
        )

    def _check_inputs(
        self, hidden: Tensor, mask: Tensor | None, positions: Tensor | None, attention_received: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        if hidden.dim() != 3 or hidden.shape[-1] != self.d_model:
            raise ValueError(
                f"hidden must have shape (batch, length, d_model={self.d_model}), got {tuple(hidden.shape)}."
            )
        batch, length = hidden.shape[:2]
        if mask is None:
            mask = torch.ones(batch, length, dtype=torch.bool, device=hidden.device)
        elif tuple(mask.shape) != (batch, length):
            raise ValueError(
                f"mask must have shape (batch, length)={(batch, length)}, got {tuple(mask.shape)}."
            )
        mask = mask.bool()
        if positions is None:
            positions = torch.arange(length, device=hidden.device).expand(batch, length)
        elif tuple(positions.shape) != (batch, length):
            raise ValueError(
                f"positions must have shape (batch, length)={(batch, length)}, got {tuple(positions.shape)}."
            )
        if self.needs_attention_received:
            if attention_received is None:
                raise ValueError(_NEEDS_ATTENTION)
            if tuple(attention_received.shape) != (batch, length):
                raise ValueError(
                    f"attention_received must have shape (batch, length)={(batch, length)}, "
                    f"got {tuple(attention_received.shape)}."
                )
        return mask, positions.long()


def check_embedding_index(index: int, d_model: int, name: str = "embedding_index") -> None:
    """The one range check of the `embedding` scorer's coordinate (the config passes its field name)."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < d_model:
        raise ValueError(
            f"{name}={index!r} is out of range for d_model={d_model}; use an index in [0, {d_model - 1}]."
        )


def _rank_and_stride(mask: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Rank of each real token among its sequence's real tokens (B, n) and the window ceil(n_real/k) (B,)."""
    rank = mask.long().cumsum(dim=1) - 1
    n_real = mask.sum(dim=1)
    stride = torch.div(n_real + k - 1, k, rounding_mode="floor").clamp(min=1)
    return rank, stride


def _strided_pool(hidden: Tensor, mask: Tensor, k: int, reduce: str) -> TopKOutput:
    """Mean/max over windows of ceil(n_real/k) consecutive real tokens (per sequence); empty windows masked.

    indices: first token of each window; weights: 1/window size; scores: 0 (no scorer). Shapes (B, k[, d]).
    Means accumulate in fp32 (fp64 for fp64 inputs) and are cast back to the input dtype.
    """
    batch, length, d = hidden.shape
    rank, stride = _rank_and_stride(mask, k)
    # window of each token; masked tokens go to an extra slot k that is dropped
    slot = torch.where(mask, torch.div(rank, stride[:, None], rounding_mode="floor"), k)
    counts = torch.zeros(batch, k + 1, dtype=torch.long, device=hidden.device)
    counts = counts.scatter_add(1, slot, mask.long())[:, :k]
    out_mask = counts > 0
    slot_d = slot[..., None].expand(batch, length, d)
    if reduce == "mean":
        work = torch.promote_types(hidden.dtype, torch.float32)
        sums = torch.zeros(batch, k + 1, d, dtype=work, device=hidden.device)
        sums = sums.scatter_add(1, slot_d, hidden.to(work))[:, :k]
        pooled = (sums / counts.clamp(min=1)[..., None]).to(hidden.dtype)
    else:
        pooled = hidden.new_zeros(batch, k + 1, d).scatter_reduce(
            1, slot_d, hidden, reduce="amax", include_self=False
        )[:, :k]
    pooled = pooled.masked_fill(~out_mask[..., None], 0.0)
    arange = torch.arange(length, device=hidden.device).expand(batch, length)
    first = torch.full((batch, k + 1), length, dtype=torch.long, device=hidden.device)
    first = first.scatter_reduce(1, slot, arange, reduce="amin", include_self=True)[:, :k]
    indices = first.masked_fill(~out_mask, -1)
    weights = torch.where(out_mask, 1.0 / counts.clamp(min=1), 0.0).to(hidden.dtype)
    return TopKOutput(pooled, torch.zeros_like(weights), out_mask, indices, weights)
