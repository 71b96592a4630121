"""What both renderers of an `Explanation` show, unstyled: the text cut into pieces, the headline, the
per-layer summary, the legend entries and the schedule rows per encoder layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .explain import Explanation, TokenExplanation

__all__ = [
    "Piece",
    "depth_fraction",
    "headline",
    "legend_entries",
    "schedule_rows",
    "summary_lines",
    "text_pieces",
]


@dataclass(frozen=True)
class Piece:
    """A run of the text as rendered: a gap between tokens, a group of tokens, a special token or unread."""

    text: str
    tokens: tuple[TokenExplanation, ...] | None = None  # None: text between tokens (or unread)
    special: bool = False
    unread: bool = False

    @property
    def shown(self) -> str:
        """The characters to show: the vocabulary token for a special-token badge, else its text."""
        return self.tokens[0].token if self.special and self.tokens else self.text

    @property
    def depth(self) -> int:
        """The deepest survival among its tokens (a group of byte tokens shows as its best member)."""
        return max(t.depth for t in self.tokens) if self.tokens else 0


def text_pieces(text: str, tokens: Sequence[TokenExplanation], truncated: bool) -> list[Piece]:
    """Cover the text with pieces, in order: plain gaps between tokens, token pieces (a token overlapping the
    previous one, e.g. the second byte of a character, joins its piece; tokens whose offsets were trimmed to
    nothing, such as a lone space token, take the gap before the next token), badges for special tokens
    without text (<s>, </s>) and, when truncated, the unread tail after the last badge."""
    last_text = max((i for i, t in enumerate(tokens) if t.end > t.start), default=-1)
    out: list[Piece] = []
    trailing: list[Piece] = []
    pending: list[TokenExplanation] = []
    cursor = 0
    for i, token in enumerate(tokens):
        if token.start == token.end:
            if token.special:
                (out if i < last_text else trailing).append(Piece("", (token,), special=True))
            else:
                pending.append(token)
            continue
        previous = out[-1] if out else None
        if token.start < cursor and previous is not None and previous.tokens and not previous.special:
            end = max(cursor, token.end)
            out[-1] = Piece(previous.text + text[cursor:end], (*previous.tokens, token))
            cursor = end
            continue
        start = max(token.start, cursor)
        gap = text[cursor:start]
        if gap:
            out.append(Piece(gap, tuple(pending) or None))
            pending = []
        out.append(Piece(text[start : token.end], (*pending, token)))
        pending = []
        cursor = max(cursor, token.end)
    tail = text[cursor:]
    lead = len(tail) - len(tail.lstrip()) if truncated else len(tail)
    if tail[:lead] or pending:
        out.append(Piece(tail[:lead], tuple(pending) or None))
    out += trailing
    if tail[lead:]:
        out.append(Piece(tail[lead:], unread=True))
    return out


def depth_fraction(depth: int, total: int) -> float:
    """Survival depth as a share of the pooling layers (1.0 without pooling): both views' colour scale."""
    return 1.0 if total == 0 else depth / total


def headline(exp: Explanation) -> str:
    """One line: tokens read, the pooling lengths and how many tokens reach the decoder."""
    ks = [s.k for s in exp.layers]
    lengths = " → ".join(str(n) for n in [exp.schedule["max_position_embeddings"], *ks])
    n = len(exp.tokens)
    read = f"{n} tokens" + (f", truncated to max_length={exp.max_length}" if exp.truncated else "")
    if not exp.layers:
        return f"{read}; no pooling: every token reaches the decoder"
    last = exp.layers[-1]
    return (
        f"{read}; pooling {lengths}; {last.kept} of {n} tokens ({100 * last.fraction:.1f}%) reach the "
        "decoder"
    )


def summary_lines(exp: Explanation) -> list[str]:
    """One line per pooling layer: vectors kept of those received, share of the document, mean weight."""
    return [
        f"pooling {s.number} (after encoder layer {s.encoder_layer + 1}): kept {s.kept} of {s.received} "
        f"vectors (k={s.k}) = {100 * s.fraction:.1f}% of the document's {s.document_tokens} tokens, "
        f"mean weight {s.mean_weight:.3f}"
        for s in exp.layers
    ]


def legend_entries(exp: Explanation) -> list[tuple[int, str]]:
    """(survival depth, label) for every depth a token can have."""
    total = exp.num_pooling_layers
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


def schedule_rows(exp: Explanation) -> list[tuple[int, int, int, str]]:
    """Per encoder layer: number, vectors out for a max-length input, real vectors out for this document,
    and the pooling that follows it ("" if none)."""
    pooling = {s.encoder_layer: s for s in exp.layers}
    rows, current = [], len(exp.tokens)
    for i, full in enumerate(exp.schedule["encoder_lengths"]):
        then = ""
        if i in pooling:
            s = pooling[i]
            current = s.kept
            then = f"pooling {s.number}: keep k={s.k} ({exp.schedule['scorer']}"
            then += f", {exp.schedule['topk']})" if "topk" in exp.schedule else ")"
        rows.append((i + 1, full, current, then))
    return rows
