"""PyramidionConfig validation, forward/backward semantics, save/load, ties, outputs, attention backends."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import random_batch, tiny_config, tiny_model
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from pyramidion_hf import (
    PyramidionConfig,
    PyramidionForConditionalGeneration,
    PyramidionModel,
    PyramidionPreTrainedModel,
)
from pyramidion_hf.modeling.modeling_pyramidion import PyramidionEncoderOutput, PyramidionSeq2SeqLMOutput

VOCAB = 64


def _labels(batch: int, length: int = 6, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(4, VOCAB, (batch, length), generator=gen)
    labels[:, -1] = 2
    return labels


# ------------------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------------------


def test_config_defaults_are_table2_transpooler():
    config = PyramidionConfig()
    assert config.model_type == "pyramidion"
    assert (config.max_position_embeddings, config.encoder_lengths, config.block_size) == (
        2048,
        [2048, 512],
        512,
    )
    assert (config.d_model, config.encoder_ffn_dim, config.decoder_layers) == (512, 2048, 2)
    assert config.encoder_layers == config.num_hidden_layers == 2
    assert config.pooling_layers == [1]
    assert config.hidden_size == 512 and config.num_attention_heads == 8
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id, config.decoder_start_token_id) == (
        1,
        0,
        2,
        2,
    )
    assert config.tie_word_embeddings and config.use_cache and config.is_encoder_decoder
    assert config.custom_pipelines["summarization"]["impl"] == "pipeline_summarization.SummarizationPipeline"
    # generate() sizes the decoder cache from the decoder view of the config
    assert tiny_config(decoder_layers=3).get_text_config(decoder=True).num_hidden_layers == 3
    assert tiny_config(encoder_layers=2).encoder_layers == 2  # BART-style configs may repeat the value


@pytest.mark.parametrize(
    ("lengths", "expected"),
    [
        ([2048, 512], [1]),
        ([512, 512], [0]),
        ([2048, 2048], []),
        ([2048, 512, 128, 128], [1, 2]),
        ([1024, 512], [0, 1]),
    ],
)
def test_pooling_layers_follow_encoder_lengths(lengths, expected):
    assert PyramidionConfig(encoder_lengths=lengths).pooling_layers == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(encoder_lengths=[]), "encoder_lengths is empty"),
        (dict(encoder_lengths=[64, 0]), "must be positive"),
        (dict(encoder_lengths=[32, 48]), "k > n"),
        (dict(encoder_lengths=[128, 16]), "max_position_embeddings"),
        (dict(block_size=0), "block_size"),
        (dict(block_size=12), "must divide"),
        (dict(block_size=128), "must divide"),
        (dict(encoder_attention_heads=3), "divisible by encoder_attention_heads"),
        (dict(decoder_attention_heads=3), "divisible by decoder_attention_heads"),
        (dict(scorer="attention"), "linear, nonlinear, power"),
        (dict(topk="sparsemax"), "successive_halving, hard, iterative"),
        (dict(encoder_attention="linformer"), "dot, efficient, lsh"),
        (dict(decoder_position_embeddings="rotary"), "none, sinusoidal, sinusoidal_pegasus, learned"),
        (dict(topk_weighting="softmax"), "sigmoid, peaked"),
        (dict(activation_function="swishy"), "activation"),
        (dict(scorer="power", encoder_attention="efficient"), "encoder_attention='dot'"),
        (dict(scorer="embedding", scorer_embedding_index=16), "scorer_embedding_index"),
        (dict(funnel_upsample=True, encoder_lengths=[64, 64]), "funnel_upsample"),
        (dict(topk_temperature=0.0), "topk_temperature"),
        (dict(dropout=1.0), "dropout"),
        (dict(encoder_layers=5), "derived from `encoder_lengths`"),
    ],
)
def test_bad_configs_raise_value_errors_that_say_what_to_change(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


def test_fields_edited_after_init_are_checked_when_the_model_is_built():
    config = tiny_config()
    config.encoder_lengths = [64, 128]
    with pytest.raises(ValueError, match="k > n"):
        PyramidionForConditionalGeneration(config)


def test_config_round_trip_keeps_every_field(tmp_path):
    config = tiny_config(encoder_lengths=[32, 16, 8], scorer="nonlinear", topk="hard", normalize_before=True)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["encoder_lengths"] == [32, 16, 8] and "custom_pipelines" in saved
    assert saved["auto_map"]["AutoConfig"] == "configuration_pyramidion.PyramidionConfig"
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, PyramidionConfig)
    assert {**loaded.to_dict(), "_name_or_path": ""} == {**config.to_dict(), "_name_or_path": ""}


@pytest.mark.parametrize("pre_norm", [False, True])
def test_pre_norm_encoders_score_a_normalized_residual_stream(pre_norm: bool):
    """Pre-norm layers leave the residual stream unnormalized: the pooling layers' scorers then read a
    layer-normalized copy (post-norm layers already output normalized vectors)."""
    config = tiny_config(encoder_lengths=[32, 16, 8], normalize_before=pre_norm)
    model = PyramidionForConditionalGeneration(config)
    pooling = list(model.model.encoder.pooling.values())
    assert len(pooling) == 3 and all(p.normalize_scorer_input == pre_norm for p in pooling)


# ------------------------------------------------------------------------------------------------------------
# Forward semantics
# ------------------------------------------------------------------------------------------------------------


def test_encoder_output_shapes_and_pooling_indices_are_document_positions():
    model = tiny_model(encoder_lengths=[32, 16, 8])
    ids, mask = random_batch([64, 40, 12], VOCAB)
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=ids, attention_mask=mask)
    assert isinstance(enc, PyramidionEncoderOutput)
    assert enc.last_hidden_state.shape == (3, 8, 16)
    assert enc.pooled_mask.dtype == torch.bool and enc.pooled_mask.shape == (3, 8)
    assert [t.shape for t in enc.pooling_indices] == [(3, 32), (3, 16), (3, 8)]
    assert [t.shape for t in enc.pooling_weights] == [(3, 32), (3, 16), (3, 8)]
    real = mask.sum(1)
    for layer, (positions, k) in enumerate(zip(enc.pooling_indices, [32, 16, 8], strict=True)):
        for row in range(3):
            kept = positions[row][positions[row] >= 0]
            assert len(kept) == min(k, int(real[row])), (layer, row)
            assert bool((positions[row][len(kept) :] == -1).all())  # masked slots last, marked -1
            assert bool((kept < real[row]).all()), "a pooled vector points at a padding token"
            assert bool((kept[1:] > kept[:-1]).all()), "pooled vectors keep document order"
            if layer > 0:  # later layers select among what the previous layer kept
                assert set(kept.tolist()) <= set(enc.pooling_indices[layer - 1][row].tolist())
    assert enc.pooled_mask.sum(1).tolist() == [8, 8, 8]
    assert torch.isfinite(enc.last_hidden_state).all()


def test_no_pooling_encoder_keeps_input_mask():
    model = tiny_model(encoder_lengths=[64, 64], block_size=None)
    ids, mask = random_batch([30, 20], VOCAB)
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=ids, attention_mask=mask)
    assert enc.last_hidden_state.shape == (2, 30, 16)
    assert torch.equal(enc.pooled_mask, mask.bool())
    assert enc.pooling_indices == ()


def test_blockwise_attention_only_mixes_within_blocks():
    """Without pooling, changing a token in block 2 must not change the outputs of blocks 1 and 3."""
    model = tiny_model(encoder_lengths=[64], block_size=16)
    ids, _ = random_batch([48], VOCAB)
    changed = ids.clone()
    changed[0, 20] = (changed[0, 20] + 1 - 4) % (VOCAB - 4) + 4
    with torch.no_grad():
        a = model.get_encoder()(input_ids=ids).last_hidden_state
        b = model.get_encoder()(input_ids=changed).last_hidden_state
    assert torch.allclose(a[0, :16], b[0, :16]) and torch.allclose(a[0, 32:], b[0, 32:])
    assert not torch.allclose(a[0, 16:32], b[0, 16:32])
    full = tiny_model(encoder_lengths=[64], block_size=None)
    with torch.no_grad():
        a = full.get_encoder()(input_ids=ids).last_hidden_state
        b = full.get_encoder()(input_ids=changed).last_hidden_state
    assert not torch.allclose(a[0, :16], b[0, :16])  # full attention mixes everything


def test_fully_masked_blocks_give_no_nan():
    """A batch padded far beyond one document leaves whole blocks masked; nothing may turn NaN (eager and
    sdpa)."""
    for implementation in ("eager", "sdpa"):
        model = tiny_model(encoder_lengths=[64, 64], attn_implementation=implementation)
        ids, mask = random_batch([64, 5], VOCAB)
        out = model(input_ids=ids, attention_mask=mask, labels=_labels(2))
        assert torch.isfinite(out.encoder_last_hidden_state).all() and torch.isfinite(out.loss)


def test_cross_attention_ignores_padding_and_is_masked_by_pooled_mask():
    """Decoder outputs for a document do not change when the batch adds padding (which changes n, not k)."""
    model = tiny_model()
    ids, mask = random_batch([20], VOCAB)
    padded_ids, padded_mask = random_batch([20], VOCAB, pad_to=64)
    labels = _labels(1)
    with torch.no_grad():
        a = model(input_ids=ids, attention_mask=mask, labels=labels).logits
        b = model(input_ids=padded_ids, attention_mask=padded_mask, labels=labels).logits
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {"encoder_lengths": [64, 16, 16]},
        {"encoder_lengths": [64, 16, 16], "scorer": "mean"},
        {"encoder_lengths": [64, 16, 16], "scorer": "power", "topk": "hard"},
        {"encoder_lengths": [64, 64]},
        {"encoder_lengths": [16, 16], "scorer": "mean", "funnel_upsample": True},
    ],
    ids=["linear", "mean", "power", "blockwise", "funnel"],
)
def test_encoder_skips_columns_that_are_padding_in_every_row(overrides):
    """A batch padded to 64 tokens whose documents have 12 and 9 runs every encoder layer on 12 columns (also
    after pooling to k=16, where 12 slots at most are real), with the outputs and shapes of the full-width
    computation (which output_hidden_states=True still runs)."""
    model = tiny_model(**overrides)
    ids, mask = random_batch([12, 9], VOCAB, pad_to=64)
    widths = []
    hooks = [
        layer.register_forward_hook(lambda module, args, out: widths.append(args[0].shape[1]))
        for layer in model.get_encoder().layers
    ]
    with torch.no_grad():
        trimmed = model(input_ids=ids, attention_mask=mask, labels=_labels(2))
        assert widths == [12] * len(model.get_encoder().layers)
        widths.clear()
        full = model(input_ids=ids, attention_mask=mask, labels=_labels(2), output_hidden_states=True)
    for hook in hooks:
        hook.remove()
    assert widths[0] == 64
    assert full.encoder_hidden_states[0].shape[1] == 64
    assert trimmed.encoder_last_hidden_state.shape == full.encoder_last_hidden_state.shape
    assert torch.equal(trimmed.encoder_pooled_mask, full.encoder_pooled_mask)
    real = trimmed.encoder_pooled_mask
    assert torch.allclose(
        trimmed.encoder_last_hidden_state[real], full.encoder_last_hidden_state[real], atol=1e-5
    )
    for a, b in zip(trimmed.encoder_pooling_indices, full.encoder_pooling_indices, strict=True):
        assert torch.equal(a, b)
    assert torch.allclose(trimmed.logits, full.logits, atol=1e-5)


def test_funnel_upsample_outputs_input_length_and_mask():
    model = tiny_model(encoder_lengths=[16, 16], scorer="mean", funnel_upsample=True)
    ids, mask = random_batch([64, 33], VOCAB)
    encoder = model.get_encoder()
    captured = {}
    hook = encoder.pooling["0"].register_forward_hook(lambda m, args, out: captured.update(pre_pool=args[0]))
    with torch.no_grad():
        enc = encoder(input_ids=ids, attention_mask=mask)
    hook.remove()
    assert enc.last_hidden_state.shape == (2, 64, 16)
    assert torch.equal(enc.pooled_mask, mask.bool())
    # upsampled = repeat(pooled, window) + pre-pooling states: the pooled part is constant over each window
    pooled_part = enc.last_hidden_state - captured["pre_pool"]
    window = pooled_part[0].view(16, 4, 16)  # 64 real tokens, k=16: windows of 4
    assert torch.allclose(window, window[:, :1].expand_as(window), atol=1e-5)
    assert not torch.allclose(window[0, 0], window[1, 0])
    assert enc.pooling_indices[0][0].tolist() == list(range(0, 64, 4))
    assert enc.pooling_indices[0][1].tolist()[:11] == list(range(0, 33, 3))  # 33 real tokens: windows of 3


def test_power_scorer_uses_attention_received():
    model = tiny_model(encoder_lengths=[32, 16], scorer="power", topk="hard")
    ids, mask = random_batch([64, 50], VOCAB)
    encoder = model.get_encoder()
    received = {}
    hook = encoder.pooling["0"].register_forward_hook(lambda m, args, out: received.update(args=args))
    with torch.no_grad():
        enc = encoder(input_ids=ids, attention_mask=mask)
    hook.remove()
    attention_received = received["args"][3]
    assert attention_received.shape == (2, 64)
    # each real query of a 16-token block spreads probability 1 over the block's keys, for each of the 2 heads
    totals = attention_received[1, :48].view(3, 16).sum(1)
    assert torch.allclose(totals, torch.full((3,), 2 * 16.0), atol=1e-4)
    # hard top-k on those scores keeps the most-attended tokens of the first layer
    top = attention_received[0].topk(32).indices.sort().values
    assert enc.pooling_indices[0][0].tolist() == top.tolist()


def test_efficient_attention_matches_reference():
    from pyramidion_hf.modeling.attention import efficient_attention

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 2, 5, 4).unbind(0)
    key_mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    out = efficient_attention(q, k, v, key_mask, 0.0, False)
    for b in range(2):
        n = int(key_mask[b].sum())
        ref = q[b].softmax(-1) @ (k[b, :, :n].softmax(-2).transpose(-1, -2) @ v[b, :, :n])
        assert torch.allclose(out[b].transpose(0, 1), ref, atol=1e-6)


def test_decoder_positions_change_outputs_only_when_enabled():
    ids, mask = random_batch([30], VOCAB)
    labels = torch.full((1, 5), 10)  # the same token at every step: only positions tell the steps apart
    logits = {}
    for kind in ("none", "sinusoidal", "learned"):
        model = tiny_model(decoder_position_embeddings=kind)
        with torch.no_grad():
            logits[kind] = model(input_ids=ids, attention_mask=mask, decoder_input_ids=labels).logits[0]
    assert torch.allclose(logits["none"][1], logits["none"][2], atol=1e-5)
    assert not torch.allclose(logits["sinusoidal"][1], logits["sinusoidal"][2], atol=1e-4)
    assert not torch.allclose(logits["learned"][1], logits["learned"][2], atol=1e-4)


def test_eager_and_sdpa_agree():
    ids, mask = random_batch([64, 23], VOCAB)
    outs = []
    for implementation in ("eager", "sdpa"):
        model = tiny_model(attn_implementation=implementation)
        assert model.config._attn_implementation == implementation
        with torch.no_grad():
            outs.append(model(input_ids=ids, attention_mask=mask, labels=_labels(2)))
    assert torch.allclose(outs[0].logits, outs[1].logits, atol=1e-5)
    assert torch.equal(outs[0].encoder_pooling_indices[0], outs[1].encoder_pooling_indices[0])


def test_tuple_and_dict_outputs_agree():
    model = tiny_model(encoder_lengths=[32, 16])
    ids, mask = random_batch([64, 30], VOCAB)
    labels = _labels(2)
    with torch.no_grad():
        as_dict = model(input_ids=ids, attention_mask=mask, labels=labels)
        as_tuple = model(input_ids=ids, attention_mask=mask, labels=labels, return_dict=False)
    assert isinstance(as_dict, PyramidionSeq2SeqLMOutput) and isinstance(as_tuple, tuple)
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected)
    for a, b in zip(as_tuple, expected, strict=True):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
    assert torch.equal(as_tuple[0], as_dict.loss) and torch.equal(as_tuple[1], as_dict.logits)
    # encoder tuples feed back into the model
    enc_tuple = model.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=False)
    with torch.no_grad():
        again = model(encoder_outputs=enc_tuple, attention_mask=mask, labels=labels)
    assert torch.allclose(again.logits, as_dict.logits)
    base = PyramidionModel(model.config).eval()
    assert isinstance(base(input_ids=ids, attention_mask=mask, return_dict=False), tuple)


def test_output_attentions_and_hidden_states_shapes():
    model = tiny_model(encoder_lengths=[32, 16], attn_implementation="eager")
    ids, mask = random_batch([64, 40], VOCAB)
    with torch.no_grad():
        out = model(
            input_ids=ids,
            attention_mask=mask,
            labels=_labels(2),
            output_attentions=True,
            output_hidden_states=True,
        )
    assert [h.shape[1] for h in out.encoder_hidden_states] == [64, 32, 16]
    assert out.encoder_attentions[0].shape == (2, 4, 2, 16, 16)  # (B, blocks, heads, block, block)
    assert out.encoder_attentions[1].shape == (2, 2, 2, 16, 16)
    assert out.cross_attentions[0].shape == (2, 2, 6, 16)
    assert out.decoder_attentions[0].shape == (2, 2, 6, 6)
    assert len(out.decoder_hidden_states) == 3
    assert torch.allclose(out.cross_attentions[0].sum(-1), torch.ones(2, 2, 6))


@pytest.mark.parametrize("block_size", [16, None], ids=["blockwise", "full"])
def test_returned_attentions_are_the_tensors_the_output_was_computed_from(block_size):
    """As in BART, retain_grad() on returned attention probabilities gives their gradient (not None)."""
    model = tiny_model(encoder_lengths=[32, 16], block_size=block_size, attn_implementation="eager").train()
    ids, mask = random_batch([64, 40], VOCAB)
    out = model(input_ids=ids, attention_mask=mask, labels=_labels(2), output_attentions=True)
    for attentions in (out.encoder_attentions, out.decoder_attentions, out.cross_attentions):
        attentions[0].retain_grad()
    out.loss.backward()
    for attentions in (out.encoder_attentions, out.decoder_attentions, out.cross_attentions):
        assert attentions[0].grad is not None and attentions[0].grad.abs().sum() > 0
    expected = (2, 2, 64, 64) if block_size is None else (2, 4, 2, 16, 16)
    assert out.encoder_attentions[0].shape == expected


def test_loss_is_token_cross_entropy_and_honours_num_items_in_batch():
    model = tiny_model()
    ids, mask = random_batch([64, 30], VOCAB)
    labels = _labels(2)
    labels[1, 3:] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    reference = torch.nn.functional.cross_entropy(
        out.logits.view(-1, VOCAB), labels.view(-1), ignore_index=-100
    )
    assert torch.allclose(out.loss, reference)
    summed = model(
        input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=torch.tensor(20)
    ).loss
    assert torch.allclose(summed, reference * 9 / 20)
    decoder_inputs = model.prepare_decoder_input_ids_from_labels(labels)
    assert decoder_inputs[:, 0].tolist() == [2, 2] and decoder_inputs[1, 4:].tolist() == [1, 1]


# ------------------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------------------


def test_too_long_empty_and_mismatched_inputs_raise():
    model = tiny_model()
    too_long, _ = random_batch([65], VOCAB)
    with pytest.raises(ValueError, match="truncate it to 64 tokens"):
        model(input_ids=too_long, labels=_labels(1))
    ids, mask = random_batch([10, 10], VOCAB)
    mask[1] = 0
    with pytest.raises(ValueError, match=r"Rows \[1\] .* empty documents"):
        model(input_ids=ids, attention_mask=mask, labels=_labels(2))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(input_ids=ids, attention_mask=mask[:, :5], labels=_labels(2))
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model.get_encoder()(input_ids=None)
    enc = model.get_encoder()(input_ids=ids[:1])
    with pytest.raises(ValueError, match="pooled_mask"):
        model.model.decoder(
            input_ids=_labels(1),
            encoder_hidden_states=enc.last_hidden_state,
            encoder_attention_mask=torch.ones(1, 3, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="max_target_positions"):
        tiny_model(decoder_position_embeddings="learned", max_target_positions=4)(
            input_ids=ids[:1], labels=_labels(1, length=6)
        )


# ------------------------------------------------------------------------------------------------------------
# Training: every variant trains a step with finite gradients on every parameter
# ------------------------------------------------------------------------------------------------------------

VARIANTS = {
    "vanilla": dict(encoder_lengths=[64, 64], block_size=None),
    "blockwise": dict(encoder_lengths=[64, 64]),
    "transpooler": dict(),
    "pyramidion": dict(encoder_lengths=[64, 32, 16]),
    "efficient": dict(encoder_lengths=[64, 16], encoder_attention="efficient"),
    "efficient-full": dict(encoder_lengths=[64, 64], block_size=None, encoder_attention="efficient"),
    "funnel": dict(encoder_lengths=[16, 16], scorer="mean"),
    "funnel-upsample": dict(encoder_lengths=[16, 16], scorer="mean", funnel_upsample=True),
    "power-like": dict(encoder_lengths=[32, 16], scorer="power", topk="hard"),
    "pre-norm": dict(normalize_before=True),
    "no-layernorm-embedding": dict(layernorm_embedding=False, scale_embedding=False),
    "learned-decoder-positions": dict(decoder_position_embeddings="learned"),
    "no-decoder-positions": dict(decoder_position_embeddings="none"),
    "untied": dict(tie_word_embeddings=False),
    "peaked-unsorted": dict(topk_weighting="peaked", topk_sort=False, topk_temperature=0.5),
}
SCORERS = ["linear", "nonlinear", "power", "embedding", "random", "index", "mean", "max"]
TOPKS = ["successive_halving", "hard", "iterative"]


def _train_step(model: PyramidionForConditionalGeneration) -> float:
    model.train()
    ids, mask = random_batch([64, 37, 9], VOCAB, seed=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(input_ids=ids, attention_mask=mask, labels=_labels(3)).loss
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
    optimizer.step()
    return loss.item()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_trains_a_step(variant):
    model = tiny_model(dropout=0.1, **VARIANTS[variant])
    assert torch.isfinite(torch.tensor(_train_step(model)))


@pytest.mark.parametrize("topk", TOPKS)
@pytest.mark.parametrize("scorer", SCORERS)
def test_every_scorer_and_topk_trains_a_step(scorer, topk):
    model = tiny_model(encoder_lengths=[32, 16], scorer=scorer, topk=topk)
    _train_step(model)
    if scorer in ("linear", "nonlinear") and topk != "hard":  # soft top-k trains the scorer
        grads = [p.grad.abs().sum() for p in model.model.encoder.pooling["0"].parameters()]
        assert sum(grads) > 0


def test_activation_checkpointing_gives_same_loss_and_gradients():
    ids, mask = random_batch([64, 30], VOCAB)
    labels = _labels(2)
    results = []
    for checkpointing in (False, True):
        model = tiny_model(encoder_lengths=[32, 16], dropout=0.1)
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.model.encoder.layers[0].gradient_checkpointing
        torch.manual_seed(5)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert torch.allclose(results[0][0], results[1][0])
    for name, grad in results[0][1].items():
        assert torch.allclose(grad, results[1][1][name], atol=1e-6), name


# ------------------------------------------------------------------------------------------------------------
# Save / load, Auto classes, tied weights
# ------------------------------------------------------------------------------------------------------------


def test_save_load_is_exact_and_auto_classes_resolve(tmp_path):
    model = tiny_model(encoder_lengths=[32, 16], scorer="nonlinear")
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "configuration_pyramidion.py",
        "modeling_pyramidion.py",
        "pooling.py",
        "topk.py",
        "pipeline_summarization.py",
    } <= files
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_pyramidion.PyramidionConfig",
        "AutoModel": "modeling_pyramidion.PyramidionModel",
        "AutoModelForSeq2SeqLM": "modeling_pyramidion.PyramidionForConditionalGeneration",
    }
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is PyramidionForConditionalGeneration
    reference = model.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    ids, mask = random_batch([64, 20], VOCAB)
    with torch.no_grad():
        assert torch.equal(
            model(input_ids=ids, attention_mask=mask, labels=_labels(2)).logits,
            loaded(input_ids=ids, attention_mask=mask, labels=_labels(2)).logits,
        )
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is PyramidionModel
    assert torch.equal(base.encoder.embed_tokens.weight, model.model.encoder.embed_tokens.weight)
    assert isinstance(base, PyramidionPreTrainedModel)


@pytest.mark.parametrize("tie", [True, False])
def test_tied_weights_survive_reload_and_training(tmp_path, tie):
    model = tiny_model(tie_word_embeddings=tie)
    model.save_pretrained(tmp_path)
    loaded = PyramidionForConditionalGeneration.from_pretrained(tmp_path)
    embeddings = [
        loaded.model.encoder.embed_tokens.weight,
        loaded.model.decoder.embed_tokens.weight,
        loaded.lm_head.weight,
    ]
    if tie:
        assert all(w.data_ptr() == embeddings[0].data_ptr() for w in embeddings)
        _train_step(loaded)
        assert all(torch.equal(w, embeddings[0]) for w in embeddings)
        assert loaded.lm_head.weight is loaded.model.encoder.embed_tokens.weight
        assert loaded.get_input_embeddings() is loaded.model.encoder.embed_tokens
    else:
        assert len({w.data_ptr() for w in embeddings}) == 3
        for w, ref in zip(
            embeddings,
            [
                model.model.encoder.embed_tokens.weight,
                model.model.decoder.embed_tokens.weight,
                model.lm_head.weight,
            ],
            strict=True,
        ):
            assert torch.equal(w, ref)


def test_learns_a_selection_task_on_cpu():
    """Copy the one "key" token (ids 4-11) hidden among 31 distractors (ids 12-23). With blocks of one token
    the first layer cannot move the key's information elsewhere, so pooling 32 -> 8 must learn to keep the key
    itself."""
    torch.manual_seed(0)
    model = PyramidionForConditionalGeneration(
        tiny_config(
            vocab_size=24,
            max_position_embeddings=32,
            encoder_lengths=[32, 8],
            block_size=1,
            d_model=32,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            decoder_layers=1,
            init_std=32**-0.5,
        )
    )
    gen = torch.Generator().manual_seed(0)

    def batch(size: int = 32):
        ids = torch.randint(12, 24, (size, 32), generator=gen)
        spots, keys = (
            torch.randint(0, 32, (size,), generator=gen),
            torch.randint(4, 12, (size,), generator=gen),
        )
        ids[torch.arange(size), spots] = keys
        return ids, torch.stack([keys, torch.full_like(keys, 2)], dim=1), spots

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(120):
        ids, labels, _ = batch()
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.2 * losses[0], losses
    model.eval()
    ids, labels, spots = batch(100)
    with torch.no_grad():
        kept = model(input_ids=ids, labels=labels).encoder_pooling_indices[0]
        generated = model.generate(ids, max_new_tokens=2, do_sample=False)
    assert (kept == spots[:, None]).any(dim=1).float().mean() > 0.9  # chance: 8 / 32
    assert (generated[:, 1] == labels[:, 0]).float().mean() > 0.9
