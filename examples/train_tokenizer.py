#!/usr/bin/env python
"""Train a BPE or Unigram tokenizer (with the model's special tokens) on a summarization dataset's text.

    python examples/train_tokenizer.py --dataset aclsum --split train --vocab_size 32000 \
        --output_dir outputs/tok

The folder loads with `AutoTokenizer.from_pretrained` and feeds `run_summarization.py --tokenizer_name`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pyramidion_hf.training.tokenizer import TOKENIZER_MODELS, train_tokenizer_on_dataset


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Which dataset split and columns to learn from, and the tokenizer's kind and size."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="aclsum", help="aclsum, a Hub dataset name or a local file")
    parser.add_argument("--split", default="train")
    parser.add_argument("--columns", nargs="+", default=["article"], help="text columns to learn from")
    parser.add_argument("--article_column", default="article")
    parser.add_argument("--summary_column", default="abstract")
    parser.add_argument("--vocab_size", type=int, default=32000)
    parser.add_argument("--model", choices=TOKENIZER_MODELS, default="bpe")
    parser.add_argument("--min_frequency", type=int, default=2)
    parser.add_argument("--model_max_length", type=int, default=None)
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--output_dir", required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Path:
    """Command-line entry point; returns the output folder."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s - %(levelname)s - %(message)s",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    options = vars(args)
    dataset, output_dir = options.pop("dataset"), options.pop("output_dir")
    tokenizer = train_tokenizer_on_dataset(dataset, output_dir, **options)
    print(f"Saved a {args.model} tokenizer with {len(tokenizer)} tokens to {output_dir}")
    return Path(output_dir)


if __name__ == "__main__":
    try:
        main()
    except ValueError as error:
        sys.exit(f"train_tokenizer.py: error: {error}")
