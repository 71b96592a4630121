"""Warm start: turn a pretrained BART / mBART / PEGASUS / LED checkpoint into a long-input Pyramidion.

The weights are kept and every part of the source computation is represented exactly (positions, embedding
scale and layer norm, pre-/post-norm, activation, `final_logits_bias`, tied or untied heads, special tokens,
generation config): with `encoder_lengths` all equal to the input length and `block_size=None` the result
computes what the source computes. Learned encoder positions are tiled LED-style to the new length. LED's
global-attention projections are dropped (without global attention its local attention over an input
shorter than half its window is full attention). Pooling layers inserted by `encoder_lengths` start from
`POOLING_DEFAULTS` (the initialisation that measured best in benchmarks/warm_start.py).
"""

from __future__ import annotations

import copy
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ..modeling.configuration_pyramidion import PyramidionConfig
from ..modeling.modeling_pyramidion import PyramidionForConditionalGeneration

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Family:
    """What distinguishes one supported source family: its architecture class and embedding conventions."""

    architecture: str
    positions: str  # PyramidionConfig's encoder/decoder_position_embeddings value
    position_offset: int  # rows of the learned position tables before position 0 (BART's hack)
    normalize_before: bool
    layernorm_embedding: bool


FAMILIES = {
    "bart": Family("BartForConditionalGeneration", "learned", 2, False, True),
    "mbart": Family("MBartForConditionalGeneration", "learned", 2, True, True),
    "pegasus": Family("PegasusForConditionalGeneration", "sinusoidal_pegasus", 0, True, False),
    "led": Family("LEDForConditionalGeneration", "learned", 0, False, True),
}
SUPPORTED = ", ".join(f"{f.architecture} (model_type '{t}')" for t, f in FAMILIES.items())
# Scorer initialisation of inserted pooling layers (PyramidionConfig fields); see benchmarks/warm_start.py.
POOLING_DEFAULTS: dict[str, Any] = {"topk_temperature": 1.0, "topk_weighting": "sigmoid"}
# Fields fixed by the source weights' shapes and computation: an override would not load or not be exact.
SOURCE_FIELDS = (
    "vocab_size",
    "d_model",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "decoder_layers",
    "activation_function",
    "scale_embedding",
    "normalize_before",
    "layernorm_embedding",
    "encoder_position_embeddings",
    "decoder_position_embeddings",
    "tie_word_embeddings",
    "add_final_logits_bias",
)
# LED encoder attention names -> BART's; LED's global-attention projections have no counterpart.
_LED_RENAMES = (
    (r"\.self_attn\.longformer_self_attn\.query\.", ".self_attn.q_proj."),
    (r"\.self_attn\.longformer_self_attn\.key\.", ".self_attn.k_proj."),
    (r"\.self_attn\.longformer_self_attn\.value\.", ".self_attn.v_proj."),
    (r"\.self_attn\.output\.", ".self_attn.out_proj."),
)
_LED_DROPPED = re.compile(r"\.(query|key|value)_global\.")


def family_of(model_type: str) -> Family:
    """The supported family of a source `model_type`; ValueError naming the supported ones otherwise."""
    if model_type not in FAMILIES:
        raise ValueError(f"Cannot convert model_type {model_type!r}: supported are {SUPPORTED}.")
    return FAMILIES[model_type]


def load_source(source: str | os.PathLike | PreTrainedModel) -> PreTrainedModel:
    """The source model: the instance itself, or loaded (from_pretrained) from a local folder or Hub name."""
    if isinstance(source, PreTrainedModel):
        model = source
    else:
        name = str(source)
        try:
            config = AutoConfig.from_pretrained(name)
        except OSError as error:
            where = "the local folder" if Path(name).is_dir() else "the Hub (offline, or no network?)"
            raise OSError(
                f"Cannot load {name!r} from {where}: {str(error).splitlines()[0]} Pass a local folder of a "
                "saved model, or a Hub name with network access."
            ) from None
        import transformers

        model_class = getattr(transformers, family_of(config.model_type).architecture)
        model = model_class.from_pretrained(name, dtype=torch.float32)
    family = family_of(model.config.model_type)
    if type(model).__name__ != family.architecture:
        raise ValueError(
            f"Cannot convert a {type(model).__name__}: pass a ForConditionalGeneration model, one of "
            f"{SUPPORTED}."
        )
    return model


def _check_representable(source_config: Any) -> None:
    """ValueError for source options Pyramidion cannot represent."""
    for name in ("encoder_layerdrop", "decoder_layerdrop"):
        if getattr(source_config, name, 0.0):
            raise ValueError(
                f"The source has {name}={getattr(source_config, name)}: Pyramidion has no LayerDrop; set "
                f"source.config.{name} = 0.0 before converting."
            )


def _source_lengths(source_config: Any) -> tuple[int, int]:
    """(encoder, decoder) position counts of the source."""
    if source_config.model_type == "led":
        return source_config.max_encoder_position_embeddings, source_config.max_decoder_position_embeddings
    return source_config.max_position_embeddings, source_config.max_position_embeddings


def pyramidion_config(source_config: Any, **overrides: Any) -> PyramidionConfig:
    """The PyramidionConfig computing what `source_config`'s model computes, with `overrides` applied (no
    pooling and full attention unless `encoder_lengths` / `block_size` say otherwise)."""
    family = family_of(source_config.model_type)
    _check_representable(source_config)
    fixed = sorted(set(overrides) & set(SOURCE_FIELDS))
    if fixed:
        raise ValueError(f"Cannot override {', '.join(fixed)}: they are fixed by the source checkpoint.")
    encoder_length, decoder_length = _source_lengths(source_config)
    src = source_config
    max_length = overrides.pop("max_position_embeddings", encoder_length)
    fields: dict[str, Any] = dict(
        vocab_size=src.vocab_size,
        max_position_embeddings=max_length,
        encoder_lengths=[max_length] * src.encoder_layers,
        block_size=None,
        d_model=src.d_model,
        encoder_attention_heads=src.encoder_attention_heads,
        decoder_attention_heads=src.decoder_attention_heads,
        encoder_ffn_dim=src.encoder_ffn_dim,
        decoder_ffn_dim=src.decoder_ffn_dim,
        decoder_layers=src.decoder_layers,
        activation_function=src.activation_function,
        dropout=src.dropout,
        attention_dropout=src.attention_dropout,
        activation_dropout=src.activation_dropout,
        init_std=src.init_std,
        scale_embedding=bool(getattr(src, "scale_embedding", False)),
        normalize_before=family.normalize_before,
        layernorm_embedding=family.layernorm_embedding,
        encoder_position_embeddings=family.positions,
        decoder_position_embeddings=family.positions,
        max_target_positions=decoder_length,
        add_final_logits_bias=True,
        tie_word_embeddings=src.tie_word_embeddings,
        pad_token_id=src.pad_token_id,
        bos_token_id=getattr(src, "bos_token_id", None),
        eos_token_id=src.eos_token_id,
        decoder_start_token_id=src.decoder_start_token_id,
        use_cache=src.use_cache,
        **POOLING_DEFAULTS,
    )
    fields.update(overrides)
    if len(fields["encoder_lengths"]) != src.encoder_layers:
        raise ValueError(
            f"encoder_lengths needs one entry per encoder layer of the source ({src.encoder_layers}), got "
            f"{len(fields['encoder_lengths'])}: {fields['encoder_lengths']}."
        )
    return PyramidionConfig(**fields)


def _tiled(table: Tensor, rows: int) -> Tensor:
    """The first `rows` rows of `table` (n, d) repeated end to end (LED's extension of BART's positions)."""
    repeats = -(-rows // table.shape[0])
    return table.repeat(repeats, 1)[:rows]


def _mapped_stack(
    stack: nn.Module, family: Family, position_rows: int, model_type: str
) -> tuple[dict[str, Tensor], list[str]]:
    """The state dict of a source encoder or decoder under Pyramidion's names, and the keys dropped."""
    mapped, dropped = {}, []
    for key, value in stack.state_dict().items():
        if key == "embed_positions.weight":
            if family.positions == "learned":
                mapped[key] = _tiled(value[family.position_offset :], position_rows)
            continue  # sinusoidal tables are recomputed by the formula
        if model_type == "led":
            if _LED_DROPPED.search(key):
                dropped.append(key)
                continue
            for pattern, replacement in _LED_RENAMES:
                key = re.sub(pattern, replacement, key)
        mapped[key] = value
    return mapped, dropped


def _load_stack(target: nn.Module, weights: dict[str, Tensor]) -> None:
    """Load `weights` into `target`; only the inserted pooling layers may stay at their initialisation."""
    missing, unexpected = target.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith("pooling.")]
    if missing or unexpected:
        raise RuntimeError(f"Weight mapping incomplete: missing {missing}, unexpected {unexpected}.")


def _copy_weights(source: PreTrainedModel, target: PyramidionForConditionalGeneration) -> list[str]:
    """Copy every source weight into `target`; returns the source keys that have no counterpart (LED's)."""
    family, model_type = family_of(source.config.model_type), source.config.model_type
    config = target.config
    encoder, enc_dropped = _mapped_stack(
        source.get_encoder(), family, config.max_position_embeddings, model_type
    )
    decoder, dec_dropped = _mapped_stack(
        source.get_decoder(), family, config.max_target_positions, model_type
    )
    with torch.no_grad():
        _load_stack(target.model.encoder, encoder)
        _load_stack(target.model.decoder, decoder)
        target.lm_head.weight.copy_(source.get_output_embeddings().weight)
        target.final_logits_bias.copy_(source.final_logits_bias)
    return ["encoder." + k for k in enc_dropped] + ["decoder." + k for k in dec_dropped]


def convert_checkpoint(
    source: str | os.PathLike | PreTrainedModel, **config_overrides: Any
) -> PyramidionForConditionalGeneration:
    """A Pyramidion holding `source`'s weights (a Bart/MBart/Pegasus/LED ForConditionalGeneration, or a folder
    / Hub name of one); `config_overrides` are PyramidionConfig fields (`max_position_embeddings`,
    `encoder_lengths`, `block_size`, `scorer`, ...). LED's global-attention projections are dropped."""
    model = load_source(source)
    config = pyramidion_config(model.config, **config_overrides)
    config.converted_from = {
        "model": model.config._name_or_path or None,
        "model_type": model.config.model_type,
        "architecture": type(model).__name__,
        "max_position_embeddings": _source_lengths(model.config)[0],
    }
    target = PyramidionForConditionalGeneration(config)
    dropped = _copy_weights(model, target)
    if dropped:
        logger.warning(
            "Dropped %d LED global-attention weights (%s, ...): Pyramidion has no global attention.",
            len(dropped),
            dropped[0],
        )
    if model.config.model_type == "mbart":
        logger.warning(
            "mBART shifts labels by moving the final language code to the front; Pyramidion shifts them "
            "BART-style (decoder_start_token_id=%s first): pass decoder_input_ids to fine-tune mBART-style.",
            config.decoder_start_token_id,
        )
    target.generation_config = copy.deepcopy(model.generation_config)
    target.train(model.training)
    return target


def convert_tokenizer(source: str | os.PathLike, max_length: int) -> PreTrainedTokenizerBase:
    """The source's tokenizer, with `model_max_length` set to the converted model's input length."""
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    tokenizer.model_max_length = max_length
    return tokenizer


__all__ = ["FAMILIES", "POOLING_DEFAULTS", "convert_checkpoint", "convert_tokenizer", "pyramidion_config"]
