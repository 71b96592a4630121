"""Summarize one document with a saved model folder (model + tokenizer) through the summarization pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pyramidion_hf import SummarizationPipeline


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
