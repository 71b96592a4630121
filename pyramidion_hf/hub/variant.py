"""What a config says the model is: its paper variant name (recorded preset, else structure) and one sentence.

The name never comes from sizes: a config built by `get_preset` records its preset (`config.preset`), and only
the paper's names that structure cannot tell apart (DeepPyramidion) are taken from it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..modeling.configuration_pyramidion import PyramidionConfig
from ..modeling.pooling import STRIDED_SCORERS

# Presets (by the row name `config.preset` records) whose paper name is more than their structure says.
PAPER_NAMES = {
    "table3-deep-pyramidion": "DeepPyramidion",
    "deep-pyramidion-early": "DeepPyramidion",
}


def as_config(config: Any) -> PyramidionConfig:
    """A PyramidionConfig from itself, a config dict, or the path to a config.json / saved model folder."""
    if isinstance(config, PyramidionConfig):
        return config
    if isinstance(config, (str, Path)):
        path = Path(config)
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise ValueError(
                f"No config.json at {path}: pass a PyramidionConfig, a dict or a saved model folder."
            )
        config = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(config, Mapping):
        raise ValueError(
            f"Cannot read a model config from {type(config).__name__}: pass a PyramidionConfig or a dict."
        )
    if config.get("model_type") not in (None, "pyramidion"):
        raise ValueError(
            f"model_type is {config.get('model_type')!r}: model cards are rendered for Pyramidion models "
            "only."
        )
    if not config.get("encoder_lengths") or not config.get("max_position_embeddings"):
        raise ValueError(
            "The config lacks encoder_lengths / max_position_embeddings: pass a PyramidionConfig."
        )
    return PyramidionConfig.from_dict(dict(config))


def _pools_after_last_layer_only(config: PyramidionConfig) -> bool:
    return config.pooling_layers == [config.encoder_layers - 1]


def _structural_name(config: PyramidionConfig, blockwise: bool) -> str:
    """The variant named from structure only: pooling or not, blockwise or not, scorer and top-k."""
    pooling = config.pooling_layers
    if not pooling:
        if config.encoder_attention == "efficient":
            return "Efficient-attention"
        return "Blockwise" if blockwise else "Vanilla"
    if config.scorer in STRIDED_SCORERS:
        return "Funnel-like"
    if config.scorer == "power":
        return "PoWER-like"
    return "Transpooler" if _pools_after_last_layer_only(config) else "Pyramidion"


def describe_variant(config: Any) -> tuple[str, str]:
    """(variant name, one-sentence description) of a Pyramidion config, following the paper's naming."""
    config = as_config(config)
    n, block, final_k = config.max_position_embeddings, config.block_size, config.encoder_lengths[-1]
    blockwise = block is not None and block < n
    name = PAPER_NAMES.get(getattr(config, "preset", None) or "", _structural_name(config, blockwise))
    attention = f"blockwise attention in blocks of {block} tokens" if blockwise else "full self-attention"
    if config.encoder_attention == "efficient":
        attention = "efficient (linear) attention (Shen et al., 2021)"
    if not config.pooling_layers:
        return name, f"an encoder with {attention} and no pooling; the decoder attends to all {n} positions."
    if config.scorer in STRIDED_SCORERS:
        upsample = f", upsampled back to {n} positions for the decoder" if config.funnel_upsample else ""
        return name, (
            f"an encoder with {attention} and strided {config.scorer} pooling (as in Funnel-Transformer) "
            f"down to {final_k} vectors{upsample}."
        )
    if config.scorer == "power":
        return name, (
            f"an encoder with {attention} that drops the tokens receiving the least attention "
            f"(as in PoWER-BERT), progressively down to {final_k} vectors."
        )
    where = (
        "after the last encoder layer" if _pools_after_last_layer_only(config) else "between encoder layers"
    )
    return name, (
        f"an encoder with {attention} that scores its token representations and keeps the best ones with a "
        f"trainable top-k ({where}), so the decoder cross-attends to {final_k} of {n} positions."
    )


def variant_slug(variant: str) -> str:
    """The tag / default model name of a variant: "DeepPyramidion" -> "deep-pyramidion"."""
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "-", variant).lower()
