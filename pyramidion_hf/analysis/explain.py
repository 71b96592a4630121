"""Which input tokens survived the representation pooling: trace them through every pooling layer.

The paper (§6) notes that trainable pooling "does not provide interpretable explanations to which specific
representations were selected". Each pooled vector is a weighted mixture of inputs, but the top-k operators
report the input that *dominates* it (``encoder_pooling_indices``: document token positions) and that input's
coefficient (``encoder_pooling_weights``). Following the dominating input through every pooling layer maps
each pooled vector back to one document token:

- a token *survives* pooling layer l if it dominated a vector kept by every pooling up to l (later layers
  pick from earlier survivors), so its *depth* is the number of pooling layers it survived (0 = dropped at
  the first; all of them = one of the vectors the decoder reads);
- its *weight* at layer l is the coefficient of the input it dominates in that layer's pooled vector (1.0
  for hard top-k), and its *path weight* the product of those weights over the layers it survived (this
  ignores the attention mixing between pooling layers: a reading aid, not an attribution).

Strided ``mean``/``max`` pooling keeps windows, not tokens: the survivor reported is the window's first
token (weight 1/window size). A model without pooling keeps every token.

Usage: ``explain(model, tokenizer, text)`` -> ``Explanation`` (``.to_terminal()``, ``.to_html()``,
``.save_html(path)``, rendered by ``render_terminal`` / ``render_html``), or the console script
``pyramidion-explain MODEL_DIR FILE [--html OUT.html]`` (``cli``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .render_html import render_html
from .render_terminal import render_terminal
from .schedule import pooling_schedule, reading_notes
from .view import Piece, text_pieces

__all__ = ["Explanation", "LayerSummary", "TokenExplanation", "explain"]


@dataclass(frozen=True)
class TokenExplanation:
    """One document token: its text piece, and how far it got through the pooling layers."""

    position: int  # index into input_ids
    token_id: int
    token: str  # the vocabulary token (e.g. byte-level "Ġword")
    text: str  # the characters of the input text it covers (empty for added special tokens such as </s>)
    start: int  # character offsets of `text` in the input text
    end: int
    special: bool  # <s>, </s>, ...: added by the tokenizer, not part of the text
    depth: int  # number of pooling layers survived: 0 = dropped at the first
    weights: tuple[float, ...]  # its weight in each pooling layer it survived (len == depth)
    slots: tuple[int, ...] = ()  # number of pooled vectors it dominates in each of those layers (1 normally)

    @property
    def path_weight(self) -> float:
        """Product of the weights over the layers it survived (1.0 when it survived none or no pooling)."""
        return math.prod(self.weights)


@dataclass(frozen=True)
class LayerSummary:
    """One pooling layer: how many of the vectors it received it kept, for this document."""

    number: int  # 1-based pooling layer number
    encoder_layer: int  # 0-based index of the encoder layer it follows
    k: int  # output slots (the config's encoder_lengths entry)
    received: int  # real vectors it received (document tokens or the previous layer's survivors)
    kept: int  # distinct document tokens dominating its real outputs
    document_tokens: int
    mean_weight: float  # mean weight of the dominating inputs over its real outputs

    @property
    def fraction(self) -> float:
        """Share of the document's tokens that survive up to this layer."""
        return self.kept / self.document_tokens


@dataclass
class Explanation:
    """The pooling survival of every token of one document; render with `to_terminal` / `to_html`."""

    text: str
    tokens: list[TokenExplanation]
    layers: list[LayerSummary]
    schedule: dict[str, Any]  # the model's pooling schedule and operator settings
    max_length: int
    truncated: bool  # the text had more tokens than max_length: the rest was not read
    read_chars: int  # characters of the text the model read (the rest is not read when truncated)
    notes: list[str] = field(default_factory=list)

    @property
    def num_pooling_layers(self) -> int:
        return len(self.layers)

    def survivors(self, layer: int) -> list[int]:
        """Document positions of the tokens that survived pooling layer `layer` (1-based; 0 = all tokens)."""
        if not 0 <= layer <= self.num_pooling_layers:
            raise ValueError(f"layer must be in [0, {self.num_pooling_layers}], got {layer}.")
        return [t.position for t in self.tokens if t.depth >= layer]

    def pieces(self) -> list[Piece]:
        """The text as rendered, in order: gaps, token groups (tokens sharing characters, e.g. the bytes of
        one character, are merged), special tokens and the unread tail."""
        return text_pieces(self.text, self.tokens, self.truncated)

    def to_terminal(self, color: bool = True) -> str:
        """The document with survivors highlighted (ANSI colours, or `[text:depth]` marks when color=False),
        followed by the per-layer summary, the legend and the notes."""
        return render_terminal(self, color=color)

    def to_html(self) -> str:
        """A self-contained HTML page (inline CSS, no script or external resource)."""
        return render_html(self)

    def save_html(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_html()` to `path` (utf-8, parent folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path


@dataclass(frozen=True)
class _Encoded:
    """The tokenized text: ids (n,), character offsets, special-token flags, and how much of it was read."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    special: list[bool]
    read_chars: int
    truncated: bool


@dataclass(frozen=True)
class _Dominated:
    """One pooling layer's real outputs, by the document position dominating them."""

    best: dict[int, float]  # position -> its largest weight over the outputs it dominates
    slots: dict[int, int]  # position -> number of outputs it dominates
    mean_weight: float  # mean weight of the dominating inputs over the real outputs


def explain(model: nn.Module, tokenizer: Any, text: str, *, max_length: int | None = None) -> Explanation:
    """Run the encoder once (eval, no grad) on `text` and trace which tokens survive each pooling layer.

    `tokenizer` must be a fast tokenizer (offsets); `max_length` (default: the model's
    `max_position_embeddings`) truncates longer texts, whose tail is then marked as not read.
    """
    _check_inputs(tokenizer, text)
    encoder = _encoder_of(model)
    config = encoder.config
    max_length = _checked_max_length(max_length, config.max_position_embeddings)
    encoded = _tokenize(tokenizer, text, max_length)
    positions, weights = _pooling_outputs(model, encoder, encoded.ids)
    layers, dominated, survived = _trace(config, positions, weights, len(encoded.ids))
    return Explanation(
        text=text,
        tokens=_token_explanations(tokenizer, text, encoded, dominated, survived),
        layers=layers,
        schedule=pooling_schedule(config),
        max_length=max_length,
        truncated=encoded.truncated,
        read_chars=encoded.read_chars,
        notes=reading_notes(config, len(encoded.ids), encoded.truncated, max_length),
    )


def _check_inputs(tokenizer: Any, text: Any) -> None:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}.")
    if not text.strip():
        raise ValueError("text is empty (or only whitespace): give the document to explain.")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "explain needs a fast tokenizer (character offsets): load it with AutoTokenizer.from_pretrained("
            "..., use_fast=True)."
        )


def _encoder_of(model: nn.Module) -> nn.Module:
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else model
    config = getattr(encoder, "config", None)
    if config is None or not hasattr(config, "pooling_layers") or not hasattr(config, "encoder_lengths"):
        raise ValueError(
            f"explain needs a Pyramidion model (PyramidionForConditionalGeneration, PyramidionModel or its "
            f"encoder), got {type(model).__name__}."
        )
    return encoder


def _checked_max_length(max_length: Any, limit: int) -> int:
    """`max_length`, defaulting to the model's `max_position_embeddings` (its only valid range's top)."""
    if max_length is None:
        return limit
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 1 <= max_length <= limit:
        raise ValueError(
            f"max_length must be an int in [1, max_position_embeddings={limit}], got {max_length!r}."
        )
    return max_length


def _tokenize(tokenizer: Any, text: str, max_length: int) -> _Encoded:
    enc = tokenizer(
        text,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    special = [bool(s) for s in enc["special_tokens_mask"]]
    if all(special):
        raise ValueError("The text produced no token besides the special tokens: nothing to explain.")
    read_chars = max(end for (_, end), sp in zip(offsets, special, strict=True) if not sp)
    return _Encoded(
        ids=list(enc["input_ids"]),
        offsets=offsets,
        special=special,
        read_chars=read_chars,
        truncated=bool(text[read_chars:].strip()),
    )


def _pooling_outputs(
    model: nn.Module, encoder: nn.Module, ids: list[int]
) -> tuple[list[Tensor], list[Tensor]]:
    """The encoder's pooling indices and weights, one (1, k) tensor each per pooling layer, computed in eval
    mode without gradients (the model's training mode is restored)."""
    device = next(encoder.parameters()).device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), return_dict=True)
    finally:
        model.train(was_training)
    return list(out.pooling_indices), list(out.pooling_weights)


def _dominated(positions: Tensor, weights: Tensor) -> _Dominated:
    """Group one layer's real outputs (positions (1, k), -1 where masked; weights (1, k)) by position."""
    best: dict[int, float] = {}
    slots: dict[int, int] = {}
    real_weights = []
    for pos, w in zip(positions[0].tolist(), weights[0].float().tolist(), strict=True):
        if pos < 0:
            continue
        real_weights.append(w)
        slots[pos] = slots.get(pos, 0) + 1
        best[pos] = max(w, best.get(pos, -math.inf))
    mean_weight = sum(real_weights) / len(real_weights) if real_weights else 0.0
    return _Dominated(best=best, slots=slots, mean_weight=mean_weight)


def _trace(
    config: Any, positions: list[Tensor], weights: list[Tensor], n: int
) -> tuple[list[LayerSummary], list[_Dominated], list[set[int]]]:
    """Per pooling layer: its summary, its outputs by position, and the survivors up to it (survived[0] =
    every token; a token survives a layer only if it survived every earlier one)."""
    layers, dominated, survived = [], [], [set(range(n))]
    for number, (encoder_layer, layer_positions, layer_weights) in enumerate(
        zip(config.pooling_layers, positions, weights, strict=True), start=1
    ):
        outputs = _dominated(layer_positions, layer_weights)
        kept = survived[-1] & set(outputs.best)
        layers.append(
            LayerSummary(
                number=number,
                encoder_layer=encoder_layer,
                k=config.encoder_lengths[encoder_layer],
                received=len(survived[-1]),
                kept=len(kept),
                document_tokens=n,
                mean_weight=outputs.mean_weight,
            )
        )
        dominated.append(outputs)
        survived.append(kept)
    return layers, dominated, survived


def _token_explanations(
    tokenizer: Any, text: str, encoded: _Encoded, dominated: list[_Dominated], survived: list[set[int]]
) -> list[TokenExplanation]:
    tokens = []
    vocab_tokens = tokenizer.convert_ids_to_tokens(encoded.ids)
    rows = zip(encoded.ids, vocab_tokens, encoded.offsets, encoded.special, strict=True)
    for pos, (token_id, token, (start, end), special) in enumerate(rows):
        depth = sum(1 for kept in survived[1:] if pos in kept)  # the survivor sets are nested
        tokens.append(
            TokenExplanation(
                position=pos,
                token_id=token_id,
                token=token,
                text=text[start:end],
                start=start,
                end=end,
                special=special,
                depth=depth,
                weights=tuple(dominated[layer].best[pos] for layer in range(depth)),
                slots=tuple(dominated[layer].slots[pos] for layer in range(depth)),
            )
        )
    return tokens
