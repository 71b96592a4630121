#!/usr/bin/env python
"""Summarize a text file with a saved Pyramidion model (the folder run_summarization.py or demo.py wrote).

    python examples/summarize.py --model outputs/demo/model paper.txt --num_beams 4 --max_new_tokens 200

Prints the summary, one sentence per line. `-` reads the document from stdin.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pyramidion_hf import SummarizationPipeline
from pyramidion_hf.training.metrics import split_sentences


def load_pipeline(model_dir: str | Path, device: str | None = None) -> SummarizationPipeline:
    """The summarization pipeline over a saved model folder (model + tokenizer)."""
    model = AutoModelForSeq2SeqLM.from_pretrained(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return SummarizationPipeline(model=model, tokenizer=tokenizer, device=device)


def summarize(pipe: SummarizationPipeline, text: str, **generate_kwargs: object) -> str:
    """One document's summary; the document is truncated to the model's input length."""
    if not text.strip():
        raise ValueError("The document is empty: nothing to summarize.")
    return pipe(text, truncation=True, **generate_kwargs)[0]["summary_text"].strip()


def read_text(path: str) -> str:
    """A UTF-8 text file's content ('-' = stdin), with a clear error for binary/undecodable input."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text ({error}); convert it (e.g. pdftotext, iconv) first."
        ) from None


def main(argv: Sequence[str] | None = None) -> str:
    """Command-line entry point; prints and returns the summary."""
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
    args = parser.parse_args(argv)
    pipe = load_pipeline(args.model, args.device)
    options = ("max_new_tokens", "num_beams", "no_repeat_ngram_size")
    generate_kwargs = {name: getattr(args, name) for name in options if getattr(args, name) is not None}
    summary = summarize(pipe, read_text(args.document), **generate_kwargs)
    print("\n".join(split_sentences(summary)) if summary else "(empty summary)")
    return summary


if __name__ == "__main__":
    main()
