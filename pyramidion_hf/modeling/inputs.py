"""Checks of the encoder's and decoder's inputs, and the masks and column cuts built from them (B = batch,
n = input length, t = target length)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask

from .configuration_pyramidion import PyramidionConfig

if TYPE_CHECKING:
    from torch.nn.attention.flex_attention import BlockMask


def drop_padding_columns(hidden: Tensor, mask: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cut the trailing columns that are padding in every row of the batch: (B, n, ...) -> (B, n', ...).

    No real vector's output depends on them (blocks start at 0, attention and pooling mask them), so a batch
    padded to a fixed length, or of documents shorter than a layer's k, costs what its longest document costs.
    One host sync (the width)."""
    width = int(mask.any(dim=0).nonzero().max()) + 1
    if width == mask.shape[1]:
        return hidden, mask, positions
    return hidden[:, :width], mask[:, :width], positions[:, :width]


def pad_columns(tensor: Tensor, length: int, value: float | bool = 0) -> Tensor:
    """Pad (B, n[, d]) with `value` along dim 1 to (B, length[, d])."""
    missing = length - tensor.shape[1]
    if missing == 0:
        return tensor
    return F.pad(tensor, (0, 0, 0, missing) if tensor.dim() == 3 else (0, missing), value=value)


def config_flag(value: bool | None, config: PyramidionConfig, name: str) -> bool:
    """An output flag (output_attentions, output_hidden_states, use_cache): the argument, else config's."""
    return getattr(config, name) if value is None else value


def check_encoder_inputs(
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


def check_token_ids(config: PyramidionConfig, token_ids: Tensor, what: str) -> None:
    """Token ids (B, n) must index the vocabulary (torch would fail with "index out of range in self")."""
    low, high = torch.stack(torch.aminmax(token_ids)).tolist()  # one host sync
    if low < 0 or high >= config.vocab_size:
        raise ValueError(
            f"{what} holds token id {low if low < 0 else high}, outside the model's vocabulary [0, "
            f"vocab_size={config.vocab_size}): the tokenizer does not match the model (use the model's own "
            "tokenizer, or resize the embeddings with model.resize_token_embeddings(len(tokenizer)))."
        )


def check_content(config: PyramidionConfig, input_ids: Tensor, mask: Tensor) -> None:
    """Every row of the encoder input (B, n) with mask (B, n) must hold a real token that is not special
    (bos / eos / pad): a document of special tokens only is an empty document."""
    special = [config.bos_token_id, config.pad_token_id, *as_list(config.eos_token_id)]
    special = torch.tensor([i for i in special if i is not None], device=input_ids.device)
    content = ~torch.isin(input_ids, special) & mask
    if not bool(content.any(dim=1).all()):
        empty = (~content.any(dim=1)).nonzero().flatten().tolist()
        raise ValueError(
            f"Rows {empty} of input_ids hold special tokens only (bos/eos/pad): they are empty documents; "
            "drop them or pass text."
        )


def as_list(value: int | list[int] | None) -> list[int | None]:
    return value if isinstance(value, list) else [value]


def decoder_cache(
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


def self_attention_mask(
    config: PyramidionConfig,
    attention_mask: Tensor | None,
    embeds: Tensor,
    cache: EncoderDecoderCache | None,
    past: int | Tensor,
    output_attentions: bool,
) -> Tensor | BlockMask | None:
    """Causal mask of this step's t tokens (embeds (B, t, d)) over the `past` cached + new keys, combined with
    the decoder attention_mask (B, past + t), in the form `config._attn_implementation` reads (transformers'
    `create_causal_mask`: additive float for eager, bool or None (is_causal) for sdpa, 2-d or None for flash,
    a BlockMask for flex); a 4-d mask is used as given. Always materialized when the probabilities are
    returned (they come from the eager kernel)."""
    if attention_mask is not None and attention_mask.dim() == 2 and not torch.compiler.is_compiling():
        expected = int(past) + embeds.shape[1]
        if tuple(attention_mask.shape) != (embeds.shape[0], expected):
            raise ValueError(
                f"decoder_attention_mask has shape {tuple(attention_mask.shape)}; expected "
                f"(batch, cached + new tokens) = {(embeds.shape[0], expected)}."
            )
    return create_causal_mask(
        config=config,
        inputs_embeds=embeds,
        attention_mask=attention_mask,
        cache=cache.self_attention_cache if cache is not None else None,
        allow_is_causal_skip=not output_attentions,
    )


def cross_attention_mask(
    config: PyramidionConfig,
    encoder_mask: Tensor | None,
    embeds: Tensor,
    encoder_states: Tensor,
    output_attentions: bool,
) -> Tensor | BlockMask | None:
    """Mask of the decoder tokens (embeds (B, t, d)) over the pooled encoder vectors (B, k, d) from their
    pooled mask (B, k), in the form the attention implementation reads (`create_bidirectional_mask`)."""
    if encoder_mask is not None and tuple(encoder_mask.shape) != tuple(encoder_states.shape[:2]):
        raise ValueError(
            f"encoder_attention_mask has shape {tuple(encoder_mask.shape)} but the encoder "
            f"output is {tuple(encoder_states.shape[:2])}: pass the encoder's pooled_mask."
        )
    return create_bidirectional_mask(
        config=config,
        inputs_embeds=embeds,
        attention_mask=encoder_mask,
        encoder_hidden_states=encoder_states,
        allow_is_bidirectional_skip=not output_attentions,
    )


def block_attention_mask(
    config: PyramidionConfig, blocks: Tensor, block_mask: Tensor, output_attentions: bool
) -> Tensor | BlockMask | None:
    """Mask of the encoder's blocks (B * n_blocks, block, d) with key mask (B * n_blocks, block), in the
    form the attention implementation reads (None for sdpa / flash when nothing is padded).

    A block of padding alone (in a document shorter than the batch's longest) attends over its own padding:
    queries with no key at all have a log-sum-exp of -inf, and CUDA's sdpa backward turns that into NaN
    gradients of every projection. Real queries never see a padding key either way."""
    keys = block_mask | ~block_mask.any(dim=-1, keepdim=True)
    return create_bidirectional_mask(
        config=config,
        inputs_embeds=blocks,
        attention_mask=keys,
        allow_is_bidirectional_skip=not output_attentions,
    )
