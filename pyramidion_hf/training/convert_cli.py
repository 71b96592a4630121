"""`pyramidion-convert SOURCE OUT_DIR`: write a converted Pyramidion model + tokenizer folder (convert.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .convert import convert_checkpoint, convert_tokenizer


def _lengths(text: str) -> list[int]:
    """'4096,4096,1024' -> [4096, 4096, 1024]."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None


def _block_size(text: str) -> int | None:
    """An int, or 'none' for full attention."""
    return None if text.lower() == "none" else int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyramidion-convert",
        description="Convert a Bart/MBart/Pegasus/LED ForConditionalGeneration checkpoint (local folder or "
        "Hub name) into a long-input Pyramidion folder (model + tokenizer).",
    )
    parser.add_argument("source", help="local folder or Hub name of the pretrained checkpoint")
    parser.add_argument("out_dir", help="folder to write the converted model and tokenizer to")
    parser.add_argument(
        "--max-length", type=int, help="input tokens of the converted model (default: source's)"
    )
    parser.add_argument(
        "--encoder-lengths",
        type=_lengths,
        help="vectors each encoder layer outputs, one per source encoder layer; a drop inserts pooling "
        "(default: no pooling)",
    )
    parser.add_argument(
        "--block-size", type=_block_size, help="blockwise encoder attention (default: none = full attention)"
    )
    parser.add_argument("--scorer", help="scorer of the inserted pooling layers (default: linear)")
    parser.add_argument("--tokenizer", help="folder or Hub name of the tokenizer (default: SOURCE)")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The PyramidionConfig overrides the command line gives."""
    names = {
        "max_length": "max_position_embeddings",
        "encoder_lengths": "encoder_lengths",
        "scorer": "scorer",
    }
    overrides = {field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg) is not None}
    if args.block_size is not None:
        overrides["block_size"] = args.block_size
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        model = convert_checkpoint(args.source, **_overrides(args))
        tokenizer = convert_tokenizer(args.tokenizer or args.source, model.config.max_position_embeddings)
        model.save_pretrained(args.out_dir)
        tokenizer.save_pretrained(args.out_dir)
    except (ValueError, OSError) as error:
        print(f"pyramidion-convert: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 1
    config = model.config
    print(
        f"Converted {args.source} ({config.converted_from['model_type']}) -> {args.out_dir}: "
        f"{config.max_position_embeddings} input tokens, encoder_lengths={config.encoder_lengths}, "
        f"pooling after layers {config.pooling_layers}, block_size={config.block_size}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
