"""SummarizationPipeline: direct use, batching, generate kwargs, truncation, and loading from a folder."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model
from transformers import pipeline

from pyramidion_hf import SummarizationPipeline

DOCS = [
    " ".join(f"w{(7 * i) % 60}" for i in range(50)),
    " ".join(f"w{(3 * i + 5) % 60}" for i in range(20)),
    "w1 w2 w3",
]


def _model():
    # a seed whose random summaries differ between the three documents (asserted below)
    return tiny_model(seed=0)


def _reference(model, tokenizer, doc: str, **generate_kwargs) -> str:
    inputs = tokenizer(doc, truncation=True, max_length=64, return_tensors="pt")
    ids = model.generate(**inputs, **generate_kwargs)
    return tokenizer.decode(ids[0], skip_special_tokens=True)


def test_direct_pipeline_matches_generate(tokenizer):
    model = _model()
    summarize = SummarizationPipeline(model=model, tokenizer=tokenizer, device=-1)
    single = summarize(DOCS[0], max_new_tokens=8, num_beams=2)
    assert isinstance(single, list) and list(single[0]) == ["summary_text"]
    assert single[0]["summary_text"] == _reference(model, tokenizer, DOCS[0], max_new_tokens=8, num_beams=2)
    many = summarize(DOCS, max_new_tokens=8)
    assert [r["summary_text"] for r in many] == [
        _reference(model, tokenizer, d, max_new_tokens=8) for d in DOCS
    ]
    assert len({r["summary_text"] for r in many}) > 1
    batched = summarize(DOCS, max_new_tokens=8, batch_size=3)
    assert batched == many
    several = summarize(DOCS[:2], max_new_tokens=4, num_beams=3, num_return_sequences=2)
    assert [len(r) for r in several] == [2, 2]


def test_pipeline_truncates_long_documents(tokenizer):
    model = _model()
    summarize = SummarizationPipeline(model=model, tokenizer=tokenizer, device=-1, max_new_tokens=5)
    long_doc = " ".join(f"w{i % 60}" for i in range(300))
    assert summarize(long_doc)[0]["summary_text"] == _reference(model, tokenizer, long_doc, max_new_tokens=5)
    with pytest.raises(ValueError, match="truncate"):
        summarize(long_doc, truncation=False)


def test_pipeline_from_saved_folder_with_remote_code(tmp_path, tokenizer):
    model = _model()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    summarize = pipeline("summarization", model=str(tmp_path), trust_remote_code=True, device=-1)
    assert type(summarize).__name__ == "SummarizationPipeline"
    out = summarize(DOCS, max_new_tokens=6, num_beams=2)
    assert [r["summary_text"] for r in out] == [
        _reference(model, tokenizer, d, max_new_tokens=6, num_beams=2) for d in DOCS
    ]
    assert torch.equal(summarize.model.lm_head.weight, model.lm_head.weight)


def test_in_memory_model_builds_the_pipeline_under_the_registered_task(tokenizer):
    model = _model()
    summarize = pipeline("long-document-summarization", model=model, tokenizer=tokenizer, device=-1)
    assert isinstance(summarize, SummarizationPipeline)
    assert summarize(DOCS[0], max_new_tokens=6)[0]["summary_text"] == _reference(
        model, tokenizer, DOCS[0], max_new_tokens=6
    )


@pytest.mark.parametrize("task", ["text2text-generation", "long-document-summarization"])
def test_saved_folder_answers_to_every_task_name_it_declares(tmp_path, tokenizer, task):
    model = _model()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    summarize = pipeline(task, model=str(tmp_path), trust_remote_code=True, device=-1)
    assert type(summarize).__name__ == "SummarizationPipeline"
    assert summarize(DOCS[1], max_new_tokens=6)[0]["summary_text"] == _reference(
        model, tokenizer, DOCS[1], max_new_tokens=6
    )


def test_return_tensors_gives_the_token_ids_as_transformers_4_did(tokenizer):
    model = _model()
    summarize = SummarizationPipeline(model=model, tokenizer=tokenizer, device=-1)
    inputs = tokenizer(DOCS[0], truncation=True, max_length=64, return_tensors="pt")
    expected = model.generate(**inputs, max_new_tokens=6)[0]
    both = summarize(DOCS[0], max_new_tokens=6, return_tensors=True)[0]
    assert torch.equal(both["summary_token_ids"], expected)
    assert both["summary_text"] == tokenizer.decode(expected, skip_special_tokens=True)
    ids_only = summarize(DOCS[0], max_new_tokens=6, return_tensors=True, return_text=False)[0]
    assert list(ids_only) == ["summary_token_ids"]
    with pytest.raises(ValueError, match="would return nothing"):
        summarize(DOCS[0], max_new_tokens=6, return_text=False)
