"""bf16, the fast path on CPUs with AMX / AVX512-BF16 and on GPUs: autocast training steps for every variant
and bf16-weight generation agree with fp32; the top-k tournament keeps fp32 inside."""

from __future__ import annotations

import pytest
import torch
from conftest import random_batch, tiny_model

from pyramidion_hf.modeling.precision import (
    FP32_CHUNK_ROWS,
    REFINED_CANDIDATES,
    fp32_linear,
    lm_head_logits,
    refined_decode_logits,
)
from pyramidion_hf.topk import successive_halving_topk

VOCAB = 64
VARIANTS = {
    "vanilla": dict(encoder_lengths=[64, 64], block_size=None),
    "blockwise": dict(encoder_lengths=[64, 64]),
    "transpooler": dict(encoder_lengths=[64, 16]),
    "pyramidion": dict(encoder_lengths=[64, 32, 16]),
    "pre-norm": dict(encoder_lengths=[64, 32, 16], normalize_before=True),
    "nonlinear": dict(scorer="nonlinear"),
    "power-like": dict(scorer="power", topk="hard"),
    "funnel-like": dict(scorer="mean", funnel_upsample=True),
    "iterative": dict(topk="iterative"),
    "peaked": dict(topk_weighting="peaked"),
    "efficient": dict(encoder_lengths=[64, 64], encoder_attention="efficient", local_attention_heads=1),
    "lsh": dict(
        encoder_lengths=[64, 64], encoder_attention="lsh", lsh_bucket_size=8, local_attention_heads=1
    ),
}


def _step(model, ids, mask, labels, autocast: bool):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach().float(), grads


@pytest.mark.parametrize("name", list(VARIANTS))
def test_autocast_bf16_training_step_matches_fp32(name):
    model = tiny_model(seed=1, **VARIANTS[name]).train()
    model.config.dropout = 0.0
    ids, mask = random_batch([64, 40], VOCAB, seed=2)
    labels = random_batch([9, 9], VOCAB, seed=3)[0]
    torch.manual_seed(0)
    fp32_loss, fp32_grads = _step(model, ids, mask, labels, autocast=False)
    torch.manual_seed(0)
    bf16_loss, bf16_grads = _step(model, ids, mask, labels, autocast=True)
    assert torch.isfinite(bf16_loss) and abs(bf16_loss - fp32_loss) < 0.05 * fp32_loss
    assert fp32_grads.keys() == bf16_grads.keys()
    for key, grad in bf16_grads.items():
        assert torch.isfinite(grad).all(), key
    flat32 = torch.cat([g.flatten() for g in fp32_grads.values()])
    flat16 = torch.cat([g.float().flatten() for g in bf16_grads.values()])
    assert torch.nn.functional.cosine_similarity(flat32, flat16, dim=0) > 0.95


def test_bf16_scores_run_the_tournament_in_fp32_and_return_bf16_gradients():
    hidden = torch.randn(2, 32, 8, dtype=torch.bfloat16, requires_grad=True)
    scores = (torch.arange(32.0) / 1000).repeat(2, 1).to(torch.bfloat16)  # bf16 ties: spacing 1e-3 rounds
    scores.requires_grad_(True)
    out = successive_halving_topk(hidden, scores, 4)
    reference = successive_halving_topk(hidden.detach().float(), scores.detach().float(), 4)
    assert out.hidden.dtype == torch.bfloat16 and out.scores.dtype == torch.bfloat16
    assert torch.equal(out.indices, reference.indices)  # same tournament as in fp32
    out.hidden.float().sum().backward()
    assert scores.grad.dtype == torch.bfloat16 and torch.isfinite(scores.grad).all()
    assert scores.grad.abs().sum() > 0


def test_bf16_weights_generate_like_fp32_on_a_trained_enough_model():
    model = tiny_model(seed=0)
    ids, mask = random_batch([64, 30, 9], VOCAB)
    with torch.no_grad():
        fp32 = model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :6]).logits
        bf16_model = tiny_model(seed=0).to(torch.bfloat16)
        bf16 = bf16_model(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :6]).logits
        tokens = bf16_model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, num_beams=2)
    assert bf16.dtype == torch.float32  # bf16 weights, fp32 logits (see test_lm_head_logits_*)
    assert (bf16.float().argmax(-1) == fp32.argmax(-1)).float().mean() > 0.8
    assert torch.allclose(bf16.float(), fp32, atol=0.15 * fp32.abs().max().item())
    assert tokens.shape[0] == 3


@pytest.mark.parametrize("scorer", ["linear", "nonlinear"])
def test_scorers_compute_fp32_scores_under_autocast(scorer):
    """Under autocast the scorer runs in its fp32 master weights, and with bf16 weights in fp32 from them
    (bf16 scores would tie and flip picks)."""
    from pyramidion_hf.modeling.pooling import RepresentationPooling

    pool = RepresentationPooling(16, 4, scorer=scorer)
    hidden = torch.randn(2, 32, 16).to(torch.bfloat16)  # what a bf16 layer hands over
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = pool.score(hidden)
    assert scores.dtype == torch.float32
    assert torch.allclose(scores, pool.score(hidden.float()), atol=1e-6)
    rounded = pool.to(torch.bfloat16)
    scores = rounded.score(hidden)  # bf16 weights (bf16 inference): still fp32 scores
    assert scores.dtype == torch.float32
    tolerance = 1e-6 if scorer == "linear" else 5e-2  # nonlinear: its d x d layer runs in the model's dtype
    assert torch.allclose(scores, rounded.float().score(hidden.float()), atol=tolerance)


def _head_whose_bf16_logits_tie() -> torch.nn.Linear:
    """A (2, 4) head giving logits 10 and 10.015625 for hidden (1, 1, 0, 0): 0.016 apart near 10, where bf16's
    spacing is 0.0625, so in bf16 they round to one value (every weight is exact in bf16)."""
    head = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[10.0, 0, 0, 0], [10.0, 0.015625, 0, 0]]))
    return head


def test_lm_head_logits_of_bf16_weights_are_fp32_and_do_not_tie():
    """bf16 logits tie and argmax takes the first; the fp32 logits of the same bf16 weights keep the order."""
    head = _head_whose_bf16_logits_tie().to(torch.bfloat16)
    hidden = torch.tensor([[[1.0, 1.0, 0, 0]]], dtype=torch.bfloat16)
    assert head(hidden)[0, 0, 0] == head(hidden)[0, 0, 1]  # tied in bf16
    logits = lm_head_logits(head, hidden)
    assert logits.dtype == torch.float32
    assert logits[0, 0].tolist() == [10.0, 10.015625] and logits.argmax(-1).item() == 1


def test_decode_step_logits_of_bf16_weights_do_not_tie_either():
    """A decode step (one position, no gradients) takes the refined path, which resolves the same tie."""
    head = _head_whose_bf16_logits_tie().to(torch.bfloat16)
    with torch.no_grad():
        logits = lm_head_logits(head, torch.tensor([[[1.0, 1.0, 0, 0]]], dtype=torch.bfloat16))
    assert logits.dtype == torch.float32
    assert logits[0, 0].tolist() == [10.0, 10.015625] and logits.argmax(-1).item() == 1


@pytest.mark.parametrize("bias", [False, True])
def test_refined_decode_logits_are_exact_at_the_top_and_bf16_accurate_elsewhere(bias):
    torch.manual_seed(0)
    vocab = 3 * REFINED_CANDIDATES
    head = torch.nn.Linear(96, vocab, bias=bias).to(torch.bfloat16)
    hidden = torch.randn(5, 1, 96, dtype=torch.bfloat16)
    exact = fp32_linear(head, hidden)
    refined = refined_decode_logits(head, hidden)
    assert refined.dtype == torch.float32 and refined.shape == (5, 1, vocab)
    top = exact.topk(REFINED_CANDIDATES // 2, dim=-1).indices  # well inside the refined candidates
    torch.testing.assert_close(refined.gather(-1, top), exact.gather(-1, top), rtol=1e-6, atol=1e-5)
    assert torch.equal(refined.topk(8, dim=-1).indices, exact.topk(8, dim=-1).indices)
    rest = (refined - exact).abs() / exact.abs().clamp(min=1e-3)
    assert rest.max() <= 2**-8 and 0 < (refined != exact).sum()  # the tail keeps bf16 values


def test_a_loss_over_one_label_position_sees_exact_logits_not_the_refined_decode_step():
    """Evaluation with labels of one position and no gradients looks like a decode step; its loss must
    still see every logit exact, since cross-entropy sums over the whole vocabulary."""
    model = tiny_model(seed=0, vocab_size=3 * REFINED_CANDIDATES).to(torch.bfloat16).eval()
    ids, mask = random_batch([40, 17], 3 * REFINED_CANDIDATES)
    labels = ids[:, :1].contiguous()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        starts = model.prepare_decoder_input_ids_from_labels(labels)
        hidden = model.model(input_ids=ids, attention_mask=mask, decoder_input_ids=starts).last_hidden_state
    exact = fp32_linear(model.lm_head, hidden)
    assert not torch.equal(exact, refined_decode_logits(model.lm_head, hidden))  # the two paths differ here
    torch.testing.assert_close(out.logits, exact, rtol=0, atol=0)
    expected = torch.nn.functional.cross_entropy(exact.flatten(0, 1), labels.flatten())
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=1e-6)


def test_fp32_islands_run_inside_accelerate_hooks_of_an_offloaded_bf16_model():
    """Under `cpu_offload` (as under a `device_map` with offload) the weights are on the meta device until
    the module's hook loads them; the fp32 scorer and logits go through that hook like `layer(hidden)`."""
    from accelerate import cpu_offload

    vocab = 3 * REFINED_CANDIDATES
    model = tiny_model(seed=0, vocab_size=vocab).to(torch.bfloat16)
    ids, mask = random_batch([40, 17], vocab)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        generated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
        cpu_offload(model, execution_device=torch.device("cpu"))
        assert model.lm_head.weight.device.type == "meta"
        offloaded = model(input_ids=ids, attention_mask=mask).logits
        regenerated = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(offloaded, logits) and torch.equal(regenerated, generated)


def test_lm_head_logits_under_autocast_are_fp32_without_gradients_and_bf16_in_a_training_step():
    """Generation and evaluation under autocast (the Trainer's --bf16 predict) pick tokens from fp32 logits
    of the fp32 weights; a training step keeps autocast's bf16 logits, which tie here."""
    head = _head_whose_bf16_logits_tie()
    hidden = torch.tensor([[[1.0, 1.0, 0, 0]]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        step = lm_head_logits(head, hidden)
        with torch.no_grad():
            picked = lm_head_logits(head, hidden)
    assert step.dtype == torch.bfloat16 and step[0, 0, 0] == step[0, 0, 1]
    assert picked.dtype == torch.float32 and picked[0, 0].tolist() == [10.0, 10.015625]


def test_fp32_linear_converts_large_weights_chunk_by_chunk_to_the_same_result():
    layer = torch.nn.Linear(48, 2 * FP32_CHUNK_ROWS + 37).to(torch.bfloat16)  # 3 chunks, the last partial
    hidden = torch.randn(2, 5, 48, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fp32 also inside an enclosing autocast
        out = fp32_linear(layer, hidden)
    reference = torch.nn.functional.linear(hidden.float(), layer.weight.float(), layer.bias.float())
    assert out.dtype == torch.float32 and out.shape == (2, 5, 2 * FP32_CHUNK_ROWS + 37)
    torch.testing.assert_close(out, reference, rtol=1e-6, atol=1e-5)


def test_model_logits_are_fp32_with_bf16_weights_or_autocast_evaluation_and_bf16_in_training():
    model = tiny_model(seed=0)
    ids, mask = random_batch([40, 17], VOCAB)
    with torch.no_grad():
        reference = model.to(torch.bfloat16).float()(input_ids=ids, attention_mask=mask).logits
        bf16 = model.to(torch.bfloat16)(input_ids=ids, attention_mask=mask)
        head = bf16.logits
    assert head.dtype == torch.float32
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state  # bf16
    torch.testing.assert_close(head, lm_head_logits(model.lm_head, hidden), rtol=0, atol=0)
    assert (head.argmax(-1) == reference.argmax(-1)).float().mean() > 0.9
    model.float().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=ids, attention_mask=mask, labels=ids[:, :8].contiguous())
        with torch.no_grad():
            evaluated = model.eval()(input_ids=ids, attention_mask=mask)
            hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.logits.dtype == torch.bfloat16 and out.loss.dtype == torch.float32
    assert evaluated.logits.dtype == torch.float32  # the fp32 head over autocast's hidden states
    expected = torch.nn.functional.linear(hidden.float(), model.lm_head.weight)
    torch.testing.assert_close(evaluated.logits, expected, rtol=0, atol=0)
