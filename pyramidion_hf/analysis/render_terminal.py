"""The terminal view of an `Explanation`: the document with survivors highlighted in ANSI colours (or marked
`[text:depth]` without colour), the per-layer summary, the legend and the notes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TextIO

from .view import depth_fraction, headline, legend_entries, summary_lines

if TYPE_CHECKING:
    from .explain import Explanation

__all__ = ["COLOR_MODES", "render_terminal", "wants_color"]

COLOR_MODES = ("auto", "always", "never")
# xterm-256 backgrounds from pale yellow to strong orange (survival depth), dropped tokens in grey.
_ANSI_BACKGROUNDS = (230, 223, 216, 209, 208, 202)
_ANSI_DROPPED = "\x1b[38;5;245m"
_ANSI_UNREAD = "\x1b[2;38;5;250m"
_ANSI_RESET = "\x1b[0m"


def wants_color(mode: str, stream: TextIO) -> bool:
    """Whether to write ANSI colours to `stream`: `always`, `never`, or `auto` = only to a terminal and only
    when the NO_COLOR environment variable is unset (so a pipe or a file gets plain text)."""
    if mode not in COLOR_MODES:
        raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}, got {mode!r}.")
    if mode != "auto":
        return mode == "always"
    isatty = getattr(stream, "isatty", None)
    return "NO_COLOR" not in os.environ and callable(isatty) and bool(isatty())


def render_terminal(exp: Explanation, color: bool = True) -> str:
    """The document with survivors highlighted (ANSI colours, or `[text:depth]` marks when color=False),
    followed by the per-layer summary, the legend and the notes."""
    body = _colored_body(exp) if color else _marked_body(exp)
    lines = [headline(exp), "", body, "", *summary_lines(exp), _legend(exp, color)]
    lines += [f"note: {note}" for note in exp.notes]
    return "\n".join(lines) + "\n"


def _ansi_style(depth: int, total: int) -> str:
    if total == 0:  # no pooling: nothing to highlight
        return ""
    if depth == 0:
        return _ANSI_DROPPED
    colour = _ANSI_BACKGROUNDS[round(depth_fraction(depth, total) * (len(_ANSI_BACKGROUNDS) - 1))]
    bold = "1;" if depth == total else ""
    return f"\x1b[{bold}38;5;16;48;5;{colour}m"


def _legend(exp: Explanation, color: bool) -> str:
    parts = []
    for depth, label in legend_entries(exp):
        if color:
            parts.append(f"{_ansi_style(depth, exp.num_pooling_layers)} {label} {_ANSI_RESET}")
        else:
            parts.append(f"[..:{depth}] {label}" if depth else f"plain: {label}")
    return "legend: " + (" " if color else "; ").join(parts)


def _marked_body(exp: Explanation) -> str:
    """The document as plain text, survivors marked `[text:depth]` (nothing marked without pooling)."""
    marks = exp.num_pooling_layers > 0
    return "".join(
        f"[{piece.shown}:{piece.depth}]" if marks and piece.depth else piece.shown
        for piece in exp.pieces()
    )


def _colored_body(exp: Explanation) -> str:
    """The document as ANSI-styled runs: adjacent runs of one style merged, reset at every line end so
    backgrounds do not bleed into the next line."""
    runs: list[list[str]] = []  # [style, text]
    for piece in exp.pieces():
        if piece.tokens is not None:
            style = _ansi_style(piece.depth, exp.num_pooling_layers)
        elif piece.unread:
            style = _ANSI_UNREAD
        elif not piece.text.strip() and runs and runs[-1][0] == _ANSI_DROPPED:
            style = _ANSI_DROPPED  # spaces between dropped tokens: one grey run
        else:
            style = ""
        if runs and runs[-1][0] == style:
            runs[-1][1] += piece.shown
        else:
            runs.append([style, piece.shown])
    return "".join(_styled(text, style) for style, text in runs)


def _styled(text: str, style: str) -> str:
    """`text` in `style`, reset at the end of every line (empty lines stay empty)."""
    if not style:
        return text
    return "\n".join(f"{style}{line}{_ANSI_RESET}" if line else "" for line in text.split("\n"))
