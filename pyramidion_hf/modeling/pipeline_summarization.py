"""Summarization pipeline for encoder-decoder models (transformers 5 removed `pipeline("summarization")`).

Direct use: `SummarizationPipeline(model=model, tokenizer=tokenizer)`. From a saved or Hub folder whose config
names it in `custom_pipelines`: `pipeline("summarization", model=folder, trust_remote_code=True)`.
Travels as Hub remote code: imports only torch and transformers.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Pipeline


class SummarizationPipeline(Pipeline):
    """Summarize documents: `pipe(text | list[str], max_new_tokens=..., num_beams=...)`.

    A document gives `[{"summary_text": str}]`; a list of documents gives one `{"summary_text": str}` each (a
    list of them each when `num_return_sequences > 1`); `return_tensors=True` adds `summary_token_ids`.
    For a model in memory, `pipeline("long-document-summarization", model=model, tokenizer=tokenizer)` builds
    it (after `import pyramidion_hf`); a saved folder also answers to "summarization" and
    "text2text-generation" with `trust_remote_code=True`.

    Inputs are truncated to the model's input length (`config.max_position_embeddings`, or the tokenizer's
    `model_max_length` if smaller) unless `truncation=False`; generation keyword arguments go to `generate()`.
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False
    _pipeline_calls_generate = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.tokenizer is None:
            raise ValueError(
                "SummarizationPipeline needs a tokenizer: pass tokenizer=... or save one with the model."
            )
        if not self.model.config.is_encoder_decoder:
            raise ValueError(
                f"{type(self.model).__name__} is not an encoder-decoder model; use text-generation."
            )
        vocab_size = getattr(self.model.config, "vocab_size", None)
        if isinstance(vocab_size, int) and len(self.tokenizer) > vocab_size:
            raise ValueError(
                f"The tokenizer has {len(self.tokenizer)} tokens but the model's vocabulary has "
                f"{vocab_size}: use the tokenizer the model was trained with (or resize the model's token "
                "embeddings)."
            )
        # Encoders count document positions from the first token: pad batches on the right.
        self.tokenizer.padding_side = "right"

    def _sanitize_parameters(
        self,
        truncation: bool | None = None,
        max_input_length: int | None = None,
        clean_up_tokenization_spaces: bool | None = None,
        skip_special_tokens: bool | None = None,
        return_tensors: bool | None = None,
        return_text: bool | None = None,
        **generate_kwargs: Any,
    ) -> tuple[dict, dict, dict]:
        preprocess_params: dict[str, Any] = {}
        if truncation is not None:
            preprocess_params["truncation"] = truncation
        if max_input_length is not None:
            preprocess_params["max_input_length"] = max_input_length
        postprocess_params: dict[str, Any] = {}
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        if skip_special_tokens is not None:
            postprocess_params["skip_special_tokens"] = skip_special_tokens
        if return_tensors is not None:
            postprocess_params["return_tensors"] = return_tensors
        if return_text is not None:
            postprocess_params["return_text"] = return_text
        return preprocess_params, generate_kwargs, postprocess_params

    def _input_length(self) -> int:
        """Longest input the model accepts: config.max_position_embeddings capped by
        tokenizer.model_max_length."""
        limits = [
            getattr(self.model.config, "max_position_embeddings", None),
            self.tokenizer.model_max_length,
        ]
        limits = [n for n in limits if isinstance(n, int) and 0 < n < 10**9]
        if not limits:
            raise ValueError(
                "Cannot tell the model's input length: pass max_input_length=... to the pipeline call."
            )
        return min(limits)

    def __call__(self, inputs: str | list[str], **kwargs: Any) -> list[dict[str, str]] | list:
        """Summaries of one document (`[{"summary_text": ...}]`) or of a list of documents (one each)."""
        if isinstance(inputs, list) and not inputs:
            return []
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and all(len(r) == 1 for r in result):
            return [r[0] for r in result]
        return result

    def preprocess(
        self, inputs: str, truncation: bool = True, max_input_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        if not isinstance(inputs, str):
            raise ValueError(
                f"SummarizationPipeline expects a str or a list of str, got {type(inputs).__name__}."
            )
        if not inputs.strip():
            raise ValueError("Got an empty document (no text to summarize): pass a non-empty string.")
        max_length = max_input_length if max_input_length is not None else self._input_length()
        return self.tokenizer(inputs, truncation=truncation, max_length=max_length, return_tensors="pt")

    def _forward(
        self, model_inputs: dict[str, torch.Tensor], **generate_kwargs: Any
    ) -> dict[str, torch.Tensor]:
        in_b = model_inputs["input_ids"].shape[0]
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        output = self.model.generate(
            input_ids=model_inputs["input_ids"],
            attention_mask=model_inputs.get("attention_mask"),
            **generate_kwargs,
        )
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        out_b = sequences.shape[0]
        return {"output_ids": sequences.reshape(in_b, out_b // in_b, *sequences.shape[1:])}

    def postprocess(
        self,
        model_outputs: dict[str, torch.Tensor],
        clean_up_tokenization_spaces: bool = False,
        skip_special_tokens: bool = True,
        return_tensors: bool = False,
        return_text: bool = True,
    ) -> list[dict[str, Any]]:
        """One record per returned sequence: `summary_text` (unless `return_text=False`) and, with
        `return_tensors=True`, `summary_token_ids` (as transformers 4's summarization pipeline did)."""
        if not (return_text or return_tensors):
            raise ValueError("return_text=False and return_tensors=False would return nothing: keep one.")
        records = []
        for ids in model_outputs["output_ids"][0]:
            record: dict[str, Any] = {}
            if return_tensors:
                record["summary_token_ids"] = ids
            if return_text:
                record["summary_text"] = self.tokenizer.decode(
                    ids,
                    skip_special_tokens=skip_special_tokens,
                    clean_up_tokenization_spaces=clean_up_tokenization_spaces,
                )
            records.append(record)
        return records
