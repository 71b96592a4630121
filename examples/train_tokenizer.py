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
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast

from pyramidion_hf.training.data import load_summarization_data
from pyramidion_hf.training.tokenizer import train_tokenizer

logger = logging.getLogger("train_tokenizer")


def iter_texts(
    dataset: str,
    split: str,
    columns: Sequence[str],
    *,
    article_column: str = "article",
    summary_column: str = "abstract",
    max_samples: int | None = None,
) -> Iterator[str]:
    """The non-empty texts of `columns` in one split of a dataset (aclsum, Hub name or local file)."""
    raw = load_summarization_data(dataset, article_column=article_column, summary_column=summary_column)
    if split not in raw:
        raise ValueError(f"{dataset} has no split {split!r}; it has {list(raw)}. Pick one with --split.")
    data = raw[split]
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ValueError(f"Columns {missing} not in {dataset}[{split}] (columns: {data.column_names}).")
    rows = data if max_samples is None else data.select(range(min(max_samples, len(data))))
    for row in tqdm(rows, desc=f"Reading {dataset}[{split}]", leave=False):
        for column in columns:
            if isinstance(row[column], str) and row[column].strip():
                yield row[column]


def build_tokenizer(
    dataset: str,
    output_dir: str | Path,
    *,
    split: str = "train",
    columns: Sequence[str] = ("article",),
    vocab_size: int = 32000,
    model: str = "bpe",
    min_frequency: int = 2,
    model_max_length: int | None = None,
    max_samples: int | None = None,
    article_column: str = "article",
    summary_column: str = "abstract",
) -> PreTrainedTokenizerFast:
    """Train on the dataset's texts and save to `output_dir`; returns the tokenizer."""
    texts = list(
        iter_texts(
            dataset,
            split,
            columns,
            article_column=article_column,
            summary_column=summary_column,
            max_samples=max_samples,
        )
    )
    if not texts:
        raise ValueError(f"No text in {dataset}[{split}] columns {list(columns)} to train a tokenizer on.")
    logger.info("Training a %s tokenizer (vocab %d) on %d texts", model, vocab_size, len(texts))
    tokenizer = train_tokenizer(
        texts,
        vocab_size=vocab_size,
        model=model,
        min_frequency=min_frequency,
        model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(str(output_dir))
    return tokenizer


def main(argv: Sequence[str] | None = None) -> Path:
    """Command-line entry point; returns the output folder."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="aclsum", help="aclsum, a Hub dataset name or a local file")
    parser.add_argument("--split", default="train")
    parser.add_argument("--columns", nargs="+", default=["article"], help="text columns to learn from")
    parser.add_argument("--article_column", default="article")
    parser.add_argument("--summary_column", default="abstract")
    parser.add_argument("--vocab_size", type=int, default=32000)
    parser.add_argument("--model", choices=["bpe", "unigram"], default="bpe")
    parser.add_argument("--min_frequency", type=int, default=2)
    parser.add_argument("--model_max_length", type=int, default=None)
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s - %(levelname)s - %(message)s",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    tokenizer = build_tokenizer(
        args.dataset,
        args.output_dir,
        split=args.split,
        columns=args.columns,
        vocab_size=args.vocab_size,
        model=args.model,
        min_frequency=args.min_frequency,
        model_max_length=args.model_max_length,
        max_samples=args.max_samples,
        article_column=args.article_column,
        summary_column=args.summary_column,
    )
    print(f"Saved a {args.model} tokenizer with {len(tokenizer)} tokens to {args.output_dir}")
    return Path(args.output_dir)


if __name__ == "__main__":
    main()
