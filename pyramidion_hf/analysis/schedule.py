"""What an explanation says about the model itself: its pooling schedule and operator settings, and the notes
on how to read the traced tokens for that scorer / top-k operator."""

from __future__ import annotations

from typing import Any

from ..modeling.pooling import STRIDED_SCORERS
from ..modeling.topk import TOPK_OPTIONS

__all__ = ["pooling_schedule", "reading_notes"]

_SCORER_NOTES = {
    "random": ["scorer='random' draws new scores at every call: another run selects other tokens."],
    "index": ["scorer='index' keeps evenly spaced positions whatever the content."],
    "power": ["scorer='power' ranks tokens by the attention they received in the preceding layer."],
}


def pooling_schedule(config: Any) -> dict[str, Any]:
    """The pooling settings worth showing: lengths, pooling layers (1-based), attention and scorer, and the
    top-k operator with exactly the options it takes (none for strided pooling, which uses no operator)."""
    pooling = list(config.pooling_layers)
    schedule: dict[str, Any] = {
        "max_position_embeddings": config.max_position_embeddings,
        "encoder_lengths": list(config.encoder_lengths),
        "pooling after encoder layers": [i + 1 for i in pooling] if pooling else "none",
        "block_size": config.block_size if config.block_size is not None else "None (full attention)",
        "scorer": config.scorer,
    }
    if pooling and config.scorer not in STRIDED_SCORERS:
        schedule["topk"] = config.topk
        for option in TOPK_OPTIONS[config.topk]:
            schedule[f"topk_{option}"] = getattr(config, f"topk_{option}")
    if getattr(config, "funnel_upsample", False):
        schedule["funnel_upsample"] = True
    return schedule


def reading_notes(config: Any, num_tokens: int, truncated: bool, max_length: int) -> list[str]:
    """Sentences that qualify the view for this model and document (truncation, no pooling, what a weight
    means for the scorer and operator, random or position-only scorers, funnel upsampling, short input)."""
    notes = []
    if truncated:
        notes.append(f"The text has more than max_length={max_length} tokens: the greyed tail was not read.")
    if not config.pooling_layers:
        notes.append(
            "This model has no pooling layer (encoder_lengths never shrinks): every token survives and the "
            "decoder attends to all of them."
        )
        return notes
    notes.append(_weight_note(config))
    notes += _SCORER_NOTES.get(config.scorer, [])
    if getattr(config, "funnel_upsample", False):
        notes.append(
            "funnel_upsample=True: the encoder output is upsampled back to every position; the survivors are "
            "those of the pooled inner layers."
        )
    if num_tokens < min(config.encoder_lengths):
        notes.append(
            f"The document ({num_tokens} tokens) is shorter than every pooling size k: all its tokens "
            "survive."
        )
    return notes


def _weight_note(config: Any) -> str:
    """What a kept token and its weight are: a window's first token, one input, or a mixture's largest."""
    if config.scorer in STRIDED_SCORERS:
        return (
            f"scorer={config.scorer!r} is strided {config.scorer} pooling, not a selection: each kept vector "
            f"{'averages' if config.scorer == 'mean' else 'takes the per-dimension maximum of'} a window of "
            "consecutive vectors, and the survivor shown is the window's first token (weight = 1 / window "
            "size)."
        )
    if config.topk == "hard":
        return "topk='hard': each kept vector is exactly one input, so every weight is 1."
    return (
        f"topk={config.topk!r} is soft: each pooled vector mixes several inputs; the token shown is the "
        "one whose input has the largest coefficient (its weight; after the first pooling, the input is "
        "a vector that token dominated at the previous pooling)."
    )
