"""Attention: the kernels (pure functions of q/k/v (B, H, L, D)) and the encoder's and decoder's modules.

`eager_attention_forward` has transformers' attention-interface signature (sdpa / flash / flex are looked up
in `ALL_ATTENTION_FUNCTIONS` by the modules); `efficient_attention` is the linear-time one of Shen et al.;
`lsh_attention` is Reformer's locality-sensitive-hashing attention (Kitaev et al. 2020)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers.cache_utils import EncoderDecoderCache
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_pyramidion import PyramidionConfig
from .inputs import block_attention_mask


def additive_mask(keep: Tensor, dtype: torch.dtype) -> Tensor:
    """0 where `keep` (bool, broadcastable to (B, H, q, k)) is True, the dtype's minimum elsewhere (finite: a
    fully masked row gives uniform attention, never NaN)."""
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)


# The sdpa kernels of a decoder forward on CUDA: all but cuDNN's, which builds a plan for every new key length
# once per process, while the dynamic cache's key length grows by one each step. On an H200 (bf16, the deep
# DeepPyramidion at 8k, batch 8) a first 128-token generation took 7.0 s and a second 0.73 s; without cuDNN,
# 256 new lengths took 1.48 s against 1.41 s for lengths cuDNN had planned already.
DECODER_SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def decoder_sdpa_kernels(hidden: Tensor) -> contextlib.AbstractContextManager:
    """Where a decoder forward on `hidden` runs: DECODER_SDPA_BACKENDS on CUDA, else (CPU, or inside
    torch.compile, whose decode step runs on a static cache of one key length) the kernels torch picks."""
    if hidden.is_cuda and not torch.compiler.is_compiling():
        return sdpa_kernel(DECODER_SDPA_BACKENDS)
    return contextlib.nullcontext()


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
    """softmax(q k^T * scaling + mask) v for q/k/v (..., H, L, D) (any leading dims, e.g. (B, n_blocks)); the
    mask is additive, or bool (True = attend) as built for sdpa.

    Returns the output (..., Lq, H, D) and the attention probabilities (..., H, Lq, Lk) that produced it."""
    scaling = query.size(-1) ** -0.5 if scaling is None else scaling
    weights = torch.matmul(query, key.transpose(-2, -1)) * scaling
    if attention_mask is not None and attention_mask.dtype == torch.bool:  # an sdpa mask (True = attend)
        attention_mask = additive_mask(attention_mask, weights.dtype)
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(-3, -2).contiguous(), weights


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


class PyramidionAttention(nn.Module):
    """The q/k/v/out projections (BART's names) shared by the encoder's and the decoder's attention."""

    def __init__(self, config: PyramidionConfig, layer_idx: int, num_heads: int, is_causal: bool = False):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = is_causal
        self.embed_dim = config.d_model
        self.num_heads = num_heads
        self.head_dim = self.embed_dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def _heads(self, projection: nn.Linear, states: Tensor) -> Tensor:
        """(B, L, d) -> projected (B, H, L, D)."""
        return projection(states).view(*states.shape[:2], self.num_heads, self.head_dim).transpose(1, 2)

    def _interface(self, need_weights: bool) -> Callable:
        """transformers' attention function for `config._attn_implementation`; eager when the probabilities
        themselves are needed (its masks are then built in eager's or sdpa's form, which it reads)."""
        implementation = self.config._attn_implementation
        if need_weights and implementation not in ("eager", "sdpa"):
            raise ValueError(
                f"attn_implementation={implementation!r} returns no attention probabilities: load the model "
                "with attn_implementation='sdpa' or 'eager' to get output_attentions (or the attention "
                "received by the scorer)."
            )
        if need_weights:
            return eager_attention_forward
        return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)


class PyramidionEncoderAttention(PyramidionAttention):
    """Encoder self-attention. "dot": every head on non-overlapping blocks of `config.block_size` vectors
    (full when None). "efficient" / "lsh": the first `local_attention_heads` heads do that (local heads), the
    others attend over the whole sequence (block_size ignored) with efficient or LSH attention.

    LSH heads share one projection for queries and keys (q_proj, as in Reformer); k_proj then projects only
    the local heads' keys, and does not exist without local heads. LSH rotations (2 * ceil(n / bucket size)
    buckets for the layer's full-length input n) are drawn afresh from the global RNG in each training
    forward, and in eval mode from a generator seeded with the layer index: eval forwards, and so generation,
    are reproducible."""

    def __init__(self, config: PyramidionConfig, layer_idx: int):
        super().__init__(config, layer_idx, config.encoder_attention_heads)
        self.block_size = config.block_size
        self.kind = config.encoder_attention
        self.local_heads = self.num_heads if self.kind == "dot" else config.local_attention_heads
        if self.kind == "lsh":
            self.num_hashes, self.bucket_size = config.lsh_num_hashes, config.lsh_bucket_size
            self.half_buckets = -(-config.encoder_input_lengths[layer_idx] // self.bucket_size)
            if self.local_heads:
                self.k_proj = nn.Linear(self.embed_dim, self.local_heads * self.head_dim)
            else:
                del self.k_proj

    def _heads(self, projection: nn.Linear, states: Tensor) -> Tensor:
        """(B, L, d) -> projected (B, heads of that projection, L, D)."""
        return projection(states).unflatten(-1, (-1, self.head_dim)).transpose(1, 2)

    def forward(
        self,
        hidden_states: Tensor,
        mask: Tensor,
        output_attentions: bool = False,
        return_received: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """hidden (B, n, d), mask (B, n) bool -> out (B, n, d); attention probs ((B, H, n, n) for full
        attention, (B, n_blocks, H, block, block) for blockwise) if `output_attentions`; attention received
        (B, n) (summed over heads and real queries of the key's block) if `return_received`. Both need every
        head to be a dot-attention head."""
        if self.local_heads < self.num_heads and (output_attentions or return_received):
            raise ValueError(
                f"encoder_attention={self.kind!r} forms no attention matrix: use output_attentions=False."
            )
        batch, length, _ = hidden_states.shape
        block = length if self.block_size is None else min(self.block_size, length)
        n_blocks = -(-length // block)
        pad = n_blocks * block - length
        if pad:  # the last block is padded and masked
            hidden_states, mask = F.pad(hidden_states, (0, 0, 0, pad)), F.pad(mask, (0, pad), value=False)
        blocks = hidden_states.reshape(batch * n_blocks, block, self.embed_dim)
        block_mask = mask.reshape(batch * n_blocks, block)
        query, value = self._heads(self.q_proj, blocks), self._heads(self.v_proj, blocks)
        key = self._heads(self.k_proj, blocks) if hasattr(self, "k_proj") else None
        dropout = self.dropout if self.training else 0.0

        outs, weights = [], None
        if self.local_heads:
            q, k, v = (tensor[:, : self.local_heads] for tensor in (query, key, value))
            need_weights = output_attentions or return_received
            attention = self._interface(need_weights)
            mask_4d = block_attention_mask(self.config, blocks, block_mask, need_weights)
            if need_weights and self.block_size is not None:  # probabilities in their returned layout
                q, k, v, mask_4d = (t.unflatten(0, (batch, n_blocks)) for t in (q, k, v, mask_4d))
            out, weights = attention(self, q, k, v, mask_4d, dropout=dropout, scaling=self.scaling)
            outs.append(out.reshape(batch, n_blocks * block, self.local_heads, self.head_dim))
        if self.local_heads < self.num_heads:
            outs.append(self._sequence_heads(query, key, value, mask, batch, dropout))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        out = self.out_proj(out.reshape(batch, n_blocks * block, self.embed_dim)[:, :length])
        received = None
        if return_received:
            by_block = weights.view(batch, n_blocks, self.num_heads, block, block)
            real_queries = block_mask.view(batch, n_blocks, 1, block, 1)
            received = (by_block * real_queries).sum(dim=(2, 3)).reshape(batch, -1)[:, :length]
        # the probabilities the output was computed from (so that retain_grad() on them works, as in BART)
        return out, (weights if output_attentions else None), received

    def _sequence_heads(
        self, query: Tensor, key: Tensor | None, value: Tensor, mask: Tensor, batch: int, dropout: float
    ) -> Tensor:
        """The efficient or LSH heads over the whole sequence: q/k/v in blocks (B * n_blocks, H, block, D),
        mask (B, n) -> (B, n, heads, D)."""

        def whole(tensor: Tensor) -> Tensor:  # this module's heads, (B, heads, n, D)
            return tensor[:, self.local_heads :].unflatten(0, (batch, -1)).transpose(1, 2).flatten(2, 3)

        if self.kind == "efficient":
            return efficient_attention(whole(query), whole(key), whole(value), mask, dropout, self.training)
        query = whole(query)
        rotations = self._rotations(query.size(1), query.device)
        return lsh_attention(query, whole(value), mask, rotations, self.bucket_size, dropout, self.training)

    def _rotations(self, heads: int, device: torch.device) -> Tensor:
        """Random rotations (heads, D, R, K) of the LSH heads: global RNG in training, seeded by the layer
        index in eval (see the class docstring)."""
        generator = None if self.training else torch.Generator(device).manual_seed(self.layer_idx)
        shape = (heads, self.head_dim, self.num_hashes, self.half_buckets)
        return torch.randn(shape, generator=generator, device=device)


class PyramidionDecoderAttention(PyramidionAttention):
    """Decoder multi-head attention (causal self-attention or cross-attention) with key/value caching."""

    def __init__(self, config: PyramidionConfig, layer_idx: int, is_causal: bool):
        super().__init__(config, layer_idx, config.decoder_attention_heads, is_causal)

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor,
        key_value_states: Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """hidden (B, t, d), additive mask (B, 1, t, kv); cross-attention when `key_value_states` (B, k, d) is
        given: its keys/values are computed once per generation and then read from the cache."""
        batch, length, _ = hidden_states.shape
        query = self._heads(self.q_proj, hidden_states)
        is_cross = key_value_states is not None
        layer_cache = None
        if cache is not None:
            layer_cache = cache.cross_attention_cache if is_cross else cache.self_attention_cache
        if is_cross and cache is not None and cache.is_updated.get(self.layer_idx):
            key, value = layer_cache.layers[self.layer_idx].keys, layer_cache.layers[self.layer_idx].values
        else:
            source = key_value_states if is_cross else hidden_states
            key, value = self._heads(self.k_proj, source), self._heads(self.v_proj, source)
            if cache is not None:
                key, value = layer_cache.update(key, value, self.layer_idx)
                if is_cross:
                    cache.is_updated[self.layer_idx] = True

        out, weights = self._interface(output_attentions)(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout if self.training else 0.0,
            scaling=self.scaling,
        )
        out = self.out_proj(out.reshape(batch, length, self.embed_dim))
        return out, weights if output_attentions else None
