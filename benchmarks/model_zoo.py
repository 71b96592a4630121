"""The models of the model benchmark: the two size settings, our presets (incl. the 20 rows of the paper's
Table 2) and the transformers peers at those sizes (random weights, built locally: no Hub), their schedules
rescaled to an input length, and analytic training-memory and FLOP estimates (see bench_models.py)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
from paper_table2 import ROWS

from pyramidion_hf.complexity import attention_complexity
from pyramidion_hf.presets import get_preset


@dataclasses.dataclass(frozen=True)
class Setting:
    """Model sizes shared by our models and the peers, plus each family's sparsity parameters."""

    name: str
    d_model: int
    ffn: int
    encoder_layers: int
    decoder_layers: int
    heads: int = 8
    vocab: int = 32000
    block_size: int = 512  # our blockwise attention
    led_window: int = 512
    longt5_radius: int = 127
    longt5_global_block: int = 16
    pegasus_block: int = 512
    pegasus_global: int = 32
    lsh_bucket: int = 64  # our LSH attention's chunk length (the paper's 64)
    length_divisor: int = 1  # a Table 2 row of n tokens runs at n // length_divisor (tiny: 8)


SETTINGS = {
    "shallow": Setting("shallow", 512, 2048, 2, 2),
    "deep": Setting("deep", 768, 3072, 6, 6),
}


def tiny(setting: Setting) -> Setting:
    """The --quick / test version of a setting: same depth, d=64, FFN 256, 1k vocabulary, blocks of 128."""
    return dataclasses.replace(
        setting,
        name=f"{setting.name} (tiny)",
        d_model=64,
        ffn=256,
        vocab=1000,
        block_size=128,
        led_window=128,
        longt5_radius=31,
        longt5_global_block=16,
        pegasus_block=128,
        pegasus_global=8,
        lsh_bucket=16,
        length_divisor=8,
    )


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A benchmarked model: our preset (family "ours") or a transformers peer, and the settings it runs in."""

    name: str
    label: str
    family: str  # "ours" | "led" | "longt5" | "pegasus-x" | "bart"
    settings: tuple[str, ...]
    preset: dict[str, str] = dataclasses.field(default_factory=dict)  # setting -> preset name (ours)
    full_attention: bool = False  # quadratic in n: extrapolate time and memory with exponent 2
    length: int | None = None  # a paper row: its own input length (the --lengths apply to the others)

    def point_lengths(self, setting: Setting, lengths: list[int]) -> list[int]:
        """The input lengths this model runs at: a paper row only at its own (scaled to the setting)."""
        return lengths if self.length is None else [self.length // setting.length_divisor]


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "vanilla", "Vanilla (full attention)", "ours", ("shallow", "deep"),
            {"shallow": "vanilla", "deep": "deep-blockwise"}, full_attention=True,
        ),
        ModelSpec("blockwise", "Blockwise", "ours", ("shallow", "deep"),
                  {"shallow": "blockwise", "deep": "deep-blockwise"}),
        ModelSpec("transpooler", "Transpooler", "ours", ("shallow",), {"shallow": "transpooler"}),
        ModelSpec("pyramidion", "Pyramidion", "ours", ("shallow",), {"shallow": "pyramidion"}),
        ModelSpec("power", "PoWER-like", "ours", ("shallow",), {"shallow": "power"}),
        ModelSpec("funnel", "Funnel-like", "ours", ("shallow",), {"shallow": "funnel"}),
        ModelSpec("deep-pyramidion", "DeepPyramidion", "ours", ("deep",), {"deep": "deep-pyramidion"}),
        ModelSpec("deep-pyramidion-early", "DeepPyramidion (early pooling)", "ours", ("deep",),
                  {"deep": "deep-pyramidion-early"}),
        ModelSpec("led", "LED (window 512)", "led", ("shallow", "deep")),
        ModelSpec("longt5", "LongT5 TGlobal", "longt5", ("shallow", "deep")),
        ModelSpec("pegasus-x", "PEGASUS-X", "pegasus-x", ("shallow", "deep")),
        ModelSpec("bart", "BART (n positions)", "bart", ("shallow", "deep"), full_attention=True),
        *(
            ModelSpec(row.preset, f"#{row.number} {row.architecture} {row.encoder} (decoder {row.decoder})",
                      "ours", ("shallow",), {"shallow": row.preset}, row.architecture == "Vanilla", row.n)
            for row in ROWS
        ),
    )
}  # fmt: skip
TABLE2_MODELS = [row.preset for row in ROWS]  # the default models of the shallow setting


def rescale_schedule(config: Any, n: int, block_size: int | None = -1) -> Any:
    """A copy of a PyramidionConfig for n-token inputs with the same reduction ratios.

    Each encoder length k becomes round(k * n / max_position_embeddings) (at least 1). block_size: -1 keeps
    the config's, None = full attention; a block larger than n shrinks to n.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"input length must be a positive int, got {n!r}")
    old = config.max_position_embeddings
    new = copy.deepcopy(config)
    new.max_position_embeddings = n
    new.encoder_lengths = [max(1, round(k * n / old)) for k in config.encoder_lengths]
    block = config.block_size if block_size == -1 else block_size
    if block is not None:
        block = min(block, n)
        if n % block:
            raise ValueError(f"block_size={block} must divide the input length n={n}; use a multiple of it")
    new.block_size = block
    new.check_consistency()
    return new


def our_config(spec: ModelSpec, setting: Setting, n: int) -> Any:
    """Our preset for this setting, with the setting's sizes and its schedule rescaled to n tokens."""
    preset = spec.preset[setting.name.split(" ")[0]]
    lsh = {"lsh_bucket_size": setting.lsh_bucket} if get_preset(preset).encoder_attention == "lsh" else {}
    config = get_preset(
        preset,
        **lsh,
        d_model=setting.d_model,
        encoder_ffn_dim=setting.ffn,
        decoder_ffn_dim=setting.ffn,
        decoder_layers=setting.decoder_layers,
        encoder_attention_heads=setting.heads,
        decoder_attention_heads=setting.heads,
        vocab_size=setting.vocab,
    )
    block = None if spec.full_attention else setting.block_size
    return rescale_schedule(config, n, block_size=block)


def peer_config(family: str, setting: Setting, n: int) -> Any:
    """The transformers config of a peer at the setting's sizes for n-token inputs (random weights)."""
    import transformers as tf

    s = setting
    bart_like = dict(
        vocab_size=s.vocab, encoder_layers=s.encoder_layers, decoder_layers=s.decoder_layers,
        encoder_ffn_dim=s.ffn, decoder_ffn_dim=s.ffn, encoder_attention_heads=s.heads,
        decoder_attention_heads=s.heads, d_model=s.d_model, activation_function="relu", dropout=0.1,
        tie_word_embeddings=True,
    )  # fmt: skip
    if family == "led":
        return tf.LEDConfig(
            **bart_like, max_encoder_position_embeddings=n, max_decoder_position_embeddings=1024,
            attention_window=s.led_window,
        )  # fmt: skip
    if family == "longt5":
        return tf.LongT5Config(
            vocab_size=s.vocab, d_model=s.d_model, d_kv=s.d_model // s.heads, d_ff=s.ffn,
            num_layers=s.encoder_layers, num_decoder_layers=s.decoder_layers, num_heads=s.heads,
            encoder_attention_type="transient-global", local_radius=s.longt5_radius,
            global_block_size=s.longt5_global_block, feed_forward_proj="relu", dropout_rate=0.1,
            tie_word_embeddings=True, decoder_start_token_id=0,
        )  # fmt: skip
    if family == "pegasus-x":
        return tf.PegasusXConfig(
            **bart_like, max_position_embeddings=n, block_size=s.pegasus_block,
            num_global_tokens=s.pegasus_global,
        )  # fmt: skip
    if family == "bart":
        return tf.BartConfig(**bart_like, max_position_embeddings=n)
    raise ValueError(f"unknown peer family {family!r}; choose led, longt5, pegasus-x or bart")


def model_class(name: str) -> type:
    """The model class of `name` (ours or the peer's transformers class)."""
    family = MODELS[name].family
    if family == "ours":
        from pyramidion_hf import PyramidionForConditionalGeneration

        return PyramidionForConditionalGeneration
    import transformers as tf

    return {
        "led": tf.LEDForConditionalGeneration,
        "longt5": tf.LongT5ForConditionalGeneration,
        "pegasus-x": tf.PegasusXForConditionalGeneration,
        "bart": tf.BartForConditionalGeneration,
    }[family]


def supports_sdpa(name: str) -> bool:
    return bool(getattr(model_class(name), "_supports_sdpa", False))


def build_model(name: str, setting: Setting, n: int, attn: str = "sdpa") -> torch.nn.Module:
    """Model `name` at `setting` for n-token inputs, on the current default device (random init).

    attn: requested attention implementation; families without it fall back to "eager".
    """
    spec = MODELS[name]
    config = our_config(spec, setting, n) if spec.family == "ours" else peer_config(spec.family, setting, n)
    cls = model_class(name)
    if attn == "sdpa" and not getattr(cls, "_supports_sdpa", False):
        attn = "eager"
    config._attn_implementation = attn
    return cls(config)


def count_parameters(name: str, setting: Setting, n: int) -> int:
    """Parameter count of a model (built on the meta device: no memory, no init time)."""
    with torch.device("meta"):
        model = build_model(name, setting, n)
    return sum(p.numel() for p in model.parameters())


def encoder_layout(name: str, setting: Setting, n: int) -> tuple[list[tuple[int, int]], int]:
    """[(vectors entering the layer, keys each query attends), ...] per encoder layer, and the number of
    encoder vectors the decoder cross-attends to (for the analytic memory estimate); ours from the
    schedule as `pyramidion_hf.complexity` walks it."""
    spec = MODELS[name]
    s = setting
    if spec.family == "ours":
        walk = attention_complexity(our_config(spec, setting, n), n, 1)
        return [(e.length, e.block or e.length) for e in walk.encoder], walk.memory_length
    keys = {
        "led": 2 * s.led_window + 1 + 1,
        "longt5": 3 * (s.longt5_radius + 1) + n // s.longt5_global_block,
        "pegasus-x": s.pegasus_block + s.pegasus_global,
        "bart": n,
    }[spec.family]
    return [(n, min(keys, n))] * s.encoder_layers, n


def estimate_memory(
    name: str,
    setting: Setting,
    n: int,
    batch: int,
    target: int,
    dtype_bytes: int,
    params: int,
    flash: bool = False,
) -> float:
    """A rough training-step memory estimate in bytes (weights, grads, AdamW state, saved activations).

    flash: attention through fused SDPA kernels (CUDA), which never store the attention matrix.
    """
    s = setting
    layers, cross = encoder_layout(name, setting, n)
    state = params * 16  # fp32 weights, grads, two AdamW moments
    act = 0.0
    att = 0 if flash else 3 * s.heads
    for m, keys in layers:
        act += m * (12 * s.d_model + 2 * s.ffn) + att * m * keys
    act += s.decoder_layers * (target * (16 * s.d_model + 2 * s.ffn) + att * target * (target + cross))
    act += 2 * cross * s.d_model * s.decoder_layers + 3 * target * s.vocab
    return state + 1.3 * batch * act * dtype_bytes


def _decoder_token_flops(setting: Setting, self_keys: float, cross: int) -> float:
    """Forward FLOPs of one target token through the decoder and the LM head (the cross-attention keys and
    values of the `cross` encoder vectors excluded: computed once per document)."""
    s = setting
    per_layer = 2 * (6 * s.d_model**2 + 2 * s.d_model * s.ffn) + 4 * s.d_model * (self_keys + cross)
    return s.decoder_layers * per_layer + 2 * s.d_model * s.vocab


def _encoder_flops(name: str, setting: Setting, n: int) -> tuple[float, int]:
    """(forward FLOPs of one document through the encoder plus the decoder's cross-attention key/value
    projections, the number of encoder vectors the decoder attends to)."""
    s = setting
    layers, cross = encoder_layout(name, setting, n)
    flops = sum(
        2 * m * (4 * s.d_model**2 + 2 * s.d_model * s.ffn) + 4 * m * keys * s.d_model for m, keys in layers
    )
    return flops + s.decoder_layers * 4 * cross * s.d_model**2, cross


def estimate_flops(name: str, setting: Setting, n: int, batch: int, target: int) -> float:
    """Analytic matmul FLOPs of one training forward+backward (3x the forward); within 1% of torch's
    FlopCounterMode for the deep Blockwise and DeepPyramidion at 8k (2.90 / 1.45 TFLOP)."""
    encoder, cross = _encoder_flops(name, setting, n)
    return 3 * batch * (encoder + target * _decoder_token_flops(setting, target / 2 + 0.5, cross))


def estimate_generation_flops(
    name: str, setting: Setting, n: int, batch: int, tokens: int
) -> tuple[float, float]:
    """Analytic FLOPs of generating `tokens` tokens for `batch` documents with a KV cache: (the encoder, run
    once, dense matmuls; the token-by-token decoding)."""
    encoder, cross = _encoder_flops(name, setting, n)
    return batch * encoder, batch * tokens * _decoder_token_flops(setting, tokens / 2, cross)
