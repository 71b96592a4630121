"""Pyramidion: an encoder-decoder Transformer whose encoder pools its representations with a trainable top-k.

Read top to bottom: embeddings -> attention (blockwise dot, efficient, decoder with caches) -> layers ->
encoder (with pooling after the layers whose `encoder_lengths` entry shrinks) -> decoder -> PreTrainedModel
classes. Conventions follow BART (parameter names, post-norm by default, shared embeddings,
`shift_tokens_right`). Travels as Hub remote code: imports only torch, transformers and sibling files."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg

from .attention import additive_mask, eager_attention_forward, efficient_attention, lsh_attention
from .configuration_pyramidion import PyramidionConfig
from .pooling import RepresentationPooling

# ------------------------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------------------------


@dataclass
class PyramidionEncoderOutput(BaseModelOutput):
    """Encoder output. `last_hidden_state` (B, k, d) is what the decoder attends to, `pooled_mask` (B, k) bool
    its mask; `pooling_indices` / `pooling_weights`: one (B, k_l) tensor per pooling layer with the document
    token position (index into `input_ids`, -1 where masked) of the input dominating each pooled vector and
    its weight."""

    pooled_mask: torch.BoolTensor | None = None
    pooling_indices: tuple[torch.LongTensor, ...] | None = None
    pooling_weights: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class PyramidionSeq2SeqModelOutput(Seq2SeqModelOutput):
    """`Seq2SeqModelOutput` plus the encoder's pooled mask (B, k) and per-pooling-layer positions, weights."""

    encoder_pooled_mask: torch.BoolTensor | None = None
    encoder_pooling_indices: tuple[torch.LongTensor, ...] | None = None
    encoder_pooling_weights: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class PyramidionSeq2SeqLMOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` plus the encoder's pooled mask (B, k) and per-pooling-layer positions and weights."""

    encoder_pooled_mask: torch.BoolTensor | None = None
    encoder_pooling_indices: tuple[torch.LongTensor, ...] | None = None
    encoder_pooling_weights: tuple[torch.FloatTensor, ...] | None = None


# ------------------------------------------------------------------------------------------------------------
# Embeddings and masks
# ------------------------------------------------------------------------------------------------------------


def shift_tokens_right(
    input_ids: Tensor, pad_token_id: int | None, decoder_start_token_id: int | None
) -> Tensor:
    """Decoder inputs from labels (B, t): prepend decoder_start_token_id, drop the last token, -100 -> pad."""
    if pad_token_id is None or decoder_start_token_id is None:
        raise ValueError("config.pad_token_id and config.decoder_start_token_id must be set to shift labels.")
    shifted = input_ids.new_zeros(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def sinusoidal_embedding(positions: Tensor, dim: int) -> Tensor:
    """Fairseq sinusoidal embeddings (..., dim) of integer positions (...): [sin(p f_i), cos(p f_i)]."""
    half = dim // 2
    freq = torch.exp(torch.arange(half, device=positions.device) * -(math.log(10000.0) / max(half - 1, 1)))
    angles = positions.float()[..., None] * freq
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))


def pegasus_sinusoidal_embedding(positions: Tensor, dim: int) -> Tensor:
    """PEGASUS' sinusoidal embeddings (..., dim) of integer positions (...) (transformers'
    PegasusSinusoidalPositionalEmbedding): with angles p / 10000**(2*(j//2)/dim), the sines of the even j
    fill the first ceil(dim/2) features and the cosines of the odd j the rest."""
    j = torch.arange(dim, device=positions.device)
    angles = positions.float()[..., None] * torch.pow(10000.0, -(2 * (j // 2)).float() / dim)
    return torch.cat([torch.sin(angles[..., 0::2]), torch.cos(angles[..., 1::2])], dim=-1)


SINUSOIDAL_EMBEDDINGS = {
    "sinusoidal": sinusoidal_embedding,
    "sinusoidal_pegasus": pegasus_sinusoidal_embedding,
}


def position_embedding(kind: str, positions: Tensor, dim: int, table: nn.Embedding | None) -> Tensor:
    """Embeddings (..., dim) of positions (...): rows of the learned `table` for kind "learned", else the
    sinusoidal formula `kind` names (see `SINUSOIDAL_EMBEDDINGS`)."""
    if kind == "learned":
        return table(positions)
    return SINUSOIDAL_EMBEDDINGS[kind](positions, dim)


class PyramidionScaledWordEmbedding(nn.Embedding):
    """Token embedding multiplied by `embed_scale` (sqrt(d_model) when `config.scale_embedding`)."""

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx: int | None, embed_scale: float = 1.0
    ):
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.embed_scale = embed_scale

    def forward(self, input_ids: Tensor) -> Tensor:
        return super().forward(input_ids) * self.embed_scale


# ------------------------------------------------------------------------------------------------------------
# Attention
# ------------------------------------------------------------------------------------------------------------


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
        themselves are needed."""
        if need_weights:
            return eager_attention_forward
        implementation = self.config._attn_implementation
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
            attention = self._interface(output_attentions or return_received)
            mask_4d = additive_mask(block_mask[:, None, None, :], query.dtype)
            out, weights = attention(self, q, k, v, mask_4d, dropout=dropout, scaling=self.scaling)
            outs.append(out.reshape(batch, n_blocks * block, self.local_heads, self.head_dim))
        if self.local_heads < self.num_heads:
            outs.append(self._sequence_heads(query, key, value, mask, batch, dropout))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
        out = self.out_proj(out.reshape(batch, n_blocks * block, self.embed_dim)[:, :length])
        received = None
        if return_received:
            received = (weights * block_mask[:, None, :, None]).sum(dim=(1, 2)).view(batch, -1)[:, :length]
        if output_attentions:
            weights = weights.view(batch, n_blocks, self.num_heads, block, block)
            weights = weights[:, 0] if self.block_size is None else weights
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


# ------------------------------------------------------------------------------------------------------------
# Layers (post-norm as BART/fairseq, pre-norm when config.normalize_before)
# ------------------------------------------------------------------------------------------------------------


class PyramidionLayer(GradientCheckpointingLayer):
    """What encoder and decoder layers share: residual sublayers and the feed-forward block."""

    def __init__(self, config: PyramidionConfig, ffn_dim: int):
        super().__init__()
        self.normalize_before = config.normalize_before
        self.dropout = config.dropout
        self.activation_fn = ACT2FN[config.activation_function]
        self.activation_dropout = config.activation_dropout
        self.fc1 = nn.Linear(config.d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, config.d_model)
        self.final_layer_norm = nn.LayerNorm(config.d_model)

    def _residual(self, norm: nn.LayerNorm, hidden: Tensor, sublayer: Callable[[Tensor], tuple]) -> tuple:
        """x + dropout(f(norm(x))) (pre-norm) or norm(x + dropout(f(x))) (post-norm); returns the new hidden
        states followed by whatever else `sublayer` returned after its output (B, L, d)."""
        out, *extra = sublayer(norm(hidden) if self.normalize_before else hidden)
        hidden = hidden + F.dropout(out, p=self.dropout, training=self.training)
        return (hidden if self.normalize_before else norm(hidden), *extra)

    def _feed_forward(self, hidden: Tensor) -> tuple[Tensor]:
        hidden = self.activation_fn(self.fc1(hidden))
        return (self.fc2(F.dropout(hidden, p=self.activation_dropout, training=self.training)),)


class PyramidionEncoderLayer(PyramidionLayer):
    """Blockwise self-attention + feed-forward, each wrapped in dropout, residual and layer norm."""

    def __init__(self, config: PyramidionConfig, layer_idx: int):
        super().__init__(config, config.encoder_ffn_dim)
        self.self_attn = PyramidionEncoderAttention(config, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)

    def forward(
        self,
        hidden_states: Tensor,
        mask: Tensor,
        output_attentions: bool = False,
        return_received: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """hidden (B, n, d), mask (B, n) bool -> hidden (B, n, d), attention probs (or None) and attention
        received (or None), as returned by the attention."""
        hidden_states, weights, received = self._residual(
            self.self_attn_layer_norm,
            hidden_states,
            lambda x: self.self_attn(x, mask, output_attentions, return_received),
        )
        (hidden_states,) = self._residual(self.final_layer_norm, hidden_states, self._feed_forward)
        return hidden_states, weights, received


class PyramidionDecoderLayer(PyramidionLayer):
    """Causal self-attention, cross-attention over the pooled encoder output, feed-forward."""

    def __init__(self, config: PyramidionConfig, layer_idx: int):
        super().__init__(config, config.decoder_ffn_dim)
        self.self_attn = PyramidionDecoderAttention(config, layer_idx, is_causal=True)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.encoder_attn = PyramidionDecoderAttention(config, layer_idx, is_causal=False)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model)

    def forward(
        self,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor,
        self_attn_mask: Tensor | None = None,
        cross_attn_mask: Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """hidden (B, t, d), encoder states (B, k, d), additive masks (B, 1, t, kv) and (B, 1, 1, k)."""
        hidden_states, self_weights = self._residual(
            self.self_attn_layer_norm,
            hidden_states,
            lambda x: self.self_attn(x, self_attn_mask, cache=cache, output_attentions=output_attentions),
        )
        hidden_states, cross_weights = self._residual(
            self.encoder_attn_layer_norm,
            hidden_states,
            lambda x: self.encoder_attn(
                x, cross_attn_mask, encoder_hidden_states, cache=cache, output_attentions=output_attentions
            ),
        )
        (hidden_states,) = self._residual(self.final_layer_norm, hidden_states, self._feed_forward)
        return hidden_states, self_weights, cross_weights


# ------------------------------------------------------------------------------------------------------------
# PreTrainedModel base, encoder, decoder
# ------------------------------------------------------------------------------------------------------------


class PyramidionPreTrainedModel(PreTrainedModel):
    config_class = PyramidionConfig
    config: PyramidionConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["PyramidionEncoderLayer", "PyramidionDecoderLayer"]
    _supports_sdpa = True

    def __init__(self, config: PyramidionConfig, *inputs: Any, **kwargs: Any):
        config.check_consistency()
        super().__init__(config, *inputs, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, init_std) for linear and embedding weights (transformers' default; small models learn
        faster with fairseq's ~d_model^-0.5); pooling scorers keep their own unit-scale init unless loaded."""
        super()._init_weights(module)
        if isinstance(module, RepresentationPooling) and not any(
            getattr(p, "_is_hf_initialized", False) for p in module.parameters()
        ):
            module.reset_parameters()

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> None:
        """`PreTrainedModel.save_pretrained`, with both AutoModel and AutoModelForSeq2SeqLM in the folder's
        auto_map, so either loads the folder as remote code (trust_remote_code=True)."""
        module = __name__.split(".")[-1]
        self.config.auto_map = {
            **(getattr(self.config, "auto_map", None) or {}),
            "AutoModel": f"{module}.{PyramidionModel.__name__}",
            "AutoModelForSeq2SeqLM": f"{module}.{PyramidionForConditionalGeneration.__name__}",
        }
        super().save_pretrained(save_directory, *args, **kwargs)


def _upsample(pooled: Tensor, pooled_positions: Tensor, length: int) -> Tensor:
    """Funnel upsampling: (B, k, d) pooled vectors ordered by document position (B, k) (-1 = masked, last) to
    (B, length, d): each position gets the pooled vector with the last document position <= it (the first one
    for positions before every pooled vector). Strided pooling makes this a plain repeat."""
    keys = pooled_positions.masked_fill(pooled_positions < 0, length).contiguous()
    queries = torch.arange(length, device=pooled.device).expand(pooled.shape[0], length).contiguous()
    slot = (torch.searchsorted(keys, queries, right=True) - 1).clamp(min=0)
    return pooled.gather(1, slot[..., None].expand(-1, -1, pooled.shape[-1]))


def _drop_padding_columns(hidden: Tensor, mask: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cut the trailing columns that are padding in every row of the batch: (B, n, ...) -> (B, n', ...).

    No real vector's output depends on them (blocks start at 0, attention and pooling mask them), so a batch
    padded to a fixed length, or of documents shorter than a layer's k, costs what its longest document costs.
    One host sync (the width)."""
    width = int(mask.any(dim=0).nonzero().max()) + 1
    if width == mask.shape[1]:
        return hidden, mask, positions
    return hidden[:, :width], mask[:, :width], positions[:, :width]


def _pad_columns(tensor: Tensor, length: int, value: float | bool = 0) -> Tensor:
    """Pad (B, n[, d]) with `value` along dim 1 to (B, length[, d])."""
    missing = length - tensor.shape[1]
    if missing == 0:
        return tensor
    return F.pad(tensor, (0, 0, 0, missing) if tensor.dim() == 3 else (0, missing), value=value)


def _flag(value: bool | None, config: PyramidionConfig, name: str) -> bool:
    """An output flag (output_attentions, output_hidden_states, use_cache): the argument, else config's."""
    return getattr(config, name) if value is None else value


def _check_encoder_inputs(
    config: PyramidionConfig, embeds: Tensor, attention_mask: Tensor | None, output_attentions: bool
) -> Tensor:
    """Validate the encoder input (B, n, d) and its attention_mask (B, n); return the bool mask (B, n)."""
    batch, length = embeds.shape[:2]
    if length > config.max_position_embeddings:
        limit = config.max_position_embeddings
        raise ValueError(
            f"The input has {length} tokens but this model reads at most "
            f"max_position_embeddings={limit}: truncate it to {limit} tokens (tokenizer(..., "
            f"truncation=True, max_length={limit})) or use a config with a larger "
            "max_position_embeddings and encoder_lengths[0]."
        )
    if attention_mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=embeds.device)
    if tuple(attention_mask.shape) != (batch, length):
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but the input is {(batch, length)}."
        )
    mask = attention_mask.bool()
    if not bool(mask.any(dim=1).all()):
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(f"Rows {empty} of the batch are empty documents (no real token): drop them.")
    if not bool(mask[:, 0].all()):
        rows = (~mask[:, 0]).nonzero().flatten().tolist()
        raise ValueError(
            f"Rows {rows} of the batch are left-padded (their first position is padding), but the encoder "
            "counts positions and blocks from the first column: pad on the right (tokenizer.padding_side = "
            "'right')."
        )
    if output_attentions and config.encoder_attention == "efficient":
        raise ValueError(
            "encoder_attention='efficient' forms no attention matrix: use output_attentions=False."
        )
    return mask


def _check_token_ids(config: PyramidionConfig, token_ids: Tensor, what: str) -> None:
    """Token ids (B, n) must index the vocabulary (torch would fail with "index out of range in self")."""
    low, high = int(token_ids.min()), int(token_ids.max())
    if low < 0 or high >= config.vocab_size:
        raise ValueError(
            f"{what} holds token id {low if low < 0 else high}, outside the model's vocabulary [0, "
            f"vocab_size={config.vocab_size}): the tokenizer does not match the model (use the model's own "
            "tokenizer, or resize the embeddings with model.resize_token_embeddings(len(tokenizer)))."
        )


def _check_content(config: PyramidionConfig, input_ids: Tensor, mask: Tensor) -> None:
    """Every row of the encoder input (B, n) with mask (B, n) must hold a real token that is not special
    (bos / eos / pad): a document of special tokens only is an empty document."""
    special = [config.bos_token_id, config.pad_token_id, *_as_list(config.eos_token_id)]
    special = torch.tensor([i for i in special if i is not None], device=input_ids.device)
    content = ~torch.isin(input_ids, special) & mask
    if not bool(content.any(dim=1).all()):
        empty = (~content.any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(
            f"Rows {empty} of input_ids hold special tokens only (bos/eos/pad): they are empty documents; "
            "drop them or pass text."
        )


def _as_list(value: int | list[int] | None) -> list[int | None]:
    return value if isinstance(value, list) else [value]


class PyramidionEncoder(PyramidionPreTrainedModel):
    """Embeddings, `len(encoder_lengths)` blockwise layers, pooling after each layer whose length shrinks."""

    def __init__(self, config: PyramidionConfig):
        super().__init__(config)
        embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_tokens = PyramidionScaledWordEmbedding(
            config.vocab_size, config.d_model, config.pad_token_id, embed_scale
        )
        self.embed_positions = None
        if config.encoder_position_embeddings == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.d_model)
        self.layernorm_embedding = nn.LayerNorm(config.d_model) if config.layernorm_embedding else None
        self.layers = nn.ModuleList([PyramidionEncoderLayer(config, i) for i in range(config.encoder_layers)])
        self.pooling = nn.ModuleDict(
            {
                str(i): RepresentationPooling(
                    config.d_model,
                    config.encoder_lengths[i],
                    scorer=config.scorer,
                    topk=config.topk,
                    temperature=config.topk_temperature,
                    sort=config.topk_sort,
                    weighting=config.topk_weighting,
                    embedding_index=config.scorer_embedding_index,
                    normalize_scorer_input=config.normalize_before,
                )
                for i in config.pooling_layers
            }
        )
        self.layer_norm = nn.LayerNorm(config.d_model) if config.normalize_before else None
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def _embed(self, inputs_embeds: Tensor) -> Tensor:
        """Token embeddings (B, n, d) + positions counted from the document start, normalized."""
        positions = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device)
        kind, dim = self.config.encoder_position_embeddings, self.config.d_model
        embedded = position_embedding(kind, positions, dim, self.embed_positions)
        hidden = inputs_embeds + embedded.to(inputs_embeds.dtype)
        if self.layernorm_embedding is not None:
            hidden = self.layernorm_embedding(hidden)
        return F.dropout(hidden, p=self.config.dropout, training=self.training)

    @can_return_tuple
    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Any,
    ) -> PyramidionEncoderOutput:
        """input_ids (B, n) or inputs_embeds (B, n, d), attention_mask (B, n) (1 = real token) ->
        PyramidionEncoderOutput with last_hidden_state (B, k, d) and pooled_mask (B, k)."""
        output_attentions = _flag(output_attentions, self.config, "output_attentions")
        output_hidden_states = _flag(output_hidden_states, self.config, "output_hidden_states")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds to the encoder.")
        if inputs_embeds is None:
            _check_token_ids(self.config, input_ids, "input_ids")
            inputs_embeds = self.embed_tokens(input_ids)
        input_mask = _check_encoder_inputs(self.config, inputs_embeds, attention_mask, output_attentions)
        if input_ids is not None:
            _check_content(self.config, input_ids, input_mask)
        mask = input_mask
        batch, length = mask.shape
        hidden = self._embed(inputs_embeds)
        positions = torch.arange(length, device=hidden.device).expand(batch, length)  # carried by pooling

        all_hidden, all_attentions, indices, weights = (), (), (), ()
        funnel_residual = None
        # all-padding columns are dropped wherever the mask changes (here and after each pooling) and added
        # back at the end, unless the caller asked for per-layer outputs, which keep their full shapes
        drop_padding = not (output_hidden_states or output_attentions)
        if drop_padding:
            hidden, mask, positions = _drop_padding_columns(hidden, mask, positions)
        out_length = length
        for i, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden += (hidden,)
            pooler = self.pooling[str(i)] if str(i) in self.pooling else None
            need_received = pooler is not None and pooler.needs_attention_received
            hidden, layer_attentions, received = layer(hidden, mask, output_attentions, need_received)
            if output_attentions:
                all_attentions += (layer_attentions,)
            if pooler is None:
                continue
            if self.config.funnel_upsample and funnel_residual is None:
                funnel_residual = _pad_columns(hidden, length)
            pooled = pooler(hidden, mask, positions, received)
            hidden, mask, positions, out_length = pooled.hidden, pooled.mask, pooled.positions, pooler.k
            if drop_padding:
                hidden, mask, positions = _drop_padding_columns(hidden, mask, positions)
            indices += (pooled.positions,)
            weights += (pooled.weights,)
        if self.layer_norm is not None:
            hidden = self.layer_norm(hidden)
        hidden, mask = _pad_columns(hidden, out_length), _pad_columns(mask, out_length, False)
        if funnel_residual is not None:
            hidden = _upsample(hidden, positions, length) + funnel_residual
            mask = input_mask
        if output_hidden_states:
            all_hidden += (hidden,)
        return PyramidionEncoderOutput(
            last_hidden_state=hidden,
            hidden_states=all_hidden if output_hidden_states else None,
            attentions=all_attentions if output_attentions else None,
            pooled_mask=mask,
            pooling_indices=indices,
            pooling_weights=weights,
        )


def _decoder_cache(
    config: PyramidionConfig, cache: Cache | None, use_cache: bool
) -> EncoderDecoderCache | None:
    """The cache this decoder call reads and extends: the given one, a new dynamic one, or None."""
    if not use_cache:
        return None
    if cache is None:
        return EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    if not isinstance(cache, EncoderDecoderCache):
        raise ValueError(
            "Pyramidion caches are EncoderDecoderCache(self-attention cache, cross-attention cache)."
        )
    return cache


def _self_attention_mask(
    attention_mask: Tensor | None, embeds: Tensor, cache: EncoderDecoderCache | None
) -> Tensor:
    """Additive causal mask (B|1, 1, t, kv) for this step's t tokens over the cached + new keys, combined
    with the decoder attention_mask (B, past + t); a 4-d mask prepared by generate() is used as it is."""
    if attention_mask is not None and attention_mask.dim() == 4:  # prepared by generate() (static caches)
        if attention_mask.is_floating_point():
            return attention_mask
        return additive_mask(attention_mask.bool(), embeds.dtype)
    batch, length = embeds.shape[:2]
    past = cache.get_seq_length() if cache is not None else 0
    # keys of this step: past + t for dynamic caches, the whole preallocated length for static ones
    kv_length = cache.self_attention_cache.get_mask_sizes(length, 0)[0] if cache is not None else length
    queries = torch.arange(length, device=embeds.device)[:, None] + past  # positions of this step's tokens
    keep = (torch.arange(kv_length, device=embeds.device)[None, :] <= queries)[None, None]  # (1, 1, t, kv)
    if attention_mask is not None:
        if tuple(attention_mask.shape) != (batch, past + length):
            raise ValueError(
                f"decoder_attention_mask has shape {tuple(attention_mask.shape)}; expected "
                f"(batch, cached + new tokens) = {(batch, past + length)}."
            )
        padding = kv_length - attention_mask.shape[1]
        keep = keep & F.pad(attention_mask.bool(), (0, padding), value=False)[:, None, None, :]
    return additive_mask(keep, embeds.dtype)


def _cross_attention_mask(encoder_mask: Tensor | None, encoder_states: Tensor, dtype: torch.dtype) -> Tensor:
    """Additive mask (B, 1, 1, k) over the pooled encoder vectors from their pooled mask (B, k)."""
    if encoder_mask is None:
        encoder_mask = torch.ones(encoder_states.shape[:2], dtype=torch.bool, device=encoder_states.device)
    if tuple(encoder_mask.shape) != tuple(encoder_states.shape[:2]):
        raise ValueError(
            f"encoder_attention_mask has shape {tuple(encoder_mask.shape)} but the encoder "
            f"output is {tuple(encoder_states.shape[:2])}: pass the encoder's pooled_mask."
        )
    return additive_mask(encoder_mask.bool()[:, None, None, :], dtype)


class PyramidionDecoder(PyramidionPreTrainedModel):
    """Causal decoder with cross-attention over the pooled encoder output (masked by the pooled mask)."""

    def __init__(self, config: PyramidionConfig):
        super().__init__(config)
        embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_tokens = PyramidionScaledWordEmbedding(
            config.vocab_size, config.d_model, config.pad_token_id, embed_scale
        )
        self.embed_positions = None
        if config.decoder_position_embeddings == "learned":
            self.embed_positions = nn.Embedding(config.max_target_positions, config.d_model)
        self.layernorm_embedding = nn.LayerNorm(config.d_model) if config.layernorm_embedding else None
        self.layers = nn.ModuleList([PyramidionDecoderLayer(config, i) for i in range(config.decoder_layers)])
        self.layer_norm = nn.LayerNorm(config.d_model) if config.normalize_before else None
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def _positions(self, past: int, length: int, device: torch.device, dtype: torch.dtype) -> Tensor | int:
        """Embeddings (t, d) of target positions past, ..., past+t-1; 0 for decoder positions 'none'."""
        kind = self.config.decoder_position_embeddings
        if kind == "none":
            return 0
        positions = torch.arange(past, past + length, device=device)
        if kind == "learned" and past + length > self.config.max_target_positions:
            raise ValueError(
                f"Target position {past + length - 1} exceeds max_target_positions="
                f"{self.config.max_target_positions} of the learned decoder positions: generate fewer tokens "
                "(max_new_tokens) or use decoder_position_embeddings='sinusoidal'."
            )
        return position_embedding(kind, positions, self.config.d_model, self.embed_positions).to(dtype)

    def _embed(self, inputs_embeds: Tensor, past: int) -> Tensor:
        """Token embeddings (B, t, d) + the positions of target tokens past..past+t-1, normalized."""
        length, device, dtype = inputs_embeds.shape[1], inputs_embeds.device, inputs_embeds.dtype
        hidden = inputs_embeds + self._positions(past, length, device, dtype)
        if self.layernorm_embedding is not None:
            hidden = self.layernorm_embedding(hidden)
        return F.dropout(hidden, p=self.config.dropout, training=self.training)

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """input_ids (B, t) (or inputs_embeds), attention_mask (B, past + t), encoder_hidden_states (B, k, d)
        with encoder_attention_mask (B, k) (the encoder's `pooled_mask`) -> hidden states (B, t, d), cache."""
        output_attentions = _flag(output_attentions, self.config, "output_attentions")
        output_hidden_states = _flag(output_hidden_states, self.config, "output_hidden_states")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of decoder_input_ids or decoder_inputs_embeds.")
        if encoder_hidden_states is None:
            raise ValueError("The decoder needs encoder_hidden_states (the encoder's last_hidden_state).")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        cache = _decoder_cache(self.config, cache, _flag(use_cache, self.config, "use_cache"))
        self_attn_mask = _self_attention_mask(attention_mask, inputs_embeds, cache)
        dtype = inputs_embeds.dtype
        cross_attn_mask = _cross_attention_mask(encoder_attention_mask, encoder_hidden_states, dtype)
        hidden = self._embed(inputs_embeds, cache.get_seq_length() if cache is not None else 0)

        all_hidden, self_attentions, cross_attentions = (), (), ()
        for layer in self.layers:
            if output_hidden_states:
                all_hidden += (hidden,)
            hidden, self_weights, cross_weights = layer(
                hidden,
                encoder_hidden_states,
                self_attn_mask=self_attn_mask,
                cross_attn_mask=cross_attn_mask,
                cache=cache,
                output_attentions=output_attentions,
            )
            self_attentions += (self_weights,)
            cross_attentions += (cross_weights,)
        if self.layer_norm is not None:
            hidden = self.layer_norm(hidden)
        if output_hidden_states:
            all_hidden += (hidden,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden,
            cache=cache,
            hidden_states=all_hidden if output_hidden_states else None,
            attentions=self_attentions if output_attentions else None,
            cross_attentions=cross_attentions if output_attentions else None,
        )


# Position of `pooled_mask` counted from the end of an encoder output tuple: the fields after it are never
# None (so `to_tuple()`, which drops None fields, keeps them).
_POOLED_MASK_FROM_END = [f.name for f in fields(PyramidionEncoderOutput)][::-1].index("pooled_mask") + 1


def _as_encoder_output(encoder_outputs: Any, attention_mask: Tensor | None) -> PyramidionEncoderOutput:
    """The encoder output as a PyramidionEncoderOutput, from one, from its tuple form (return_dict=False), or
    from a plain BaseModelOutput of unpooled length (its mask is then the input attention_mask)."""
    if isinstance(encoder_outputs, PyramidionEncoderOutput):
        return encoder_outputs
    if isinstance(encoder_outputs, tuple) and len(encoder_outputs) > _POOLED_MASK_FROM_END:
        return PyramidionEncoderOutput(
            last_hidden_state=encoder_outputs[0], pooled_mask=encoder_outputs[-_POOLED_MASK_FROM_END]
        )
    hidden = encoder_outputs[0]
    if attention_mask is not None and tuple(attention_mask.shape) == tuple(hidden.shape[:2]):
        return PyramidionEncoderOutput(last_hidden_state=hidden, pooled_mask=attention_mask.bool())
    raise ValueError(
        "encoder_outputs carry no pooled mask matching their length: pass the PyramidionEncoderOutput "
        "returned by model.get_encoder()(...)."
    )


# ------------------------------------------------------------------------------------------------------------
# Public models
# ------------------------------------------------------------------------------------------------------------


class PyramidionModel(PyramidionPreTrainedModel):
    """The bare Pyramidion encoder-decoder, returning decoder hidden states (no language-modelling head).

    The encoder's token embedding is the shared one: the decoder's (and the LM head's) are tied to it when
    `config.tie_word_embeddings`; otherwise all three are separate, and every one of them is used."""

    _tied_weights_keys = {"decoder.embed_tokens.weight": "encoder.embed_tokens.weight"}

    def __init__(self, config: PyramidionConfig):
        super().__init__(config)
        self.encoder = PyramidionEncoder(config)
        self.decoder = PyramidionDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value
        self.decoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> PyramidionEncoder:
        return self.encoder

    def get_decoder(self) -> PyramidionDecoder:
        return self.decoder

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        encoder_outputs: PyramidionEncoderOutput | tuple | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: Tensor | None = None,
        decoder_inputs_embeds: Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Any,
    ) -> PyramidionSeq2SeqModelOutput:
        """Encode (unless `encoder_outputs` is given) and decode; decoder inputs default to shifted input_ids
        (BART). Cross-attention is masked by the encoder's pooled mask, never by the n-long attention_mask."""
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError("Pass decoder_input_ids (or labels to the LM head), or input_ids to shift.")
            decoder_input_ids = shift_tokens_right(
                input_ids, self.config.pad_token_id, self.config.decoder_start_token_id
            )
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        encoder_outputs = _as_encoder_output(encoder_outputs, attention_mask)
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=encoder_outputs.pooled_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        return PyramidionSeq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            encoder_pooled_mask=encoder_outputs.pooled_mask,
            encoder_pooling_indices=encoder_outputs.pooling_indices,
            encoder_pooling_weights=encoder_outputs.pooling_weights,
        )


class PyramidionForConditionalGeneration(PyramidionPreTrainedModel, GenerationMixin):
    """Pyramidion with a language-modelling head tied to the shared embeddings; for summarization."""

    _tied_weights_keys = {"lm_head.weight": "model.encoder.embed_tokens.weight"}

    def __init__(self, config: PyramidionConfig):
        super().__init__(config)
        self.model = PyramidionModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.add_final_logits_bias:  # BART's (1, vocab) buffer, saved with the weights
            self.final_logits_bias = nn.Buffer(torch.zeros(1, config.vocab_size))
        # Labels are aligned with the decoder outputs (the decoder inputs are the shifted labels): token-level
        # cross-entropy without a further shift, honouring `num_items_in_batch` (gradient accumulation, DDP).
        self.loss_type = "ForMaskedLM"
        self.post_init()

    def get_encoder(self, modality: str | None = None) -> PyramidionEncoder:
        return self.model.encoder

    def get_decoder(self) -> PyramidionDecoder:
        return self.model.decoder

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        decoder_input_ids: Tensor | None = None,
        decoder_attention_mask: Tensor | None = None,
        encoder_outputs: PyramidionEncoderOutput | tuple | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: Tensor | None = None,
        decoder_inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs: Any,
    ) -> PyramidionSeq2SeqLMOutput:
        """As `PyramidionModel.forward`, plus logits (B, t, vocab) and, given labels (B, t) (-100 = ignored),
        the mean token cross-entropy (sum / `num_items_in_batch` when the Trainer passes it)."""
        if labels is not None:
            _check_token_ids(self.config, labels.masked_fill(labels == -100, 0), "labels")
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        if self.config.add_final_logits_bias:
            logits = logits + self.final_logits_bias.to(logits.dtype)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        return PyramidionSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            encoder_pooled_mask=outputs.encoder_pooled_mask,
            encoder_pooling_indices=outputs.encoder_pooling_indices,
            encoder_pooling_weights=outputs.encoder_pooling_weights,
        )

    def prepare_decoder_input_ids_from_labels(self, labels: Tensor) -> Tensor:
        """Decoder inputs for labels (B, t), as used by DataCollatorForSeq2Seq."""
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)


PyramidionModel.register_for_auto_class("AutoModel")
PyramidionForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")

__all__ = [
    "PyramidionEncoderOutput",
    "PyramidionForConditionalGeneration",
    "PyramidionModel",
    "PyramidionPreTrainedModel",
    "PyramidionSeq2SeqLMOutput",
    "PyramidionSeq2SeqModelOutput",
]
