"""sdpa, flex_attention and flash_attention_2 give eager's results (blockwise encoder, causal self-attention,
cross-attention over the pooled vectors), and the decode step compiles with fullgraph=True on a static cache.

The comparisons run on the GPU where there is one (flex_attention compiled), else on the CPU, where
flex_attention runs unfused (torch.compile off: what is tested is the masks we hand it; torch 2.13's
inductor fails to build its CPU kernel for some of these shapes, and each build takes ~30 s).
flash_attention_2 needs CUDA and the flash_attn package and skips without them (benchmarks/gpu_check.sh runs
this file on a lent GPU)."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest
import torch
from conftest import random_batch, tiny_config, tiny_model
from torch.nn.attention.flex_attention import flex_attention
from transformers import CompileConfig, EncoderDecoderCache, StaticCache
from transformers.integrations import flex_attention as flex_integration

from pyramidion_hf.modeling.attention import decoder_sdpa_kernels
from pyramidion_hf.modeling.inputs import block_attention_mask

VOCAB = 64
# d_model 32 over 2 heads: CUDA's compiled flex_attention needs a head dimension of at least 16
VARIANTS = {
    "pyramidion": dict(encoder_lengths=[64, 32, 16], block_size=16, d_model=32),
    "vanilla": dict(encoder_lengths=[64, 64], block_size=None, d_model=32),
    "pre-norm": dict(encoder_lengths=[64, 16], normalize_before=True, d_model=32),
}
CUDA_FLASH = torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None
# where implementations are compared: on a GPU machine (benchmarks/gpu_check.sh) the GPU, with flex compiled
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture
def unfused_flex_on_cpu(monkeypatch):
    """flex_attention without torch.compile on a CPU-only machine (see the module docstring): transformers'
    wrapper then hands out torch's plain flex_attention instead of its compiled one."""
    if not torch.cuda.is_available():
        monkeypatch.setattr(flex_integration.WrappedFlexAttention, "__call__", lambda self: flex_attention)


def _inputs(device: str = "cpu") -> dict[str, torch.Tensor]:
    """A right-padded batch (one document shorter than a block, so whole blocks are padding) with decoder
    inputs whose second row is padded too."""
    ids, mask = random_batch([64, 37, 9], VOCAB, seed=3)
    decoder = torch.randint(4, VOCAB, (3, 7), generator=torch.Generator().manual_seed(4))
    decoder_mask = torch.ones_like(decoder)
    decoder_mask[1, 5:] = 0
    batch = dict(
        input_ids=ids, attention_mask=mask, decoder_input_ids=decoder, decoder_attention_mask=decoder_mask
    )
    return {key: value.to(device) for key, value in batch.items()}


def _outputs(implementation: str, variant: str, device: str = "cpu", dtype=torch.float32):
    model = tiny_model(seed=1, attn_implementation=implementation, **VARIANTS[variant]).to(device, dtype)
    assert model.config._attn_implementation == implementation
    batch = _inputs(device)
    with torch.no_grad():
        logits = model(**batch).logits
        tokens = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            max_new_tokens=6,
            min_new_tokens=6,
        )
    real = batch["decoder_attention_mask"].bool()
    return logits[real].float(), tokens


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("implementation", ["sdpa", "flex_attention"])
def test_implementation_matches_eager(implementation, variant, unfused_flex_on_cpu):
    eager_logits, eager_tokens = _outputs("eager", variant, DEVICE)
    logits, tokens = _outputs(implementation, variant, DEVICE)
    assert torch.allclose(logits, eager_logits, atol=1e-4), (logits - eager_logits).abs().max()
    assert torch.equal(tokens, eager_tokens)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_blocks_of_padding_alone_attend_over_their_own_padding(implementation):
    """A document shorter than the batch's longest leaves blocks of padding alone. Their queries get keys:
    a query row with none made CUDA's sdpa backward (bf16) return NaN gradients for every projection. Real
    queries still see exactly the real keys of their block."""
    config = tiny_config(attn_implementation=implementation)
    _, mask = random_batch([64, 9], VOCAB)
    block_mask = mask.bool().reshape(8, 16)  # row 2's blocks 2..4 hold no real token
    blocks = torch.zeros(8, 16, config.d_model)
    visible = block_attention_mask(config, blocks, block_mask, output_attentions=False)
    if visible.dtype != torch.bool:  # eager's additive form
        visible = visible == 0
    visible = visible[:, 0]  # (blocks, query, key)
    assert visible.any(dim=-1).all()
    real = block_mask.any(dim=-1)
    assert real.tolist() == [True] * 5 + [False] * 3
    assert torch.equal(visible[real], block_mask[real][:, None, :].expand(-1, 16, -1))


def test_decoder_leaves_cudnn_sdpa_out_on_cuda_only():
    """cuDNN's sdpa builds a plan per new key length, and a dynamic cache's grows every step: a decoder
    forward on CUDA runs without it (a stand-in with is_cuda here); on the CPU torch keeps its choice."""
    cudnn = torch.backends.cuda.cudnn_sdp_enabled()
    with decoder_sdpa_kernels(torch.zeros(1)):
        assert torch.backends.cuda.cudnn_sdp_enabled() == cudnn
    with decoder_sdpa_kernels(SimpleNamespace(is_cuda=True)):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
        assert torch.backends.cuda.math_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == cudnn


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch 2.13's FlexAttention has no backward on CPU")
def test_flex_attention_trains_on_cuda():
    model = tiny_model(seed=1, attn_implementation="flex_attention", **VARIANTS["pyramidion"]).cuda().train()
    batch = _inputs("cuda")
    labels = batch.pop("decoder_input_ids").masked_fill(batch.pop("decoder_attention_mask") == 0, -100)
    loss = model(**batch, labels=labels).loss
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and len(grads) > 10 and all(torch.isfinite(g).all() for g in grads)


def test_attention_probabilities_need_eager_or_sdpa(unfused_flex_on_cpu):
    sdpa = tiny_model(seed=1, attn_implementation="sdpa")
    eager = tiny_model(seed=1, attn_implementation="eager")
    batch = _inputs()
    with torch.no_grad():
        got, want = (m(**batch, output_attentions=True) for m in (sdpa, eager))
    for name in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
        for a, b in zip(getattr(got, name), getattr(want, name), strict=True):
            assert torch.allclose(a, b, atol=1e-6)
    flex = tiny_model(seed=1, attn_implementation="flex_attention")
    with pytest.raises(ValueError, match="returns no attention probabilities: load the model with"):
        flex(**batch, output_attentions=True)


def test_flash_attention_is_declared():
    from pyramidion_hf import PyramidionForConditionalGeneration

    cls = PyramidionForConditionalGeneration
    assert cls._supports_flash_attn and cls._supports_flex_attn and cls._supports_sdpa
    assert cls._can_compile_fullgraph


@pytest.mark.skipif(not CUDA_FLASH, reason="flash_attention_2 needs CUDA and the flash_attn package")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_flash_attention_matches_sdpa_on_cuda(variant):
    sdpa_logits, sdpa_tokens = _outputs("sdpa", variant, "cuda", torch.bfloat16)
    logits, tokens = _outputs("flash_attention_2", variant, "cuda", torch.bfloat16)
    assert torch.allclose(logits, sdpa_logits, atol=0.1, rtol=0.05)
    assert (tokens == sdpa_tokens).float().mean() > 0.8


def _static_cache(model, length: int, pooled: int) -> EncoderDecoderCache:
    config = model.config
    return EncoderDecoderCache(
        StaticCache(config=config, max_cache_len=length), StaticCache(config=config, max_cache_len=pooled)
    )


def test_decode_step_compiles_fullgraph_and_matches():
    """Prefill eagerly, then decode token by token with torch.compile(fullgraph=True) (the eager backend:
    tracing finds every graph break or data-dependent branch; inductor is measured in decode_cache.py)."""
    model = tiny_model(seed=1, **VARIANTS["pyramidion"])
    batch = _inputs()
    encoder = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    tokens = batch["decoder_input_ids"]
    pooled = encoder.last_hidden_state.shape[1]
    compiled = torch.compile(model, fullgraph=True, backend="eager", dynamic=False)
    with torch.no_grad():
        full = model(encoder_outputs=encoder, decoder_input_ids=tokens).logits
        cache = _static_cache(model, 16, pooled)
        steps = [
            model(
                encoder_outputs=encoder, decoder_input_ids=tokens[:, :1], cache=cache, use_cache=True
            ).logits
        ]
        for t in range(1, tokens.shape[1]):
            step = compiled(
                encoder_outputs=encoder, decoder_input_ids=tokens[:, t : t + 1], cache=cache, use_cache=True
            )
            steps.append(step.logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_generate_compiles_the_decode_step_on_request():
    model = tiny_model(seed=1, **VARIANTS["pyramidion"])
    batch = _inputs()
    inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    compile_config = CompileConfig(fullgraph=True, backend="eager", dynamic=False)
    compile_config._compile_all_devices = True  # transformers compiles on accelerators only unless asked
    kwargs = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False)
    with torch.no_grad():
        dynamic = model.generate(**inputs, **kwargs)
        compiled = model.generate(
            **inputs, **kwargs, cache_implementation="static", compile_config=compile_config
        )
    assert hasattr(model, "_compiled_call")  # generate() took the compiled path
    assert torch.equal(compiled, dynamic)
