"""Custom handler for Hugging Face Inference Endpoints: summarizes long documents with this Pyramidion model.

Imports only the standard library, torch and transformers; the model, its tokenizer and its summarization
pipeline are loaded from this repository as remote code (trust_remote_code=True), so pyramidion_hf need not be
installed on the endpoint. The weights run in bf16 on CUDA and on CPUs with AMX / AVX512-BF16 (else fp32);
the endpoint's environment variable PYRAMIDION_DTYPE=fp32 (or bf16) overrides that choice.
"""

import os
from typing import Any

import torch
from transformers import pipeline

DTYPE_ENV = "PYRAMIDION_DTYPE"
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def fast_bf16(cuda: bool) -> bool:
    """Whether the device multiplies bf16 in hardware: a CUDA GPU with bf16, a CPU with AMX or AVX512-BF16."""
    if cuda:
        return torch.cuda.is_bf16_supported()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            flags = cpuinfo.read().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_dtype(cuda: bool) -> torch.dtype:
    """$PYRAMIDION_DTYPE (fp32 | bf16) if set, else bf16 where `fast_bf16`, else fp32."""
    choice = os.environ.get(DTYPE_ENV, "").strip().lower()
    if choice and choice not in DTYPES:
        raise ValueError(f"{DTYPE_ENV}={choice!r}: set it to fp32 or bf16, or unset it.")
    if choice:
        return DTYPES[choice]
    return torch.bfloat16 if fast_bf16(cuda) else torch.float32


class EndpointHandler:
    """`EndpointHandler(path)({"inputs": text | [texts], "parameters": {...}})` -> [{"summary_text": str}]."""

    def __init__(self, path: str = "") -> None:
        cuda = torch.cuda.is_available()
        self.summarizer = pipeline(
            "summarization",
            model=path or ".",
            trust_remote_code=True,
            device=0 if cuda else -1,
            dtype=pick_dtype(cuda),
        )

    def __call__(self, data: dict[str, Any]) -> list[dict[str, str]]:
        """Summarize data["inputs"] (one document or a list) with generate kwargs from data["parameters"]."""
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError(
                'The request body must be a JSON object with "inputs": a document or a list of documents.'
            )
        inputs = data["inputs"]
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError(
                '"parameters" must be a JSON object of generation settings, e.g. {"num_beams": 4}.'
            )
        documents = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
            raise ValueError('"inputs" must be a non-empty string or a non-empty list of strings.')
        empty = [i for i, document in enumerate(documents) if not document.strip()]
        if empty:
            raise ValueError(
                f'"inputs" holds {len(empty)} empty or blank document(s) (first at index {empty[0]}): '
                "send the text to summarize."
            )
        outputs = self.summarizer(documents, **parameters)
        return [{"summary_text": item["summary_text"]} for item in _flatten(outputs)]


def _flatten(outputs: Any) -> list[dict[str, Any]]:
    """Flatten the pipeline's per-document lists (one entry per returned sequence) into one list of dicts."""
    if isinstance(outputs, dict):
        return [outputs]
    return [item for output in outputs for item in _flatten(output)]
