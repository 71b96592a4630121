"""The ``pyramidion-explain`` command line (also ``python -m pyramidion_hf.analysis``): load a saved model and
its tokenizer, explain one text file, print the terminal view and optionally write the HTML view."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # the package __init__ registered our classes

from .explain import explain
from .render_terminal import COLOR_MODES, wants_color

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyramidion-explain",
        description="Show which tokens of a document survive each pooling layer of a Pyramidion model.",
    )
    parser.add_argument("model_dir", help="folder (or Hub id) with the model and its tokenizer")
    parser.add_argument("file", help="utf-8 text file with the document")
    parser.add_argument("--html", metavar="OUT.html", help="also write a self-contained HTML view here")
    parser.add_argument("--max-length", type=int, default=None, metavar="N",
                        help="truncate to N tokens (default: the model's max_position_embeddings)")
    parser.add_argument("--color", choices=COLOR_MODES, default="auto",
                        help="ANSI colours: auto (default) = only when stdout is a terminal and NO_COLOR is "
                        "unset; always; never")
    parser.add_argument("--no-color", dest="color", action="store_const", const="never",
                        help="same as --color never")
    parser.add_argument("--device", default="cpu", help="torch device to run the encoder on (default cpu)")
    return parser


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
    """`pyramidion-explain MODEL_DIR FILE [--html OUT.html] [--max-length N] [--color {auto,always,never}]`;
    errors print one line on stderr and exit with status 2."""
    parser = _parser()
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
    sys.stdout.write(explanation.to_terminal(color=wants_color(args.color, sys.stdout)))
    if args.html:
        path = explanation.save_html(args.html)
        print(f"wrote the HTML view to {path.resolve()}")
