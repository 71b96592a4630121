"""Attention kernels of the encoder and decoder: pure functions of q/k/v (B, H, L, D), no parameters.

`eager_attention_forward` has transformers' attention-interface signature (sdpa / flash / flex are looked up
in `ALL_ATTENTION_FUNCTIONS` by the modules); `efficient_attention` is the linear-time one of Shen et al."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def additive_mask(keep: Tensor, dtype: torch.dtype) -> Tensor:
    """0 where `keep` (bool, broadcastable to (B, H, q, k)) is True, the dtype's minimum elsewhere (finite: a
    fully masked row gives uniform attention, never NaN)."""
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)


def eager_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """softmax(q k^T * scaling + mask) v for q/k/v (B, H, L, D).

    Returns the output (B, Lq, H, D) and the attention probabilities (B, H, Lq, Lk)."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def efficient_attention(
    query: Tensor, key: Tensor, value: Tensor, key_mask: Tensor, dropout: float, training: bool
) -> Tensor:
    """Efficient attention (Shen et al. 2021), linear in length: softmax_d(q) @ (softmax_L(k)^T @ v).

    q/k/v (B, H, L, D), key_mask (B, L) bool; returns (B, L, H, D). Masked keys get zero weight."""
    query = query.softmax(dim=-1)
    key = key.masked_fill(~key_mask[:, None, :, None], torch.finfo(key.dtype).min).softmax(dim=-2)
    key = F.dropout(key, p=dropout, training=training)
    return torch.matmul(query, torch.matmul(key.transpose(-2, -1), value)).transpose(1, 2).contiguous()
