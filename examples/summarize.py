#!/usr/bin/env python
"""Summarize a text file with a saved Pyramidion model (the folder run_summarization.py or demo.py wrote).

    python examples/summarize.py --model outputs/demo/model paper.txt --num_beams 4 --max_new_tokens 200

Prints the summary, one sentence per line. `-` reads the document from stdin.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pyramidion_hf.training.metrics import split_sentences
from pyramidion_hf.training.summarize import load_pipeline, read_text, summarize

GENERATE_OPTIONS = ("max_new_tokens", "num_beams", "no_repeat_ngram_size")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The document, the model folder and optional generation settings."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("document", help="text file to summarize ('-' for stdin)")
    parser.add_argument("--model", required=True, help="saved model folder (with its tokenizer)")
    parser.add_argument(
        "--max_new_tokens", type=int, default=None, help="default: the model's generation config"
    )
    parser.add_argument("--num_beams", type=int, default=None)
    parser.add_argument("--no_repeat_ngram_size", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    """Command-line entry point; prints and returns the summary."""
    args = parse_args(argv)
    text = read_text(args.document)
    pipe = load_pipeline(args.model, args.device)
    options = {name: getattr(args, name) for name in GENERATE_OPTIONS if getattr(args, name) is not None}
    summary = summarize(pipe, text, **options)
    print("\n".join(split_sentences(summary)) if summary else "(empty summary)")
    return summary


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:
        sys.exit(f"summarize.py: error: {error}")
