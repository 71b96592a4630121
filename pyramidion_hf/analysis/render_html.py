"""The HTML view of an `Explanation`: one self-contained page (inline CSS from ``templates/explain.html``, no
script or external resource) with each token coloured by survival depth and the model's pooling schedule."""

from __future__ import annotations

import functools
import html
from importlib.resources import files
from string import Template
from typing import TYPE_CHECKING

from .view import Piece, depth_fraction, headline, legend_entries, schedule_rows

if TYPE_CHECKING:
    from .explain import Explanation, TokenExplanation

__all__ = ["render_html"]

_KEY = """<p class="sub">Colour: the number of pooling layers a token survived (it dominated a pooled
vector kept by every pooling so far). Underline of the tokens the decoder reads: their path weight (thicker =
larger share of the pooled vector). Hover a token for its layers and weights.</p>
"""


@functools.cache
def _template() -> Template:
    """The page, read once from the package data (works from a checkout and from an installed wheel)."""
    return Template((files(__package__) / "templates" / "explain.html").read_text(encoding="utf-8"))


def render_html(exp: Explanation) -> str:
    """A self-contained HTML page: the document with each token coloured by survival depth (hover: layers
    and weights), a legend, per-layer counts and the model's pooling schedule."""
    total = exp.num_pooling_layers
    legend = "".join(
        f'<span class="swatch {_depth_class(d, total)}">{html.escape(label)}</span>'
        for d, label in legend_entries(exp)
    )
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in exp.notes)
    settings = " · ".join(
        f"{html.escape(name)}: <code>{html.escape(str(value))}</code>" for name, value in exp.schedule.items()
    )
    schedule = "".join(
        f"<tr><td>{layer}</td><td>{full}</td><td>{here}</td><td>{html.escape(then)}</td></tr>"
        for layer, full, here, then in schedule_rows(exp)
    )
    return _template().substitute(
        title=html.escape(f"Pyramidion pooling: which tokens survived ({headline(exp)})"),
        headline=html.escape(headline(exp)),
        depth_rules=_depth_rules(total),
        legend=legend,
        table=_layer_table(exp),
        notes=f"<ul class='notes'>{notes}</ul>" if notes else "",
        document="".join(_piece(exp, piece) for piece in exp.pieces()),
        schedule=schedule,
        settings=settings,
    )


def _layer_table(exp: Explanation) -> str:
    """The colour key and one row per pooling layer ("" without pooling: a note says so)."""
    if not exp.layers:
        return ""
    rows = "".join(
        f"<tr><td>{s.number}</td><td>{s.encoder_layer + 1}</td><td>{s.received}</td><td>{s.k}</td>"
        f"<td>{s.kept}</td><td>{100 * s.fraction:.1f}%</td><td>{s.mean_weight:.3f}</td></tr>"
        for s in exp.layers
    )
    return (
        f"{_KEY}<table><thead><tr><th>pooling</th><th>after encoder layer</th><th>vectors in</th>"
        "<th>k</th><th>kept</th><th>of the document</th><th>mean weight</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _depth_class(depth: int, total: int) -> str:
    return f"d{depth}" + (" top" if total and depth == total else "")


def _depth_rules(total: int) -> str:
    """CSS for the depth classes: grey for dropped tokens, then paler to stronger orange."""
    rules = [".d0 { color: #8a8a8a; }" if total else ".d0 { }"]  # no pooling: plain text
    for depth in range(1, total + 1):
        f = depth_fraction(depth, total)
        rules.append(f".d{depth} {{ background: hsl(32, 100%, {88 - 36 * f:.0f}%); color: #111; }}")
    return "\n".join(rules)


def _piece(exp: Explanation, piece: Piece) -> str:
    if piece.tokens is None:
        escaped = html.escape(piece.text)
        if not piece.unread:
            return escaped
        return (
            f'<span class="cut">not read: beyond max_length={exp.max_length}</span>'
            f'<span class="unread">{escaped}</span>'
        )
    classes = [_depth_class(piece.depth, exp.num_pooling_layers)]
    if piece.special:
        classes.append("special")
    title = "\n".join(_token_title(exp, t) for t in piece.tokens)
    weight = max(t.path_weight for t in piece.tokens) if piece.depth else 0.0
    return (
        f'<span class="{" ".join(classes)}" style="--w:{weight:.3f}" title="{html.escape(title)}">'
        f"{html.escape(piece.shown)}</span>"
    )


def _token_title(exp: Explanation, token: TokenExplanation) -> str:
    """The hover text of a token: the layers it survived with its weights, then where it stopped."""
    head = f"token {token.position} {token.token!r} (id {token.token_id})"
    if not exp.layers:
        return f"{head}: kept (the model has no pooling)"
    kept = [
        f"pooling {layer} (after encoder layer {exp.layers[layer - 1].encoder_layer + 1}): kept, "
        f"weight {w:.3f}" + (f" in {n} vectors" if n > 1 else "")
        for layer, (w, n) in enumerate(zip(token.weights, token.slots, strict=True), start=1)
    ]
    if token.depth < exp.num_pooling_layers:
        kept.append(f"dropped at pooling {token.depth + 1}")
    else:
        kept.append(f"reaches the decoder, path weight {token.path_weight:.3f}")
    return head + "\n" + "\n".join(kept)
