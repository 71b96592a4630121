#!/usr/bin/env python
"""Summarize a text file with a saved Pyramidion model (the folder run_summarization.py or demo.py wrote).

    python examples/summarize.py --model outputs/demo/model paper.txt --num_beams 4 --max_new_tokens 200

Prints the summary, one sentence per line. `-` reads the document from stdin.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from pyramidion_hf.cli_errors import add_debug_argument, cli_main
from pyramidion_hf.model_folder import DTYPE_CHOICES
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
    parser.add_argument(
        "--dtype", choices=DTYPE_CHOICES, default="auto",
        help="auto (default): bf16 on CUDA and on CPUs with AMX / AVX512-BF16, else fp32 "
        "(PYRAMIDION_DTYPE=fp32 turns bf16 off)",
    )  # fmt: skip
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="load a folder whose own code names other classes"
    )
    add_debug_argument(parser)
    return parser.parse_args(argv)


@cli_main("summarize.py")
def main(argv: Sequence[str] | None = None) -> str:
    """Command-line entry point; prints and returns the summary (errors: one line on stderr, status 2)."""
    args = parse_args(argv)
    text = read_text(args.document)
    pipe = load_pipeline(args.model, args.device, args.dtype, args.trust_remote_code)
    options = {name: getattr(args, name) for name in GENERATE_OPTIONS if getattr(args, name) is not None}
    summary = summarize(pipe, text, **options)
    print("\n".join(split_sentences(summary)) if summary else "(empty summary)")
    return summary


if __name__ == "__main__":
    main()
