"""Multiplication counts of a Pyramidion config (paper Table 1, §3.2, §5, Appendix C.2).

``attention_complexity(config, input_length, target_length)`` walks the encoder schedule and the decoder and
counts multiplications (multiply-accumulates: an (a x b) @ (b x c) product is a*b*c) per layer:

Encoder layer attending over n vectors, model width d, H heads, d_h = d / H:
- dot-product attention in blocks of m (``block_size``; the last block is padded, and a sequence shorter than
  a block is one block of its own length, m' = min(m, n)): QK^T and AV, ``2 * ceil(n/m') * m' * m' * d``
  (= 2·n·m·d when m divides n); full attention (``block_size=None``): ``2 * n * n * d``;
- efficient attention (Shen et al., 2021: softmax(K)^T V per head, then Q times that d_h x d_h context):
  ``2 * n * d * d_h`` (Table 1's "n x d x d" with the per-head width), over the whole (block-padded) sequence;
- LSH attention (Reformer; h = ``lsh_num_hashes``, chunks of c = ``lsh_bucket_size``, each chunk of queries
  against itself and the chunk before, m = 2c keys): ``2 * h * ceil(n/c) * c * 2c * d`` (Table 1's
  "m h x n x d"); the hashing (n x d x h x buckets/2) is not counted, as in Table 1;
- with ``local_attention_heads`` (efficient / LSH), those heads' share of d counts as blockwise dot attention
  and the rest as efficient or LSH attention;
- projections Q, K, V, O: ``4 * n * d^2`` (Q, K and V run on the padded blocks, as the model computes them:
  ``(3 * ceil(n/m') * m' + n) * d^2``; LSH heads have no K projection: shared QK); FFN: ``2 * n * d * ffn``;
- pooling scorer on the layer's output (pooling layers only): linear ``n * d``, nonlinear (d x d dense, then
  d -> 1) ``n * d^2 + n * d``; the other scorers and the top-k operators only add and compare (not counted).
A pooling layer outputs ``encoder_lengths[i]`` slots whatever the input length (DESIGN: k slots, some masked),
so every layer after the first pooling runs on a fixed number of vectors.

Decoder layer with t target tokens and k encoder vectors (k = the last encoder length, or the input length
with ``funnel_upsample``):
- self-attention QK^T and AV: ``causal=True`` counts the t(t+1)/2 query-key pairs a causal decoder actually
  uses (what incremental generation with a KV cache computes): ``t * (t + 1) * d``; ``causal=False`` counts
  the full masked t x t products of a teacher-forced forward: ``2 * t * t * d``;
- cross-attention QK^T and AV: ``2 * t * k * d``;
- projections: self Q, K, V, O ``4 * t * d^2``, cross Q, O ``2 * t * d^2``, cross K, V ``2 * k * d^2``; FFN
  ``2 * t * d * ffn``; the LM head ``t * d * vocab`` is reported separately (``lm_head``).

Table 1 writes one product (e.g. vanilla self-attention "n x n x d"); we count both QK^T and AV, a factor 2
that cancels in every ratio.

Reproducing §5 (DeepPyramidion vs deep Blockwise, 8192-token input; see benchmarks/results/complexity.md):
- encoder self-attention 2.46x less (paper: 2.5x), with DeepPyramidion's layers attending over 8192, 8192,
  2048, 512, 512, 512 vectors (see ``pyramidion_hf.presets``);
- decoder cross-attention 16x less (8192 / 512 encoder vectors), at any target length;
- decoder attention multiplications (self + cross, QK^T and AV, causal) 13.0x less at target length t=256 (the
  paper's shorter synthetic decoding length, Table 10): (t(t+1) + 2·t·8192) / (t(t+1) + 2·t·512). The same
  count gives 11.0x at t=512 and 8.5x with full (non-causal) t x t products at t=512. Counting the decoder's
  projections and FFN as well gives only ~4-5x: those do not depend on k except the cross K/V projections.
Appendix C.2 (Table 7 #24 vs Vanilla 8k, #3): encoder self-attention 12.8x less (paper: 13x), decoder
cross-attention 4x less.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .modeling.configuration_pyramidion import PyramidionConfig

__all__ = [
    "ComplexityReport",
    "DecoderLayerCost",
    "EncoderLayerCost",
    "attention_complexity",
    "comparison_table",
    "format_count",
]

TOTAL_KEYS = (
    "encoder_self_attention",
    "encoder_projections",
    "encoder_ffn",
    "encoder_pooling",
    "encoder_total",
    "decoder_self_attention",
    "decoder_cross_attention",
    "decoder_attention",
    "decoder_projections",
    "decoder_ffn",
    "decoder_total",
    "lm_head",
    "total",
)


@dataclasses.dataclass(frozen=True)
class EncoderLayerCost:
    """Multiplications of one encoder layer: attends over ``length`` vectors, outputs ``output_length``."""

    layer: int
    length: int
    output_length: int
    block: int | None  # effective block length m' (None = full attention)
    self_attention: int
    projections: int
    ffn: int
    pooling: int

    @property
    def total(self) -> int:
        return self.self_attention + self.projections + self.ffn + self.pooling


@dataclasses.dataclass(frozen=True)
class DecoderLayerCost:
    """Multiplications of one decoder layer: ``target_length`` queries, ``memory_length`` encoder vectors."""

    layer: int
    target_length: int
    memory_length: int
    self_attention: int
    cross_attention: int
    projections: int
    ffn: int

    @property
    def attention(self) -> int:
        return self.self_attention + self.cross_attention

    @property
    def total(self) -> int:
        return self.self_attention + self.cross_attention + self.projections + self.ffn


@dataclasses.dataclass(frozen=True)
class ComplexityReport:
    """Per-layer multiplication counts and totals for one config at one (input, target) length."""

    input_length: int
    target_length: int
    d_model: int
    causal: bool
    encoder: tuple[EncoderLayerCost, ...]
    decoder: tuple[DecoderLayerCost, ...]
    lm_head: int
    name: str | None = None

    @property
    def encoder_self_attention(self) -> int:
        return sum(layer.self_attention for layer in self.encoder)

    @property
    def encoder_projections(self) -> int:
        return sum(layer.projections for layer in self.encoder)

    @property
    def encoder_ffn(self) -> int:
        return sum(layer.ffn for layer in self.encoder)

    @property
    def encoder_pooling(self) -> int:
        return sum(layer.pooling for layer in self.encoder)

    @property
    def encoder_total(self) -> int:
        return sum(layer.total for layer in self.encoder)

    @property
    def decoder_self_attention(self) -> int:
        return sum(layer.self_attention for layer in self.decoder)

    @property
    def decoder_cross_attention(self) -> int:
        return sum(layer.cross_attention for layer in self.decoder)

    @property
    def decoder_attention(self) -> int:
        """Self- plus cross-attention QK^T and AV: the §5 "multiplications in the decoder" (13x at t=256)."""
        return self.decoder_self_attention + self.decoder_cross_attention

    @property
    def decoder_projections(self) -> int:
        return sum(layer.projections for layer in self.decoder)

    @property
    def decoder_ffn(self) -> int:
        return sum(layer.ffn for layer in self.decoder)

    @property
    def decoder_total(self) -> int:
        """Every decoder-layer multiplication (attention, projections, FFN); the LM head is separate."""
        return sum(layer.total for layer in self.decoder)

    @property
    def memory_length(self) -> int:
        """Number of encoder vectors the decoder cross-attends to."""
        return self.decoder[0].memory_length if self.decoder else 0

    @property
    def total(self) -> int:
        return self.encoder_total + self.decoder_total + self.lm_head

    def totals(self) -> dict[str, int]:
        """All totals by name (``TOTAL_KEYS``)."""
        return {key: getattr(self, key) for key in TOTAL_KEYS}

    def ratio(self, other: ComplexityReport) -> dict[str, float]:
        """``self / other`` for every total: how many times more ``self`` costs (>1: ``other`` is cheaper).

        A total that is zero in both reports gives 1.0; zero only in ``other`` gives ``inf``.
        """
        if not isinstance(other, ComplexityReport):
            raise ValueError(f"ratio() needs another ComplexityReport, got {type(other).__name__}.")
        mine, theirs = self.totals(), other.totals()
        out = {}
        for key in TOTAL_KEYS:
            a, b = mine[key], theirs[key]
            out[key] = (1.0 if a == 0 else math.inf) if b == 0 else a / b
        return out

    def to_markdown(self) -> str:
        """Per-layer markdown table (multiplications, in M/G/T) plus the totals."""
        title = f"{self.name}: " if self.name else ""
        mode = "causal" if self.causal else "full t x t"
        lines = [
            f"**{title}input {self.input_length}, target {self.target_length}, d={self.d_model}, "
            f"decoder self-attention {mode}** (multiplications)",
            "",
            "| layer | vectors | block | self-attn | cross-attn | projections | FFN | pooling |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for e in self.encoder:
            arrow = f"{e.length} -> {e.output_length}" if e.output_length != e.length else f"{e.length}"
            lines.append(
                f"| encoder {e.layer} | {arrow} | {e.block or 'full'} | {format_count(e.self_attention)} "
                f"| - | {format_count(e.projections)} | {format_count(e.ffn)} | {format_count(e.pooling)} |"
            )
        for dl in self.decoder:
            lines.append(
                f"| decoder {dl.layer} | t={dl.target_length}, k={dl.memory_length} | - | "
                f"{format_count(dl.self_attention)} | {format_count(dl.cross_attention)} | "
                f"{format_count(dl.projections)} | {format_count(dl.ffn)} | - |"
            )
        lines += ["", "| total | multiplications |", "| --- | ---: |"]
        lines += [f"| {key} | {format_count(value)} |" for key, value in self.totals().items()]
        return "\n".join(lines)


def format_count(value: float) -> str:
    """Human-readable count: 1.23G, 456.8M, 12.0k."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{suffix}"
    return f"{value:.0f}"


def _attention_cost(config: PyramidionConfig, n: int) -> tuple[int | None, int, int, int]:
    """(effective block, QK^T + AV multiplications, padded length, K projection width) of self-attention over
    n vectors: the local (dot) heads in blocks, the efficient or LSH heads over the whole padded sequence."""
    d, block, kind = config.d_model, config.block_size, config.encoder_attention
    d_head = d // config.encoder_attention_heads
    m = n if block is None else min(block, n)
    padded = math.ceil(n / m) * m
    d_local = d if kind == "dot" else config.local_attention_heads * d_head
    cost = 2 * padded * m * d_local
    if kind == "efficient":
        cost += 2 * padded * (d - d_local) * d_head
    if kind == "lsh":
        c = config.lsh_bucket_size
        cost += 2 * config.lsh_num_hashes * math.ceil(padded / c) * c * 2 * c * (d - d_local)
    return (None if block is None else m), cost, padded, (d_local if kind == "lsh" else d)


def _scorer_cost(scorer: str, n: int, d: int) -> int:
    if scorer == "linear":
        return n * d
    if scorer == "nonlinear":
        return n * d * d + n * d
    return 0


def _encoder_costs(config: PyramidionConfig, input_length: int) -> list[EncoderLayerCost]:
    """Walk the encoder schedule on ``input_length`` tokens: a pooling layer (``config.pooling_layers``)
    outputs its ``encoder_lengths`` entry (k slots, some masked), any other layer the vectors it got."""
    d, ffn = config.d_model, config.encoder_ffn_dim
    pooling = set(config.pooling_layers)
    encoder = []
    n = input_length
    for i, out in enumerate(config.encoder_lengths):
        block, attn, padded, key_width = _attention_cost(config, n)
        out_n = out if i in pooling else n
        encoder.append(
            EncoderLayerCost(
                layer=i,
                length=n,
                output_length=out_n,
                block=block,
                self_attention=attn,
                projections=(2 * padded + n) * d * d + padded * d * key_width,
                ffn=2 * n * d * ffn,
                pooling=_scorer_cost(config.scorer, n, d) if i in pooling else 0,
            )
        )
        n = out_n
    return encoder


def _decoder_costs(config: PyramidionConfig, t: int, k: int, causal: bool) -> tuple[DecoderLayerCost, ...]:
    """Every decoder layer with ``t`` target tokens cross-attending to ``k`` encoder vectors."""
    d = config.d_model
    self_attn = t * (t + 1) * d if causal else 2 * t * t * d
    return tuple(
        DecoderLayerCost(
            layer=i,
            target_length=t,
            memory_length=k,
            self_attention=self_attn,
            cross_attention=2 * t * k * d,
            projections=6 * t * d * d + 2 * k * d * d,
            ffn=2 * t * d * config.decoder_ffn_dim,
        )
        for i in range(config.decoder_layers)
    )


def attention_complexity(
    config: PyramidionConfig,
    input_length: int,
    target_length: int,
    *,
    causal: bool = True,
    name: str | None = None,
) -> ComplexityReport:
    """Count the multiplications of ``config`` (a ``PyramidionConfig``) on one document.

    ``input_length`` tokens (<= ``max_position_embeddings``), ``target_length`` decoder tokens; ``causal``
    selects the decoder self-attention convention (module docstring). Returns per-layer costs and totals.
    """
    for arg, value in (("input_length", input_length), ("target_length", target_length)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value!r}.")
    max_pos = config.max_position_embeddings
    if input_length > max_pos:
        raise ValueError(
            f"input_length={input_length} exceeds the config's max_position_embeddings={max_pos}; "
            f"use a config built for that length (e.g. get_preset(name, max_position_embeddings=..., "
            f"encoder_lengths=[...]))."
        )
    encoder = _encoder_costs(config, input_length)
    k = input_length if config.funnel_upsample else encoder[-1].output_length
    return ComplexityReport(
        input_length=input_length,
        target_length=target_length,
        d_model=config.d_model,
        causal=causal,
        encoder=tuple(encoder),
        decoder=_decoder_costs(config, target_length, k, causal),
        lm_head=target_length * config.d_model * config.vocab_size,
        name=name,
    )


def comparison_table(
    reports: Mapping[str, ComplexityReport] | Iterable[ComplexityReport],
    keys: tuple[str, ...] = (
        "encoder_self_attention",
        "decoder_self_attention",
        "decoder_cross_attention",
        "decoder_attention",
        "decoder_total",
        "total",
    ),
    baseline: str | None = None,
) -> str:
    """Markdown table, one row per report and one column per total; ``(Nx)`` = baseline / row."""
    if not isinstance(reports, Mapping):
        reports = {r.name or f"#{i}": r for i, r in enumerate(reports)}
    unknown = [key for key in keys if key not in TOTAL_KEYS]
    if unknown:
        raise ValueError(f"Unknown total(s) {unknown}; choose from {', '.join(TOTAL_KEYS)}.")
    if baseline is not None and baseline not in reports:
        raise ValueError(f"baseline {baseline!r} is not one of the reports: {', '.join(reports)}.")
    base = reports[baseline].totals() if baseline is not None else None
    header = "| model | vectors attended per encoder layer | decoder k | " + " | ".join(keys) + " |"
    lines = [header, "| --- | --- | ---: | " + " | ".join("---:" for _ in keys) + " |"]
    for label, report in reports.items():
        totals = report.totals()
        cells = []
        for key in keys:
            cell = format_count(totals[key])
            if base is not None and totals[key] > 0:
                cell += f" ({base[key] / totals[key]:.2f}x)"
            cells.append(cell)
        schedule = ", ".join(str(e.length) for e in report.encoder)
        lines.append(f"| {label} | {schedule} | {report.memory_length} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
