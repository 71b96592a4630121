"""Which input tokens survived the representation pooling: a terminal and a self-contained HTML view.

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
``.save_html(path)``), or the console script ``pyramidion-explain MODEL_DIR FILE [--html OUT.html]``.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # the package __init__ registered our classes

__all__ = ["Explanation", "LayerSummary", "TokenExplanation", "explain", "main"]

_STRIDED = ("mean", "max")
# xterm-256 backgrounds from pale yellow to strong orange (survival depth), dropped tokens in grey.
_ANSI_BACKGROUNDS = (230, 223, 216, 209, 208, 202)
_ANSI_DROPPED = "\x1b[38;5;245m"
_ANSI_UNREAD = "\x1b[2;38;5;250m"
_ANSI_RESET = "\x1b[0m"


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

    def to_terminal(self, color: bool = True) -> str:
        """The document with survivors highlighted (ANSI colours, or `[text:depth]` marks when color=False),
        followed by the per-layer summary, the legend and the notes."""
        lines = [self._headline(), "", self._terminal_body(color), "", *self._summary_lines()]
        lines.append(self._terminal_legend(color))
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        """A self-contained HTML page (inline CSS, no script or external resource): the document with each
        token coloured by survival depth (hover: layers and weights), a legend, per-layer counts and the
        model's pooling schedule."""
        pieces = "".join(self._render_html_piece(piece) for piece in self._pieces())
        rows = "".join(
            f"<tr><td>{s.number}</td><td>{s.encoder_layer + 1}</td><td>{s.received}</td><td>{s.k}</td>"
            f"<td>{s.kept}</td><td>{100 * s.fraction:.1f}%</td><td>{s.mean_weight:.3f}</td></tr>"
            for s in self.layers
        )
        table = (
            f"{_HTML_KEY}<table><thead><tr><th>pooling</th><th>after encoder layer</th><th>vectors in</th>"
            "<th>k</th><th>kept</th><th>of the document</th><th>mean weight</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            if self.layers
            else ""  # no pooling: the note says so
        )
        legend = "".join(
            f'<span class="swatch {_depth_class(d, self.num_pooling_layers)}">{html.escape(label)}</span>'
            for d, label in self._legend_entries()
        )
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.notes)
        settings = " · ".join(
            f"{html.escape(name)}: <code>{html.escape(str(value))}</code>"
            for name, value in self.schedule.items()
        )
        schedule = "".join(
            f"<tr><td>{layer}</td><td>{full}</td><td>{here}</td><td>{html.escape(then)}</td></tr>"
            for layer, full, here, then in self._schedule_rows()
        )
        return _HTML_TEMPLATE.format(
            title=html.escape(f"Pyramidion pooling: which tokens survived ({self._headline()})"),
            headline=html.escape(self._headline()),
            style=_html_style(self.num_pooling_layers),
            legend=legend,
            table=table,
            schedule=schedule,
            settings=settings,
            notes=f"<ul class='notes'>{notes}</ul>" if notes else "",
            document=pieces,
        )

    def save_html(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_html()` to `path` (utf-8, parent folders created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    # -- rendering helpers ------------------------------------------------------------------------------

    def _headline(self) -> str:
        ks = [s.k for s in self.layers]
        lengths = " → ".join(str(n) for n in [self.schedule["max_position_embeddings"], *ks])
        n = len(self.tokens)
        read = f"{n} tokens" + (f", truncated to max_length={self.max_length}" if self.truncated else "")
        if not self.layers:
            return f"{read}; no pooling: every token reaches the decoder"
        last = self.layers[-1]
        return (
            f"{read}; pooling {lengths}; {last.kept} of {n} tokens ({100 * last.fraction:.1f}%) reach the "
            "decoder"
        )

    def _summary_lines(self) -> list[str]:
        return [
            f"pooling {s.number} (after encoder layer {s.encoder_layer + 1}): kept {s.kept} of {s.received} "
            f"vectors (k={s.k}) = {100 * s.fraction:.1f}% of the document's {s.document_tokens} tokens, "
            f"mean weight {s.mean_weight:.3f}"
            for s in self.layers
        ]

    def _legend_entries(self) -> list[tuple[int, str]]:
        total = self.num_pooling_layers
        if total == 0:
            return [(0, "kept (no pooling)")]
        entries = [(0, "dropped at pooling 1")]
        for depth in range(1, total + 1):
            if depth < total:
                label = f"survived pooling {depth}, dropped at {depth + 1}"
            else:
                label = f"survived all {total} (decoder reads it)"
            entries.append((depth, label))
        return entries

    def _terminal_legend(self, color: bool) -> str:
        parts = []
        for depth, label in self._legend_entries():
            if color:
                parts.append(f"{_ansi_style(depth, self.num_pooling_layers)} {label} {_ANSI_RESET}")
            else:
                parts.append(f"[..:{depth}] {label}" if depth else f"plain: {label}")
        return "legend: " + (" " if color else "; ").join(parts)

    def _pieces(self) -> list[_Piece]:
        """Split the read text into rendered pieces: gaps, token groups (tokens sharing characters, e.g. the
        bytes of one character, are merged), special tokens and the unread tail."""
        return _pieces(self.text, self.tokens, self.truncated)

    def _schedule_rows(self) -> list[tuple[int, int, int, str]]:
        """Per encoder layer: number, vectors out for a max-length input, real vectors out for this document,
        and the pooling that follows it ("" if none)."""
        pooling = {s.encoder_layer: s for s in self.layers}
        rows, current = [], len(self.tokens)
        for i, full in enumerate(self.schedule["encoder_lengths"]):
            then = ""
            if i in pooling:
                s = pooling[i]
                current = s.kept
                then = f"pooling {s.number}: keep k={s.k} ({self.schedule['scorer']}"
                then += f", {self.schedule['topk']})" if "topk" in self.schedule else ")"
            rows.append((i + 1, full, current, then))
        return rows

    def _terminal_body(self, color: bool) -> str:
        """The document as text: ANSI-styled runs (adjacent runs of one style merged, reset at every line
        end so backgrounds do not bleed), or `[text:depth]` marks for survivors when color=False."""
        total = self.num_pooling_layers
        runs: list[list[str]] = []  # [style, text]
        for piece in self._pieces():
            text = piece.tokens[0].token if piece.special else piece.text
            if piece.tokens is None:
                style = _ANSI_UNREAD if piece.unread else ""
                if not piece.unread and not text.strip() and runs and runs[-1][0] == _ANSI_DROPPED:
                    style = _ANSI_DROPPED  # spaces between dropped tokens: one grey run
            else:
                depth = max(t.depth for t in piece.tokens)
                if not color:
                    runs.append(["", f"[{text}:{depth}]" if depth and total else text])
                    continue
                style = _ansi_style(depth, total)
            if not color:
                style = ""
            if runs and runs[-1][0] == style:
                runs[-1][1] += text
            else:
                runs.append([style, text])
        return "".join(
            "\n".join(f"{style}{line}{_ANSI_RESET}" if line else "" for line in text.split("\n"))
            if style
            else text
            for style, text in runs
        )

    def _render_html_piece(self, piece: _Piece) -> str:
        if piece.tokens is None:
            escaped = html.escape(piece.text)
            if not piece.unread:
                return escaped
            return (
                f'<span class="cut">not read: beyond max_length={self.max_length}</span>'
                f'<span class="unread">{escaped}</span>'
            )
        depth = max(t.depth for t in piece.tokens)
        classes = [_depth_class(depth, self.num_pooling_layers)]
        if piece.special:
            classes.append("special")
            text = piece.tokens[0].token
        else:
            text = piece.text
        title = "\n".join(self._token_title(t) for t in piece.tokens)
        weight = max(t.path_weight for t in piece.tokens) if depth else 0.0
        return (
            f'<span class="{" ".join(classes)}" style="--w:{weight:.3f}" title="{html.escape(title)}">'
            f"{html.escape(text)}</span>"
        )

    def _token_title(self, token: TokenExplanation) -> str:
        head = f"token {token.position} {token.token!r} (id {token.token_id})"
        if not self.layers:
            return f"{head}: kept (the model has no pooling)"
        kept = [
            f"pooling {layer} (after encoder layer {self.layers[layer - 1].encoder_layer + 1}): kept, "
            f"weight {w:.3f}" + (f" in {n} vectors" if n > 1 else "")
            for layer, (w, n) in enumerate(zip(token.weights, token.slots, strict=True), start=1)
        ]
        if token.depth < self.num_pooling_layers:
            kept.append(f"dropped at pooling {token.depth + 1}")
        else:
            kept.append(f"reaches the decoder, path weight {token.path_weight:.3f}")
        return head + "\n" + "\n".join(kept)


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: tuple[TokenExplanation, ...] | None = None  # None: text between tokens (or unread)
    special: bool = False
    unread: bool = False


def _pieces(text: str, tokens: Sequence[TokenExplanation], truncated: bool) -> list[_Piece]:
    """Cover the text with pieces, in order: plain gaps between tokens, token pieces (a token overlapping the
    previous one, e.g. the second byte of a character, joins its piece; tokens whose offsets were trimmed to
    nothing, such as a lone space token, take the gap before the next token), badges for special tokens
    without text (<s>, </s>) and, when truncated, the unread tail after the last badge."""
    last_text = max((i for i, t in enumerate(tokens) if t.end > t.start), default=-1)
    pieces: list[_Piece] = []
    trailing: list[_Piece] = []
    pending: list[TokenExplanation] = []
    cursor = 0
    for i, token in enumerate(tokens):
        if token.start == token.end:
            if token.special:
                (pieces if i < last_text else trailing).append(_Piece("", (token,), special=True))
            else:
                pending.append(token)
            continue
        previous = pieces[-1] if pieces else None
        if token.start < cursor and previous is not None and previous.tokens and not previous.special:
            end = max(cursor, token.end)
            pieces[-1] = _Piece(previous.text + text[cursor:end], (*previous.tokens, token))
            cursor = end
            continue
        start = max(token.start, cursor)
        gap = text[cursor:start]
        if gap:
            pieces.append(_Piece(gap, tuple(pending) or None))
            pending = []
        pieces.append(_Piece(text[start : token.end], (*pending, token)))
        pending = []
        cursor = max(cursor, token.end)
    tail = text[cursor:]
    lead = len(tail) - len(tail.lstrip()) if truncated else len(tail)
    if tail[:lead] or pending:
        pieces.append(_Piece(tail[:lead], tuple(pending) or None))
    pieces += trailing
    if tail[lead:]:
        pieces.append(_Piece(tail[lead:], unread=True))
    return pieces


def _depth_fraction(depth: int, total: int) -> float:
    return 1.0 if total == 0 else depth / total


def _ansi_style(depth: int, total: int) -> str:
    if total == 0:  # no pooling: nothing to highlight
        return ""
    if depth == 0:
        return _ANSI_DROPPED
    colour = _ANSI_BACKGROUNDS[round(_depth_fraction(depth, total) * (len(_ANSI_BACKGROUNDS) - 1))]
    bold = "1;" if depth == total else ""
    return f"\x1b[{bold}38;5;16;48;5;{colour}m"


def _depth_class(depth: int, total: int) -> str:
    return f"d{depth}" + (" top" if total and depth == total else "")


def _html_style(total: int) -> str:
    rules = [".d0 { color: #8a8a8a; }" if total else ".d0 { }"]  # no pooling: plain text
    for depth in range(1, total + 1):
        f = _depth_fraction(depth, total)
        rules.append(f".d{depth} {{ background: hsl(32, 100%, {88 - 36 * f:.0f}%); color: #111; }}")
    return _CSS + "\n".join(rules)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 60em;
       padding: 0 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.35em; margin-bottom: 0.2em; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; }
h2 { font-size: 1.1em; margin: 1.2em 0 0.3em; }
table.schedule td:last-child, table.schedule th:last-child { text-align: left; }
.settings { color: #555; font-size: 0.88em; }
code { font-family: ui-monospace, monospace; font-size: 0.95em; }
.legend { display: flex; flex-wrap: wrap; gap: 0.5em; margin: 0.6em 0; font-size: 0.92em; }
.swatch { padding: 0.15em 0.5em; border-radius: 3px; border: 1px solid #ddd; }
.doc { white-space: pre-wrap; word-wrap: break-word; line-height: 1.9; font-size: 1.02em;
       border: 1px solid #ddd; border-radius: 4px; padding: 1em 1.2em; background: #fff; }
.doc span[title] { border-radius: 2px; cursor: help; }
.doc .top { font-weight: 600; box-shadow: inset 0 calc(-1px - 3px * var(--w, 1)) 0 #8a2400; }
.special { font-family: ui-monospace, monospace; font-size: 0.8em; border: 1px dashed #999;
           padding: 0 0.2em; margin: 0 0.15em; }
.unread { color: #b0b0b0; font-style: italic; }
.cut { font-size: 0.78em; color: #fff; background: #777; border-radius: 3px; padding: 0.1em 0.4em;
       margin: 0 0.4em; font-style: normal; white-space: nowrap; display: inline-block; line-height: 1.4; }
.notes { color: #444; font-size: 0.92em; }
"""

_HTML_KEY = """<p class="sub">Colour: the number of pooling layers a token survived (it dominated a pooled
vector kept by every pooling so far). Underline of the tokens the decoder reads: their path weight (thicker =
larger share of the pooled vector). Hover a token for its layers and weights.</p>
"""

_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>Which tokens survived the representation pooling</h1>
<p class="sub">{headline}</p>
<div class="legend">{legend}</div>
{table}
{notes}
<h2>Document</h2>
<div class="doc">{document}</div>
<h2>Pooling schedule</h2>
<table class="schedule"><thead><tr><th>encoder layer</th><th>out (max length)</th><th>out (this text)</th>
<th>then</th></tr></thead><tbody>{schedule}</tbody></table>
<p class="settings">{settings}</p>
</body>
</html>
"""


# -- computing the explanation --------------------------------------------------------------------------


def _encoder_of(model: nn.Module) -> nn.Module:
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else model
    config = getattr(encoder, "config", None)
    if config is None or not hasattr(config, "pooling_layers") or not hasattr(config, "encoder_lengths"):
        raise ValueError(
            f"explain needs a Pyramidion model (PyramidionForConditionalGeneration, PyramidionModel or its "
            f"encoder), got {type(model).__name__}."
        )
    return encoder


def _schedule(config: Any) -> dict[str, Any]:
    pooling = list(config.pooling_layers)
    schedule: dict[str, Any] = {
        "max_position_embeddings": config.max_position_embeddings,
        "encoder_lengths": list(config.encoder_lengths),
        "pooling after encoder layers": [i + 1 for i in pooling] if pooling else "none",
        "block_size": config.block_size if config.block_size is not None else "None (full attention)",
        "scorer": config.scorer,
    }
    if pooling and config.scorer not in _STRIDED:
        schedule["topk"] = config.topk
        if config.topk in ("successive_halving", "iterative"):
            schedule["topk_temperature"] = config.topk_temperature
        if config.topk == "successive_halving":
            schedule["topk_sort"] = config.topk_sort
            schedule["topk_weighting"] = config.topk_weighting
    if getattr(config, "funnel_upsample", False):
        schedule["funnel_upsample"] = True
    return schedule


def _notes(config: Any, num_tokens: int, truncated: bool, max_length: int) -> list[str]:
    notes = []
    if truncated:
        notes.append(f"The text has more than max_length={max_length} tokens: the greyed tail was not read.")
    if not config.pooling_layers:
        notes.append(
            "This model has no pooling layer (encoder_lengths never shrinks): every token survives and the "
            "decoder attends to all of them."
        )
        return notes
    if config.scorer in _STRIDED:
        notes.append(
            f"scorer={config.scorer!r} is strided {config.scorer} pooling, not a selection: each kept vector "
            f"{'averages' if config.scorer == 'mean' else 'takes the per-dimension maximum of'} a window of "
            "consecutive vectors, and the survivor shown is the window's first token (weight = 1 / window "
            "size)."
        )
    elif config.topk == "hard":
        notes.append("topk='hard': each kept vector is exactly one input, so every weight is 1.")
    else:
        notes.append(
            f"topk={config.topk!r} is soft: each pooled vector mixes several inputs; the token shown is the "
            "one whose input has the largest coefficient (its weight; after the first pooling, the input is "
            "a vector that token dominated at the previous pooling)."
        )
    if config.scorer == "random":
        notes.append("scorer='random' draws new scores at every call: another run selects other tokens.")
    if config.scorer == "index":
        notes.append("scorer='index' keeps evenly spaced positions whatever the content.")
    if config.scorer == "power":
        notes.append("scorer='power' ranks tokens by the attention they received in the preceding layer.")
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


def explain(model: nn.Module, tokenizer: Any, text: str, *, max_length: int | None = None) -> Explanation:
    """Run the encoder once (eval, no grad) on `text` and trace which tokens survive each pooling layer.

    `tokenizer` must be a fast tokenizer (offsets); `max_length` (default: the model's
    `max_position_embeddings`) truncates longer texts, whose tail is then marked as not read.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}.")
    if not text.strip():
        raise ValueError("text is empty (or only whitespace): give the document to explain.")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "explain needs a fast tokenizer (character offsets): load it with AutoTokenizer.from_pretrained("
            "..., use_fast=True)."
        )
    encoder = _encoder_of(model)
    config = encoder.config
    limit = config.max_position_embeddings
    if max_length is None:
        max_length = limit
    if not isinstance(max_length, int) or isinstance(max_length, bool) or not 1 <= max_length <= limit:
        raise ValueError(
            f"max_length must be an int in [1, max_position_embeddings={limit}], got {max_length!r}."
        )

    enc = tokenizer(
        text,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    ids: list[int] = enc["input_ids"]
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    special = [bool(s) for s in enc["special_tokens_mask"]]
    if all(special):
        raise ValueError("The text produced no token besides the special tokens: nothing to explain.")
    read_chars = max(end for (_, end), sp in zip(offsets, special, strict=True) if not sp)
    truncated = bool(text[read_chars:].strip())

    device = next(encoder.parameters()).device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    attention_mask = torch.ones_like(input_ids)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
    finally:
        model.train(was_training)

    n = len(ids)
    layers, survived, layer_weights, layer_slots = [], [set(range(n))], [], []
    for number, (encoder_layer, positions, weights) in enumerate(
        zip(config.pooling_layers, out.pooling_indices, out.pooling_weights, strict=True), start=1
    ):
        best: dict[int, float] = {}
        slots: dict[int, int] = {}
        real_weights = []
        for pos, w in zip(positions[0].tolist(), weights[0].float().tolist(), strict=True):
            if pos < 0:
                continue
            real_weights.append(w)
            slots[pos] = slots.get(pos, 0) + 1
            best[pos] = max(w, best.get(pos, -math.inf))
        kept = survived[-1] & set(best)  # a token survives only if it survived every earlier layer
        layers.append(
            LayerSummary(
                number=number,
                encoder_layer=encoder_layer,
                k=config.encoder_lengths[encoder_layer],
                received=len(survived[-1]),
                kept=len(kept),
                document_tokens=n,
                mean_weight=sum(real_weights) / len(real_weights) if real_weights else 0.0,
            )
        )
        survived.append(kept)
        layer_weights.append(best)
        layer_slots.append(slots)

    tokens = []
    vocab_tokens = tokenizer.convert_ids_to_tokens(ids)
    rows = zip(ids, vocab_tokens, offsets, special, strict=True)
    for pos, (token_id, token, (start, end), sp) in enumerate(rows):
        depth = 0
        while depth < len(layers) and pos in survived[depth + 1]:
            depth += 1
        tokens.append(
            TokenExplanation(
                position=pos,
                token_id=token_id,
                token=token,
                text=text[start:end],
                start=start,
                end=end,
                special=sp,
                depth=depth,
                weights=tuple(layer_weights[layer][pos] for layer in range(depth)),
                slots=tuple(layer_slots[layer][pos] for layer in range(depth)),
            )
        )
    return Explanation(
        text=text,
        tokens=tokens,
        layers=layers,
        schedule=_schedule(config),
        max_length=max_length,
        truncated=truncated,
        read_chars=read_chars,
        notes=_notes(config, n, truncated, max_length),
    )


# -- command line -----------------------------------------------------------------------------------------


def _read_text(parser: argparse.ArgumentParser, path: str) -> str:
    file = Path(path)
    if not file.is_file():
        parser.error(f"{path}: no such file (give the path of a utf-8 text file to explain).")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        parser.error(f"{path} is not utf-8 text ({err.reason} at byte {err.start}): convert it to utf-8.")
    if not text.strip():
        parser.error(f"{path} is empty: nothing to explain.")
    return text


def main(argv: Sequence[str] | None = None) -> None:
    """Console script `pyramidion-explain MODEL_DIR FILE [--html OUT.html] [--max-length N] [--no-color]`."""
    parser = argparse.ArgumentParser(
        prog="pyramidion-explain",
        description="Show which tokens of a document survive each pooling layer of a Pyramidion model.",
    )
    parser.add_argument("model_dir", help="folder (or Hub id) with the model and its tokenizer")
    parser.add_argument("file", help="utf-8 text file with the document")
    parser.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML view here")
    parser.add_argument("--max-length", type=int, default=None, metavar="N",
                        help="truncate to N tokens (default: the model's max_position_embeddings)")
    parser.add_argument("--no-color", action="store_true", help="no ANSI colours (also: NO_COLOR env)")
    parser.add_argument("--device", default="cpu", help="torch device to run the encoder on (default cpu)")
    args = parser.parse_args(argv)

    text = _read_text(parser, args.file)
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
        model = AutoModelForSeq2SeqLM.from_pretrained(args.model_dir).to(args.device)
    except (OSError, ValueError) as err:
        parser.error(f"cannot load a model and tokenizer from {args.model_dir}: {err}")
    try:
        explanation = explain(model, tokenizer, text, max_length=args.max_length)
    except ValueError as err:
        parser.error(str(err))
    color = not args.no_color and "NO_COLOR" not in os.environ
    sys.stdout.write(explanation.to_terminal(color=color))
    if args.html:
        path = explanation.save_html(args.html)
        print(f"wrote the HTML view to {path.resolve()}")


if __name__ == "__main__":
    main()
