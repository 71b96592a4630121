"""LSH attention (Reformer) and the local heads of the LSH / efficient encoder attentions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import random_batch, tiny_config, tiny_model

from pyramidion_hf import PyramidionForConditionalGeneration
from pyramidion_hf.modeling.attention import (
    PyramidionEncoderAttention,
    additive_mask,
    eager_attention_forward,
    efficient_attention,
    lsh_attention,
)
from pyramidion_hf.presets import get_preset

VOCAB = 64
LSH = dict(encoder_attention="lsh", lsh_bucket_size=8, lsh_num_hashes=2)


def _inputs(batch=2, heads=3, length=20, dim=4, hashes=3, half_buckets=2, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    qk, value = torch.randn(2, batch, heads, length, dim, generator=gen, dtype=dtype).unbind(0)
    rotations = torch.randn(heads, dim, hashes, half_buckets, generator=gen, dtype=dtype)
    return qk, value, rotations


def _full_attention_without_self(qk, value, key_mask):
    """softmax(q . k/|k|) v over the real keys other than the query itself: (B, n, H, D)."""
    scores = qk @ F.normalize(qk, dim=-1).transpose(-1, -2)
    eye = torch.eye(qk.size(2), dtype=torch.bool)
    scores = scores.masked_fill(eye, -1e30).masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return (scores.softmax(-1) @ value).transpose(1, 2)


def _reference_lsh(qk, value, key_mask, rotations, bucket_size):
    """LSH attention written out position by position (B, n, H, D), from the algorithm's description."""
    batch, heads, length, dim = qk.shape
    out = torch.zeros(batch, length, heads, dim, dtype=qk.dtype)
    for b in range(batch):
        real = [i for i in range(length) if key_mask[b, i]]
        for h in range(heads):
            outs, lses = [], []
            for r in range(rotations.size(2)):
                rotated = qk[b, h] @ rotations[h, :, r]
                bucket = torch.cat([rotated, -rotated], -1).argmax(-1)
                order = sorted(real, key=lambda i: (int(bucket[i]), i))
                out_r, lse_r = torch.zeros(length, dim, dtype=qk.dtype), torch.zeros(length, dtype=qk.dtype)
                for rank, i in enumerate(order):
                    chunk = rank // bucket_size
                    keys = order[max(0, (chunk - 1) * bucket_size) : (chunk + 1) * bucket_size]
                    others = [j for j in keys if j != i]
                    if not others:  # itself only when nothing else is there, and then no weight for this hash
                        out_r[i], lse_r[i] = value[b, h, i], -1e30
                        continue
                    scores = F.normalize(qk[b, h, others], dim=-1) @ qk[b, h, i]
                    out_r[i] = scores.softmax(-1) @ value[b, h, others]
                    lse_r[i] = scores.logsumexp(-1)
                outs.append(out_r)
                lses.append(lse_r)
            weights = torch.stack(lses).softmax(0)
            out[b, :, h] = (torch.stack(outs) * weights[..., None]).sum(0)
    return out


# ------------------------------------------------------------------------------------------------------------
# The kernel
# ------------------------------------------------------------------------------------------------------------


def test_one_chunk_is_full_attention_without_self():
    qk, value, rotations = _inputs()
    key_mask = torch.ones(2, 20, dtype=torch.bool)
    key_mask[1, 13:] = False
    out = lsh_attention(qk, value, key_mask, rotations, bucket_size=32)
    ref = _full_attention_without_self(qk, value, key_mask)
    assert torch.allclose(out[0], ref[0], atol=1e-5)
    assert torch.allclose(out[1, :13], ref[1, :13], atol=1e-5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("bucket_size", [1, 3, 4, 7])
def test_matches_the_position_by_position_reference(bucket_size):
    qk, value, rotations = _inputs(length=15, half_buckets=3)
    key_mask = torch.ones(2, 15, dtype=torch.bool)
    key_mask[0, 11:] = False
    out = lsh_attention(qk, value, key_mask, rotations, bucket_size)
    ref = _reference_lsh(qk, value, key_mask, rotations, bucket_size)
    assert torch.allclose(out[0, :11], ref[0, :11], atol=1e-5)
    assert torch.allclose(out[1], ref[1], atol=1e-5)


def test_a_query_alone_attends_to_itself():
    qk, value, rotations = _inputs(batch=1, length=6)
    key_mask = torch.tensor([[True, False, False, False, False, False]])
    out = lsh_attention(qk, value, key_mask, rotations, bucket_size=2)
    assert torch.allclose(out[0, 0], value[0, :, 0], atol=1e-6)


def test_real_tokens_do_not_depend_on_padding():
    qk, value, rotations = _inputs(batch=1, length=13, half_buckets=3)
    key_mask = torch.ones(1, 13, dtype=torch.bool)
    out = lsh_attention(qk, value, key_mask, rotations, bucket_size=4)
    junk = torch.randn(2, 1, 3, 9, 4)
    padded = lsh_attention(
        torch.cat([qk, junk[0]], 2),
        torch.cat([value, junk[1]], 2),
        F.pad(key_mask, (0, 9), value=False),
        rotations,
        bucket_size=4,
    )
    assert torch.allclose(padded[:, :13], out, atol=1e-6)


def test_gradcheck():
    qk, value, rotations = _inputs(batch=1, heads=2, length=7, dim=3, hashes=2, dtype=torch.float64)
    key_mask = torch.tensor([[True] * 6 + [False]])
    qk.requires_grad_(True)
    value.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda q, v: lsh_attention(q, v, key_mask, rotations, bucket_size=2), (qk, value)
    )


# ------------------------------------------------------------------------------------------------------------
# The encoder attention module: head split, rotations, refusals
# ------------------------------------------------------------------------------------------------------------


def _module(seed=0, **overrides):
    torch.manual_seed(seed)
    config = tiny_config(encoder_attention_heads=4, **overrides)
    config._attn_implementation = "eager"
    return PyramidionEncoderAttention(config, layer_idx=1).eval()


def _reference_split(module, hidden, mask):
    """The module written out: local heads as blockwise dot attention, the others as the pure kernel."""
    batch, length, _ = hidden.shape
    local, heads, dim = module.local_heads, module.num_heads, module.head_dim
    q, v = (p(hidden).view(batch, length, heads, dim).transpose(1, 2) for p in (module.q_proj, module.v_proj))
    parts = []
    if local:
        k = module.k_proj(hidden).view(batch, length, -1, dim).transpose(1, 2)[:, :local]
        block = module.block_size
        blocked = [t[:, :local].unflatten(2, (-1, block)).transpose(1, 2).flatten(0, 1) for t in (q, k, v)]
        block_mask = additive_mask(mask.view(-1, block)[:, None, None, :], hidden.dtype)
        out, _ = eager_attention_forward(module, *blocked, block_mask, scaling=module.scaling)
        parts.append(out.reshape(batch, length, local, dim))
    if local < heads:
        if module.kind == "efficient":
            k = module.k_proj(hidden).view(batch, length, heads, dim).transpose(1, 2)
            parts.append(efficient_attention(q[:, local:], k[:, local:], v[:, local:], mask, 0.0, False))
        else:
            rotations = torch.randn(
                heads - local,
                dim,
                module.num_hashes,
                module.half_buckets,
                generator=torch.Generator().manual_seed(1),
            )
            parts.append(lsh_attention(q[:, local:], v[:, local:], mask, rotations, module.bucket_size))
    return module.out_proj(torch.cat(parts, 2).reshape(batch, length, -1))


@pytest.mark.parametrize(
    "overrides",
    [
        dict(LSH, local_attention_heads=0),
        dict(LSH, local_attention_heads=1),
        dict(LSH, local_attention_heads=4),
        dict(encoder_attention="efficient", local_attention_heads=0),
        dict(encoder_attention="efficient", local_attention_heads=3),
    ],
)
def test_head_split_is_local_heads_then_kernel_heads(overrides):
    module = _module(**overrides)
    hidden = torch.randn(2, 48, 16)
    mask = torch.ones(2, 48, dtype=torch.bool)
    mask[1, 30:] = False
    out, _, _ = module(hidden, mask)
    ref = _reference_split(module, hidden, mask)
    assert torch.allclose(out[0], ref[0], atol=1e-5)
    assert torch.allclose(out[1, :30], ref[1, :30], atol=1e-5)


def test_all_heads_local_equals_blockwise_dot_attention():
    dot = _module(seed=3)
    for kind in ("lsh", "efficient"):
        module = _module(seed=3, encoder_attention=kind, local_attention_heads=4)
        module.load_state_dict(dot.state_dict())
        hidden, mask = torch.randn(2, 40, 16), torch.ones(2, 40, dtype=torch.bool)
        assert torch.allclose(module(hidden, mask)[0], dot(hidden, mask)[0], atol=1e-6)


def test_lsh_heads_have_no_key_projection():
    assert not hasattr(_module(**LSH), "k_proj")
    assert _module(**LSH, local_attention_heads=1).k_proj.weight.shape == (4, 16)  # one head of width 4
    assert _module(encoder_attention="efficient", local_attention_heads=1).k_proj.weight.shape == (16, 16)


def test_rotations_are_fixed_in_eval_and_fresh_in_training():
    module = _module(**LSH)
    hidden, mask = torch.randn(1, 64, 16), torch.ones(1, 64, dtype=torch.bool)
    assert torch.equal(module(hidden, mask)[0], module(hidden, mask)[0])
    module.train()
    assert not torch.allclose(module(hidden, mask)[0], module(hidden, mask)[0])
    # 2 * ceil(n / bucket size) buckets for the layer's full-length input (layer 1 reads 64 vectors)
    assert module.half_buckets == 64 // 8


@pytest.mark.parametrize("kind", ["lsh", "efficient"])
def test_output_attentions_is_refused(kind):
    model = tiny_model(encoder_attention=kind, local_attention_heads=1, lsh_bucket_size=8)
    ids, mask = random_batch([30], VOCAB)
    with pytest.raises(ValueError, match="forms no attention matrix"):
        model(input_ids=ids, attention_mask=mask, labels=ids[:, :4].clone(), output_attentions=True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(LSH, lsh_bucket_size=0), "lsh_bucket_size"),
        (dict(LSH, lsh_num_hashes=0), "lsh_num_hashes"),
        (dict(LSH, local_attention_heads=3), "local_attention_heads"),
        (dict(LSH, local_attention_heads=-1), "local_attention_heads"),
        (dict(local_attention_heads=1), "local_attention_heads applies"),
        (dict(LSH, scorer="power", topk="hard"), "encoder_attention='lsh' never forms"),
    ],
)
def test_bad_lsh_configs_say_what_to_change(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)


# ------------------------------------------------------------------------------------------------------------
# LSH Pyramidion models: training, generation, sdpa, save/load, the paper's presets
# ------------------------------------------------------------------------------------------------------------

MODELS = {
    "lsh": dict(LSH, encoder_lengths=[64, 64]),
    "lsh-local-pooled": dict(LSH, local_attention_heads=1),
    "efficient-local": dict(encoder_attention="efficient", local_attention_heads=1),
}


def _train_and_generate(model: PyramidionForConditionalGeneration, ids, mask) -> torch.Tensor:
    model.train()
    labels = torch.randint(4, VOCAB, (ids.size(0), 5), generator=torch.Generator().manual_seed(0))
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    model.eval()
    return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, min_new_tokens=5)


@pytest.mark.parametrize("variant", sorted(MODELS))
def test_model_trains_a_step_and_generates_independently_of_padding(variant):
    model = tiny_model(dropout=0.1, **MODELS[variant])
    ids, mask = random_batch([64, 37, 9], VOCAB, seed=3)
    batched = _train_and_generate(model, ids, mask)
    for row in range(3):
        alone = model.generate(
            input_ids=ids[row : row + 1, : int(mask[row].sum())], max_new_tokens=5, min_new_tokens=5
        )
        assert torch.equal(alone[0], batched[row])


def test_eager_and_sdpa_local_heads_agree():
    ids, mask = random_batch([64, 40], VOCAB)
    labels = ids[:, :6].clone()
    logits = {}
    for implementation in ("eager", "sdpa"):
        model = tiny_model(attn_implementation=implementation, **LSH, local_attention_heads=1)
        with torch.no_grad():
            logits[implementation] = model(input_ids=ids, attention_mask=mask, labels=labels).logits
    assert torch.allclose(logits["eager"], logits["sdpa"], atol=1e-5)


def test_save_and_reload(tmp_path):
    model = tiny_model(**LSH, local_attention_heads=1)
    ids, mask = random_batch([50, 20], VOCAB)
    labels = ids[:, :6].clone()
    model.save_pretrained(tmp_path)
    loaded = PyramidionForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, labels=labels).logits
        assert torch.equal(loaded(input_ids=ids, attention_mask=mask, labels=labels).logits, expected)


def test_full_size_lsh_preset_builds():
    config = get_preset("table2-10")
    with torch.device("meta"):
        model = PyramidionForConditionalGeneration(config)
    attention = model.model.encoder.layers[0].self_attn
    assert (attention.local_heads, attention.num_hashes, attention.bucket_size) == (2, 4, 64)
    assert attention.half_buckets == 2048 // 64 and attention.k_proj.weight.shape == (128, 512)


SHRUNK = dict(
    vocab_size=VOCAB, d_model=16, encoder_ffn_dim=32, decoder_ffn_dim=32, lsh_bucket_size=8, block_size=32
)


@pytest.mark.parametrize(("name", "length"), [("table2-9", 64), ("table2-10", 128), ("table2-11", 256)])
def test_lsh_presets_train_a_step_and_generate(name, length):
    torch.manual_seed(0)
    config = get_preset(name, max_position_embeddings=length, encoder_lengths=[length, length], **SHRUNK)
    model = PyramidionForConditionalGeneration(config)
    ids, mask = random_batch([length, length // 3], VOCAB)
    assert _train_and_generate(model, ids, mask).shape == (2, 6)
