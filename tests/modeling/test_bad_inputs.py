"""Bad input to the model, its top-k operators, its config and its pipeline: a clear ValueError saying what
to do, or a correct result; never NaN, silent truncation or a raw torch error."""

from __future__ import annotations

import pytest
import torch
from conftest import random_batch, tiny_config, tiny_model

from pyramidion_hf import SummarizationPipeline
from pyramidion_hf.topk import hard_topk, iterative_softmax_topk, successive_halving_topk

OPERATORS = [successive_halving_topk, hard_topk, iterative_softmax_topk]
VOCAB = 64


def _problem(seed: int = 0, batch: int = 2, n: int = 12, d: int = 4):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, n, d, generator=gen)
    scores = torch.randn(batch, n, generator=gen)
    mask = torch.ones(batch, n, dtype=torch.bool)
    mask[1, 7:] = False
    return hidden, scores, mask


@pytest.mark.parametrize("operator", OPERATORS)
def test_nan_score_at_a_real_position_is_refused(operator):
    hidden, scores, mask = _problem()
    scores[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN at real \(unmasked\) positions of rows \[1\]"):
        operator(hidden, scores, 4, mask)


@pytest.mark.parametrize("operator", OPERATORS)
def test_nan_at_masked_positions_never_reaches_the_outputs(operator):
    hidden, scores, mask = _problem()
    clean = operator(hidden.clone(), scores.clone(), 4, mask)
    hidden[1, 9] = float("nan")
    hidden[1, 10] = float("inf")
    scores[1, 8] = float("nan")
    dirty = operator(hidden, scores, 4, mask)
    for field in ("hidden", "scores", "weights"):
        assert torch.isfinite(getattr(dirty, field)).all(), field
        assert torch.allclose(getattr(dirty, field), getattr(clean, field), atol=1e-6), field
    assert torch.equal(dirty.indices, clean.indices) and torch.equal(dirty.mask, clean.mask)


def test_masked_nan_rows_get_zero_gradient_and_real_rows_the_usual_one():
    hidden, scores, mask = _problem()
    reference = hidden.clone().requires_grad_(True)
    successive_halving_topk(reference, scores, 4, mask).hidden.sum().backward()
    hidden[1, 9] = float("nan")
    hidden.requires_grad_(True)
    successive_halving_topk(hidden, scores, 4, mask).hidden.sum().backward()
    assert torch.isfinite(hidden.grad).all()
    assert torch.allclose(hidden.grad[mask], reference.grad[mask])


def test_fp16_tied_large_scores_with_the_peaked_weighting_give_finite_score_gradients():
    hidden = torch.randn(2, 16, 8).half()
    scores = torch.full((2, 16), 20.0, dtype=torch.float16)
    scores[:, ::2] += 0.01  # near ties of large scores: d weight / d score ~ base**v is huge
    scores.requires_grad_(True)
    out = successive_halving_topk(hidden, scores, 4, weighting="peaked")
    out.hidden.float().sum().backward()
    assert scores.grad.dtype == torch.float16 and torch.isfinite(scores.grad).all()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(encoder_lengths=[64, 16.5]), "positive integers"),
        (dict(encoder_lengths=[64, "16"]), "positive integers"),
        (dict(pad_token_id=64), r"pad_token_id=64 is not a token id of the vocabulary \[0, vocab_size=64\)"),
        (dict(eos_token_id=[2, 99]), "eos_token_id"),
        (dict(decoder_start_token_id=-1), "decoder_start_token_id"),
        (dict(vocab_size=0), "vocab_size must be a positive int"),
    ],
)
def test_bad_config_values_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_integral_float_lengths_from_json_are_read_as_ints():
    assert tiny_config(encoder_lengths=[64.0, 16.0]).encoder_lengths == [64, 16]


def test_token_ids_outside_the_vocabulary_are_refused_before_the_embedding():
    model = tiny_model()
    ids, mask = random_batch([20, 12], VOCAB)
    for bad in (VOCAB, VOCAB + 5, -3):
        wrong = ids.clone()
        wrong[0, 3] = bad
        with pytest.raises(ValueError, match=rf"input_ids holds token id {bad}, outside the model"):
            model(input_ids=wrong, attention_mask=mask, labels=ids[:, :4])
    labels = ids[:, :4].clone()
    labels[1, 0] = VOCAB
    with pytest.raises(ValueError, match="labels holds token id 64"):
        model(input_ids=ids, attention_mask=mask, labels=labels)
    labels[1, 0] = -100  # ignored positions are fine
    assert torch.isfinite(model(input_ids=ids, attention_mask=mask, labels=labels).loss)


def test_a_document_of_special_tokens_only_is_an_empty_document():
    model = tiny_model()
    ids, mask = random_batch([20, 12], VOCAB)
    ids[1, :12] = torch.tensor([0, 2] + [1] * 10)  # <s> </s> <pad>...
    with pytest.raises(ValueError, match=r"Rows \[1\] of input_ids hold special tokens only"):
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2)


def test_left_padding_is_refused_with_what_to_do():
    model = tiny_model()
    ids, mask = random_batch([20, 12], VOCAB)
    left_ids, left_mask = ids.clone(), mask.clone()
    left_ids[1] = torch.cat([ids[1, 12:], ids[1, :12]])
    left_mask[1] = torch.cat([mask[1, 12:], mask[1, :12]])
    with pytest.raises(ValueError, match=r"Rows \[1\] of the batch are left-padded.*padding_side = 'right'"):
        model.generate(input_ids=left_ids, attention_mask=left_mask, max_new_tokens=2)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_pipeline_refuses_an_empty_document(tokenizer, text):
    summarize = SummarizationPipeline(model=tiny_model(), tokenizer=tokenizer, device=-1)
    with pytest.raises(ValueError, match="empty document"):
        summarize(text, max_new_tokens=4)
    with pytest.raises(ValueError, match="empty document"):
        summarize(["w1 w2", text], max_new_tokens=4)


def test_pipeline_on_an_empty_list_returns_an_empty_list(tokenizer):
    summarize = SummarizationPipeline(model=tiny_model(), tokenizer=tokenizer, device=-1)
    assert summarize([], max_new_tokens=4) == []


def test_pipeline_refuses_a_tokenizer_larger_than_the_vocabulary(tokenizer):
    tokenizer.add_tokens([f"extra{i}" for i in range(10)])
    with pytest.raises(ValueError, match=r"The tokenizer has 74 tokens but the model's vocabulary has 64"):
        SummarizationPipeline(model=tiny_model(), tokenizer=tokenizer, device=-1)
