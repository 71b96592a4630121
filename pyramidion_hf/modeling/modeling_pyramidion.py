"""Pyramidion: an encoder-decoder Transformer whose encoder pools its representations with a trainable top-k.

Read top to bottom: outputs -> embeddings -> layers (attention modules in attention.py) -> encoder (with
pooling after the layers whose `encoder_lengths` entry shrinks; input checks and masks in inputs.py) ->
decoder -> PreTrainedModel classes. Conventions follow BART (parameter names, post-norm by default, shared
embeddings, `shift_tokens_right`). Travels as Hub remote code: imports only torch, transformers and sibling
files."""

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
from transformers.cache_utils import EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.utils import can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg

from .attention import PyramidionDecoderAttention, PyramidionEncoderAttention, decoder_sdpa_kernels
from .configuration_pyramidion import PyramidionConfig
from .inputs import (
    check_content,
    check_encoder_inputs,
    check_token_ids,
    config_flag,
    cross_attention_mask,
    decoder_cache,
    drop_padding_columns,
    pad_columns,
    self_attention_mask,
)
from .pooling import RepresentationPooling
from .precision import lm_head_logits

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
    _supports_flash_attn = True
    _supports_flex_attn = True
    _can_compile_fullgraph = True  # the decode step (static cache): no host syncs, no data-dependent branches

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
        models = {name: AUTO_MAP[name] for name in ("AutoModel", "AutoModelForSeq2SeqLM")}
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **models}
        super().save_pretrained(save_directory, *args, **kwargs)


def _upsample(pooled: Tensor, pooled_positions: Tensor, length: int) -> Tensor:
    """Funnel upsampling: (B, k, d) pooled vectors ordered by document position (B, k) (-1 = masked, last) to
    (B, length, d): each position gets the pooled vector with the last document position <= it (the first one
    for positions before every pooled vector). Strided pooling makes this a plain repeat."""
    keys = pooled_positions.masked_fill(pooled_positions < 0, length).contiguous()
    queries = torch.arange(length, device=pooled.device).expand(pooled.shape[0], length).contiguous()
    slot = (torch.searchsorted(keys, queries, right=True) - 1).clamp(min=0)
    return pooled.gather(1, slot[..., None].expand(-1, -1, pooled.shape[-1]))


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

    def _checked_inputs(
        self, input_ids: Tensor | None, attention_mask: Tensor | None, embeds: Tensor | None, attentions: bool
    ) -> tuple[Tensor, Tensor]:
        """Token embeddings (B, n, d) and the bool mask (B, n) of the input (ids or embeddings), checked."""
        if (input_ids is None) == (embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds to the encoder.")
        if embeds is None:
            check_token_ids(self.config, input_ids, "input_ids")
            embeds = self.embed_tokens(input_ids)
        mask = check_encoder_inputs(self.config, embeds, attention_mask, attentions)
        if input_ids is not None:
            check_content(self.config, input_ids, mask)
        return embeds, mask

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
        output_attentions = config_flag(output_attentions, self.config, "output_attentions")
        output_hidden_states = config_flag(output_hidden_states, self.config, "output_hidden_states")
        inputs_embeds, input_mask = self._checked_inputs(
            input_ids, attention_mask, inputs_embeds, output_attentions
        )
        mask, (batch, length) = input_mask, input_mask.shape
        hidden = self._embed(inputs_embeds)
        positions = torch.arange(length, device=hidden.device).expand(batch, length)  # carried by pooling

        all_hidden, all_attentions, indices, weights = (), (), (), ()
        funnel_residual = None
        # all-padding columns are dropped wherever the mask changes (here and after each pooling) and added
        # back at the end, unless the caller asked for per-layer outputs, which keep their full shapes
        drop_padding = not (output_hidden_states or output_attentions)
        if drop_padding:
            hidden, mask, positions = drop_padding_columns(hidden, mask, positions)
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
                funnel_residual = pad_columns(hidden, length)
            pooled = pooler(hidden, mask, positions, received)
            hidden, mask, positions, out_length = pooled.hidden, pooled.mask, pooled.positions, pooler.k
            if drop_padding:
                hidden, mask, positions = drop_padding_columns(hidden, mask, positions)
            indices += (pooled.positions,)
            weights += (pooled.weights,)
        if self.layer_norm is not None:
            hidden = self.layer_norm(hidden)
        hidden, mask = pad_columns(hidden, out_length), pad_columns(mask, out_length, False)
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

    def _positions(
        self, past: int | Tensor, length: int, device: torch.device, dtype: torch.dtype
    ) -> Tensor | int:
        """Embeddings (t, d) of target positions past, ..., past+t-1; 0 for decoder positions 'none'. `past`
        is a 0-d tensor for static caches: no host sync (the bound check is skipped while compiling)."""
        kind = self.config.decoder_position_embeddings
        if kind == "none":
            return 0
        positions = torch.arange(length, device=device) + past
        last, limit = past + length - 1, self.config.max_target_positions
        if kind == "learned" and not torch.compiler.is_compiling() and last >= limit:
            raise ValueError(
                f"Target position {int(last)} exceeds max_target_positions="
                f"{self.config.max_target_positions} of the learned decoder positions: generate fewer tokens "
                "(max_new_tokens) or use decoder_position_embeddings='sinusoidal'."
            )
        return position_embedding(kind, positions, self.config.d_model, self.embed_positions).to(dtype)

    def _embed(self, inputs_embeds: Tensor, past: int | Tensor) -> Tensor:
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
        output_attentions = config_flag(output_attentions, self.config, "output_attentions")
        output_hidden_states = config_flag(output_hidden_states, self.config, "output_hidden_states")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of decoder_input_ids or decoder_inputs_embeds.")
        if encoder_hidden_states is None:
            raise ValueError("The decoder needs encoder_hidden_states (the encoder's last_hidden_state).")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        cache = decoder_cache(self.config, cache, config_flag(use_cache, self.config, "use_cache"))
        past = cache.get_seq_length() if cache is not None else 0  # a 0-d tensor for static caches
        self_attn_mask = self_attention_mask(
            self.config, attention_mask, inputs_embeds, cache, past, output_attentions
        )
        cross_attn_mask = cross_attention_mask(
            self.config, encoder_attention_mask, inputs_embeds, encoder_hidden_states, output_attentions
        )
        hidden = self._embed(inputs_embeds, past)

        all_hidden, self_attentions, cross_attentions = (), (), ()
        with decoder_sdpa_kernels(hidden):
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
            check_token_ids(self.config, labels.masked_fill(labels == -100, 0), "labels")
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
        logits = lm_head_logits(self.lm_head, outputs.last_hidden_state, for_loss=labels is not None)
        if self.config.add_final_logits_bias:
            logits = logits + self.final_logits_bias.to(logits.dtype)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, vocab_size=self.config.vocab_size, **kwargs)
        # every field of the model's output but its last hidden state, which the head turned into logits
        rest = {name: value for name, value in outputs.items() if name != "last_hidden_state"}
        return PyramidionSeq2SeqLMOutput(loss=loss, logits=logits, **rest)

    def prepare_decoder_input_ids_from_labels(self, labels: Tensor) -> Tensor:
        """Decoder inputs for labels (B, t), as used by DataCollatorForSeq2Seq."""
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)


# How a saved folder's config.json names the remote-code classes (module basename . class name); the
# package's tools (model_folder, hub export) read it from here.
AUTO_MAP = {
    auto_class: f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"
    for auto_class, cls in (
        ("AutoConfig", PyramidionConfig),
        ("AutoModel", PyramidionModel),
        ("AutoModelForSeq2SeqLM", PyramidionForConditionalGeneration),
    )
}

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
