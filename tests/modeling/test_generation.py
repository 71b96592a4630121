"""generate(): caches change nothing, padding changes nothing, beams and sampling work on pooled encoders."""

from __future__ import annotations

import pytest
import torch
from conftest import random_batch, tiny_model
from transformers import EncoderDecoderCache

VOCAB = 64
VARIANTS = {
    "transpooler": dict(),
    "pyramidion": dict(encoder_lengths=[32, 16, 8]),
    "vanilla": dict(encoder_lengths=[64, 64], block_size=None),
    "funnel-upsample": dict(encoder_lengths=[16, 16], scorer="mean", funnel_upsample=True),
    "power-hard": dict(encoder_lengths=[32, 16], scorer="power", topk="hard"),
    "efficient": dict(encoder_attention="efficient"),
    "pre-norm-learned-positions": dict(normalize_before=True, decoder_position_embeddings="learned"),
    "no-decoder-positions": dict(decoder_position_embeddings="none"),
    "deeper-decoder": dict(decoder_layers=3),  # cache layers sized from the decoder, not the encoder
}
MODES = {
    "greedy": dict(do_sample=False),
    "beam": dict(do_sample=False, num_beams=3),
    "sampling": dict(do_sample=True, top_k=0, temperature=2.0),
    "beam-sampling": dict(do_sample=True, num_beams=2, temperature=2.0),
    "static-cache": dict(do_sample=False, cache_implementation="static"),
    "beam-static-cache": dict(do_sample=False, num_beams=3, cache_implementation="static"),
}


def _sensitive_model(**overrides):
    """A seeded random model whose greedy summaries differ between documents (some seeds collapse to one
    token)."""
    ids, mask = random_batch([64, 37, 12, 5], VOCAB, seed=9)
    for seed in range(10):
        model = tiny_model(seed=seed, **overrides)
        outputs = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, min_new_tokens=6)
        if len({tuple(row.tolist()) for row in outputs}) > 2:
            return model
    raise AssertionError(f"no seed gives input-dependent outputs for {overrides}")


def _generate(model, ids, mask, seed=0, **kwargs):
    torch.manual_seed(seed)
    return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, min_new_tokens=10, **kwargs)


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_same_tokens_with_and_without_cache(variant, mode):
    model = _sensitive_model(**VARIANTS[variant])
    ids, mask = random_batch([64, 30, 11], VOCAB)
    cached = _generate(model, ids, mask, **MODES[mode])
    uncached = _generate(model, ids, mask, use_cache=False, **MODES[mode])
    assert cached.shape == (3, 11)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("mode", ["greedy", "beam"])
@pytest.mark.parametrize("variant", ["transpooler", "pyramidion", "funnel-upsample", "power-hard", "vanilla"])
def test_padded_batch_generates_what_documents_generate_alone(variant, mode):
    """Lengths: full (64), odd (37), shorter than k=16 (12), shorter than one block of 16 (5)."""
    model = _sensitive_model(**VARIANTS[variant])
    lengths = [64, 37, 12, 5]
    ids, mask = random_batch(lengths, VOCAB, seed=4)
    batched = _generate(model, ids, mask, **MODES[mode])
    assert len({tuple(row.tolist()) for row in batched}) > 1, "outputs do not depend on the input"
    for row, length in enumerate(lengths):
        alone = _generate(model, ids[row : row + 1, :length], mask[row : row + 1, :length], **MODES[mode])
        assert torch.equal(batched[row], alone[0]), (row, batched[row], alone[0])
    # and the same with extra padding columns beyond the longest document
    wide_ids, wide_mask = random_batch([37, 12], VOCAB, seed=4, pad_to=64)
    narrow_ids, narrow_mask = random_batch([37, 12], VOCAB, seed=4)
    assert torch.equal(
        _generate(model, wide_ids, wide_mask, **MODES[mode]),
        _generate(model, narrow_ids, narrow_mask, **MODES[mode]),
    )


def test_generation_outputs_expose_pooled_encoder_and_cache():
    model = tiny_model(encoder_lengths=[32, 16], attn_implementation="eager")
    ids, mask = random_batch([64, 20], VOCAB)
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=4,
        min_new_tokens=4,
        num_beams=2,
        return_dict_in_generate=True,
        output_attentions=True,
        output_scores=True,
    )
    assert out.sequences.shape == (2, 5)
    assert isinstance(out.cache, EncoderDecoderCache)
    # cross-attention runs over the 16 pooled vectors, not the 64 input tokens
    assert out.cross_attentions[0][0].shape[-1] == 16
    assert out.cache.cross_attention_cache.layers[0].keys.shape[2] == 16
    encoder_outputs = model.get_encoder()(input_ids=ids, attention_mask=mask)
    again = model.generate(
        encoder_outputs=encoder_outputs, attention_mask=mask, max_new_tokens=4, min_new_tokens=4, num_beams=2
    )
    assert torch.equal(again, out.sequences)


def test_num_return_sequences_and_eos_stop():
    model = tiny_model()
    ids, mask = random_batch([40, 20], VOCAB)
    out = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=6, num_beams=3, num_return_sequences=3
    )
    assert out.shape[0] == 6
    first = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1)
    forced = model.generate(
        input_ids=ids, attention_mask=mask, max_new_tokens=8, eos_token_id=int(first[0, 1]), pad_token_id=1
    )
    assert forced[0, 1] == first[0, 1] and bool((forced[0, 2:] == 1).all())  # stopped at "eos", then padded


def test_learned_decoder_positions_limit_generation_length():
    model = tiny_model(decoder_position_embeddings="learned", max_target_positions=6)
    ids, mask = random_batch([20], VOCAB)
    assert model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, min_new_tokens=5).shape == (
        1,
        6,
    )
    with pytest.raises(ValueError, match="max_target_positions"):
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8)
