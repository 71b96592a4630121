"""Attention kernels of the encoder and decoder: pure functions of q/k/v (B, H, L, D), no parameters.

`eager_attention_forward` has transformers' attention-interface signature (sdpa / flash / flex are looked up
in `ALL_ATTENTION_FUNCTIONS` by the modules); `efficient_attention` is the linear-time one of Shen et al.;
`lsh_attention` is Reformer's locality-sensitive-hashing attention (Kitaev et al. 2020)."""

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


def lsh_buckets(query_key: Tensor, key_mask: Tensor, rotations: Tensor) -> Tensor:
    """Reformer's angular LSH: the bucket of x in hash r is argmax over [x R_r, -x R_r] (2K buckets).

    query_key (B, H, n, D), key_mask (B, n) bool, rotations (H, D, R, K) -> (B, H, R, n) long. Padding gets
    an extra last bucket 2K, so that sorting puts it after every real vector. No gradient, fp32."""
    with torch.no_grad(), torch.autocast(query_key.device.type, enabled=False):
        rotated = torch.einsum("bhnd,hdrk->bhrnk", query_key.float(), rotations.float())
        buckets = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)
    return buckets.masked_fill(~key_mask[:, None, None, :], 2 * rotations.size(-1))


def _chunks_with_predecessor(chunks: Tensor, fill: float | bool | int) -> Tensor:
    """(B, H, R, C, c, ...) -> (B, H, R, C, 2c, ...): each chunk preceded by the chunk before it (the first
    chunk by `fill`: it has no predecessor)."""
    previous = torch.cat([torch.full_like(chunks[:, :, :, :1], fill), chunks[:, :, :, :-1]], dim=3)
    return torch.cat([previous, chunks], dim=4)


def lsh_attention(
    query_key: Tensor,
    value: Tensor,
    key_mask: Tensor,
    rotations: Tensor,
    bucket_size: int,
    dropout: float = 0.0,
    training: bool = False,
) -> Tensor:
    """LSH attention (Reformer, Kitaev et al. 2020), memory linear in n: per hash, sort by (bucket, position),
    attend within each chunk of `bucket_size` and its predecessor, then combine the hashes by the softmax of
    their log-sum-exps.

    query_key/value (B, H, n, D) (shared QK: the keys are the unit-length queries, and scores q.k/|k| need no
    1/sqrt(D), as in transformers' Reformer), key_mask (B, n) bool, rotations (H, D, R, K): R hashes into 2K
    buckets. A query never attends to itself unless no other key is available (a hash in which it sees only
    itself then gets no weight beside one that offers keys); padded keys are never attended and sort last, so
    real queries do not depend on the padding. The first chunk has no predecessor (no wrap-around). Returns
    (B, n, H, D)."""
    batch, heads, length, dim = query_key.shape
    hashes = rotations.size(2)
    buckets = lsh_buckets(query_key, key_mask, rotations)
    order = (buckets * length + torch.arange(length, device=buckets.device)).argsort(dim=-1)  # (B, H, R, n)
    n_chunks = -(-length // bucket_size)
    pad = n_chunks * bucket_size - length

    def sort(tensor: Tensor, fill: float | bool | int) -> Tensor:
        """(B, H, n[, D]) gathered in hash order, padded, in chunks: (B, H, R, C, c[, D])."""
        index = order if tensor.dim() == 3 else order[..., None].expand(-1, -1, -1, -1, tensor.size(-1))
        tensor = tensor.unsqueeze(2).expand(-1, -1, hashes, *tensor.shape[2:]).gather(3, index)
        padding = (0, 0) * (tensor.dim() - 4) + (0, pad)
        return F.pad(tensor, padding, value=fill).unflatten(3, (n_chunks, bucket_size))

    positions = sort(torch.arange(length, device=order.device).expand(batch, heads, length), -1)
    real = sort(key_mask[:, None, :].expand(batch, heads, length), False)
    queries = sort(query_key, 0.0)
    keys = _chunks_with_predecessor(F.normalize(queries, dim=-1), 0.0)
    scores = torch.matmul(queries, keys.transpose(-1, -2))  # (B, H, R, C, c, 2c)
    low = torch.finfo(scores.dtype).min
    is_self = positions[..., :, None] == _chunks_with_predecessor(positions, -1)[..., None, :]
    scores = scores.masked_fill(is_self, low / 2)  # below any real score, above padding
    scores = scores.masked_fill(~_chunks_with_predecessor(real, False)[..., None, :], low)
    lse = scores.logsumexp(dim=-1, keepdim=True)
    probs = F.dropout(torch.exp(scores - lse), p=dropout, training=training)
    out = torch.matmul(probs, _chunks_with_predecessor(sort(value, 0.0), 0.0))  # (B, H, R, C, c, D)

    undo = order.argsort(dim=-1)
    out = out.flatten(3, 4)[:, :, :, :length].gather(3, undo[..., None].expand(-1, -1, -1, -1, dim))
    lse = lse.flatten(3, 4)[:, :, :, :length, 0].gather(3, undo)
    out = (out * lse.softmax(dim=2)[..., None]).sum(dim=2)  # (B, H, n, D)
    return out.transpose(1, 2).contiguous()
