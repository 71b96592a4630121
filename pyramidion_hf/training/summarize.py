"""Summarize one document with a saved model folder (model + tokenizer) through the summarization pipeline."""

from __future__ import annotations

import sys
from pathlib import Path

from ..model_folder import load_model_folder
from ..modeling.pipeline_summarization import SummarizationPipeline


def load_pipeline(
    model_dir: str | Path, device: str | None = None, dtype: str = "auto", trust_remote_code: bool = False
) -> SummarizationPipeline:
    """The summarization pipeline over a saved model folder (model + tokenizer), checked by
    `load_model_folder` (a Pyramidion, complete and finite weights, a tokenizer that fits) and in its dtype
    ("auto": bf16 where the hardware has fast bf16, see `model_folder.resolve_dtype`)."""
    model, tokenizer = load_model_folder(
        model_dir, dtype=dtype, trust_remote_code=trust_remote_code, device=device or "cpu"
    )
    return SummarizationPipeline(model=model, tokenizer=tokenizer, device=device)


def summarize(pipe: SummarizationPipeline, text: str, **generate_kwargs: object) -> str:
    """One document's summary; the document is truncated to the model's input length (the pipeline refuses an
    empty one)."""
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
