"""Custom handler for Hugging Face Inference Endpoints: summarizes long documents with this Pyramidion model.

Imports only torch and transformers; the model, its tokenizer and its summarization pipeline are loaded from
this repository as remote code (trust_remote_code=True), so pyramidion_hf need not be installed on the
endpoint.
"""

from typing import Any

import torch
from transformers import pipeline


class EndpointHandler:
    """`EndpointHandler(path)({"inputs": text | [texts], "parameters": {...}})` -> [{"summary_text": str}]."""

    def __init__(self, path: str = "") -> None:
        device = 0 if torch.cuda.is_available() else -1
        self.summarizer = pipeline("summarization", model=path or ".", trust_remote_code=True, device=device)

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
        outputs = self.summarizer(documents, **parameters)
        return [{"summary_text": item["summary_text"]} for item in _flatten(outputs)]


def _flatten(outputs: Any) -> list[dict[str, Any]]:
    """Flatten the pipeline's per-document lists (one entry per returned sequence) into one list of dicts."""
    if isinstance(outputs, dict):
        return [outputs]
    return [item for output in outputs for item in _flatten(output)]
