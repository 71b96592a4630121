"""The ``pyramidion-explain`` command line (also ``python -m pyramidion_hf.analysis``): load a saved model and
its tokenizer, explain one text file, print the terminal view and optionally write the HTML view."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..cli_errors import add_debug_argument, cli_main
from ..model_folder import DTYPE_CHOICES, DTYPE_ENV, load_model_folder
from .explain import explain
from .render_terminal import COLOR_MODES, wants_color

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyramidion-explain",
        description="Show which tokens of a document survive each pooling layer of a Pyramidion model.",
    )
    parser.add_argument("model_dir", help="folder with the saved model and its tokenizer")
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
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                        help="weights' dtype: auto (default) = bf16 on CUDA and on CPUs with AMX or "
                        f"AVX512-BF16, else fp32 ({DTYPE_ENV}=fp32 turns auto off); bf16; fp32")
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow a folder whose config names its own model code to run that code")
    add_debug_argument(parser)
    return parser


def _read_text(path: str) -> str:
    """The document in utf-8 file `path`; ValueError when it is missing, not utf-8 or empty."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{path}: no such file (give the path of a utf-8 text file to explain).")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not utf-8 text ({err.reason} at byte {err.start}): convert it to utf-8."
        ) from None
    if not text.strip():
        raise ValueError(f"{path} is empty: nothing to explain.")
    return text


@cli_main("pyramidion-explain")
def main(argv: Sequence[str] | None = None) -> None:
    """`pyramidion-explain MODEL_DIR FILE [--html OUT.html] [--max-length N] [--color {auto,always,never}]
    [--dtype {auto,bf16,fp32}] [--trust-remote-code] [--debug]`; errors are one line on stderr, status 2."""
    args = _parser().parse_args(argv)
    text = _read_text(args.file)
    try:
        model, tokenizer = load_model_folder(
            args.model_dir, dtype=args.dtype, trust_remote_code=args.trust_remote_code, device=args.device
        )
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot load a model and tokenizer from {args.model_dir}: {err}") from err
    explanation = explain(model, tokenizer, text, max_length=args.max_length)
    sys.stdout.write(explanation.to_terminal(color=wants_color(args.color, sys.stdout)))
    if args.html:
        path = explanation.save_html(args.html)
        print(f"wrote the HTML view to {path.resolve()}")
