"""Model time/memory benchmark (paper §5 "Time benchmarks", Tables 2, 3, 10): our variants vs LED, LongT5,
PEGASUS-X and BART at equal sizes, for 2k-64k-token inputs.

    python benchmarks/bench_models.py --quick                      # tiny sizes (< 2 min), checks it works
    python benchmarks/bench_models.py --setting deep --lengths 8192 # one length of the deep comparison
    python benchmarks/bench_models.py --device cuda --dtype bf16 --setting deep --lengths 8192,16384

Settings: shallow = 2+2 layers, d=512, FFN 2048 (Table 5); deep = 6+6 layers, d=768, FFN 3072 (Table 6); 8
heads and a 32k vocabulary everywhere. Our models are the presets of `pyramidion_hf.presets` with their
encoder schedule rescaled to each input length n (`rescale_schedule`: the reduction ratios are kept, e.g.
DeepPyramidion at 16k outputs 16k, 16k, 4k, 1k, 1k, 1k). The peers are built locally from their
`transformers` configs with random weights (no Hub): LED (attention window 512, first token global),
LongT5 transient-global (local radius 127, global blocks of 16), PEGASUS-X (blocks of 512, 32 global tokens)
and BART with n learned positions (full attention).

Per (model, length) point, each in its own child process (isolation, memory high-water, crash containment):
forced generation (min_new_tokens = max_new_tokens, greedy, KV cache), a training step (forward + backward +
AdamW step on random token ids and random 256-token labels), the peak memory of each phase above the
footprint of the built model (CPU: VmHWM, reset through /proc/self/clear_refs; CUDA:
max_memory_allocated), and the FLOPs of one training forward+backward (torch.utils.flop_counter, once per
point; on CPU through SDPA's math backend, whose matmuls it counts, unlike CPU's fused kernel).
Repetitions run round-robin over the models (rep 1 of every point, then rep 2, ...); times are medians over
all timed runs after a warm-up. A point is skipped, with its reason, when an estimate (analytic before any
measurement, extrapolated from the same model's previous length after) says it would not fit in memory or
would exceed the per-point time budget; a failed point (exception, CUDA OOM, killed, timeout) is recorded as
such. Writes models.md, models_time.png, models_memory.png and models_env.json to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_topk  # noqa: E402  (environment recording and the tuned allocator environment)

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1 << 30
HEADLINE_LENGTH = 8192
HEADLINE_PEERS = ("blockwise", "led", "pegasus-x")


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
    )
}  # fmt: skip


# ---- model construction ------------------------------------------------------------------------------------


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
    from pyramidion_hf.presets import get_preset

    config = get_preset(
        spec.preset[setting.name.split(" ")[0]],
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
    encoder vectors the decoder cross-attends to (for the analytic memory estimate)."""
    spec = MODELS[name]
    s = setting
    if spec.family == "ours":
        config = our_config(spec, setting, n)
        ins = [n, *config.encoder_lengths[:-1]]
        block = config.block_size
        layers = [(m, m if block is None else min(block, m)) for m in ins]
        return layers, n if config.funnel_upsample else config.encoder_lengths[-1]
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


# ---- the child process: one (model, length) point ---------------------------------------------------------


def _hwm_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(rf"{field}:\s+(\d+)", text)
    if match is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(match.group(1))


class MemoryMeter:
    """Peak memory of a phase above the footprint once the model is built (CPU: VmHWM, whose high-water mark
    is reset at each phase start; CUDA: max_memory_allocated). On CPU the allocator may keep freed pages of
    an earlier phase: those are reused, so a phase's peak is max(its own need, what earlier phases left)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.reset_ok: bool | None = None
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = _rss_kib("VmRSS") * 1024

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.reset_ok = _hwm_reset()

    def peak(self) -> tuple[int, int]:
        """(peak above the built-model footprint, absolute peak) in bytes."""
        if self.cuda:
            torch.cuda.synchronize()
            top = torch.cuda.max_memory_allocated()
        else:
            top = _rss_kib("VmHWM") * 1024
        return max(0, top - self.base), top  # the kernel's RSS counters lag by a few hundred KiB


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_batch(name: str, vocab: int, n: int, batch: int, target: int, device: torch.device) -> dict:
    """Random token ids (B, n), an all-ones mask, random labels (B, target); LED: first token global."""
    gen = torch.Generator().manual_seed(n + batch)
    out: dict[str, torch.Tensor] = {
        "input_ids": torch.randint(5, vocab, (batch, n), generator=gen),
        "attention_mask": torch.ones(batch, n, dtype=torch.long),
        "labels": torch.randint(5, vocab, (batch, target), generator=gen),
    }
    if MODELS[name].family == "led":
        out["global_attention_mask"] = torch.zeros(batch, n, dtype=torch.long)
        out["global_attention_mask"][:, 0] = 1
    return {key: value.to(device) for key, value in out.items()}


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: dict, autocast: Callable
) -> None:
    """One forward + backward + optimizer step on a batch from make_batch."""
    with autocast():
        loss = model(**data).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run_point(opts: dict[str, Any], checkpoint: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Child body: build the model, time forced generation and training steps, measure their memory, then
    count the FLOPs of one training forward+backward.

    opts: name, setting (Setting fields), n, device, dtype, train_batch, gen_batch, target, gen_tokens,
    steps, gen_runs, warmup, count_flops, generate, attn, seed, threads. checkpoint(result) is called with the
    timings before the FLOP count (which may need more memory on CPU: attention through the math backend).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(opts["seed"])
    if opts.get("threads"):
        torch.set_num_threads(opts["threads"])
    device = torch.device(opts["device"])
    setting = Setting(**opts["setting"])
    name, n = opts["name"], opts["n"]
    amp = opts["dtype"] == "bf16"
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    started = time.perf_counter()
    with torch.device(device):
        model = build_model(name, setting, n, opts["attn"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    result: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "attn": model.config._attn_implementation,
        "build_s": time.perf_counter() - started,
    }
    meter = MemoryMeter(device)

    # generation first (from the clean built-model footprint): a short warm-up, then forced-length runs
    if opts["generate"]:
        model.eval()
        gen_in = make_batch(name, setting.vocab, n, opts["gen_batch"], 1, device)
        gen_in.pop("labels")
        tokens = opts["gen_tokens"]

        def generate(length: int) -> int:
            with torch.no_grad(), autocast():
                out = model.generate(
                    **gen_in, min_new_tokens=length, max_new_tokens=length, do_sample=False, num_beams=1,
                    use_cache=True,
                )  # fmt: skip
            return out.shape[1]

        meter.start()
        phase = time.perf_counter()
        generate(min(tokens, 8))
        gen_times = []
        for _ in range(opts["gen_runs"]):
            _sync(device)
            tic = time.perf_counter()
            length = generate(tokens)
            _sync(device)
            gen_times.append(time.perf_counter() - tic)
        start = 1 if model.config.is_encoder_decoder else 0
        if length - start < tokens:
            raise RuntimeError(f"generate() returned {length - start} new tokens, not the forced {tokens}")
        result["gen_s"] = gen_times
        result["gen_phase_s"] = time.perf_counter() - phase
        result["gen_mem"], result["gen_mem_abs"] = meter.peak()
        del gen_in

    # training: as large a batch as fits (CUDA OOM halves it), warm-up, timed steps
    batch = opts["train_batch"]
    phase = time.perf_counter()
    model.train()
    while True:
        data = make_batch(name, setting.vocab, n, batch, opts["target"], device)
        meter.start()
        try:
            for _ in range(opts["warmup"]):
                train_step(model, optimizer, data, autocast)
            times = []
            for _ in range(opts["steps"]):
                _sync(device)
                tic = time.perf_counter()
                train_step(model, optimizer, data, autocast)
                _sync(device)
                times.append(time.perf_counter() - tic)
            break
        except RuntimeError as error:
            if not (device.type == "cuda" and _is_oom(error) and batch > 1):
                raise
            optimizer.zero_grad(set_to_none=True)
            optimizer.state.clear()
            del data
            batch //= 2
            result.setdefault("oom_batches", []).append(batch * 2)
    result["train_batch"] = batch
    result["train_phase_s"] = time.perf_counter() - phase
    result["train_s"] = times
    result["train_mem"], result["train_mem_abs"] = meter.peak()
    result["cpu_hwm_reset"] = meter.reset_ok
    result["wall_s"] = time.perf_counter() - started
    if checkpoint is not None:
        checkpoint(result)

    # FLOPs of one forward+backward (the optimizer step adds no matmul FLOPs); torch has no FLOP formula
    # for CPU's fused SDPA kernel, so on CPU attention runs through the math backend, whose matmuls count
    if opts["count_flops"]:
        optimizer.state.clear()
        math_sdpa = sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else contextlib.nullcontext()
        with FlopCounterMode(display=False) as counter, math_sdpa, autocast():
            model(**data).loss.backward()
        model.zero_grad(set_to_none=True)
        result["train_flops"] = counter.get_total_flops()
    result["wall_s"] = time.perf_counter() - started
    return result


# ---- the parent: scheduling, estimates, child processes ----------------------------------------------------


def _watch(cmd: list[str], env: dict[str, str], timeout: float, rss_limit: float | None) -> tuple[int, str]:
    """Run a child; kill it when it exceeds the timeout or (CPU) the RSS limit. (returncode, reason)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    reason = ""
    with tempfile.TemporaryFile("w+") as log:
        import threading

        pump = threading.Thread(target=lambda: [log.write(line) for line in proc.stdout], daemon=True)
        pump.start()
        while proc.poll() is None:
            if time.monotonic() > deadline:
                reason = f"timeout (> {timeout:.0f} s)"
            elif rss_limit is not None:
                try:
                    status = Path(f"/proc/{proc.pid}/status").read_text()
                    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
                    if rss > rss_limit:
                        reason = f"killed: RSS {rss / GIB:.1f} GiB > limit {rss_limit / GIB:.1f} GiB"
                except (OSError, AttributeError):
                    pass
            if reason:
                proc.kill()
                break
            time.sleep(0.2)
        proc.wait()
        pump.join(timeout=5)
        log.seek(0)
        tail = log.read()[-2000:]
    if not reason and proc.returncode:
        reason = f"exit code {proc.returncode}"
    return proc.returncode, reason + ("\n" + tail if reason else "")


def child_env(env_name: str) -> tuple[dict[str, str], dict[str, str]]:
    """(environment for the children, the tuning settings applied): bench_topk's default or tuned one."""
    stripped = {k: v for k, v in os.environ.items() if not k.startswith(bench_topk.TUNING_PREFIXES)}
    if env_name == "tuned":
        return bench_topk.tuned_env(stripped)
    return stripped, {}


def memory_limit(device: str, override_gb: float | None) -> float:
    """Memory a point may use: --memory-limit-gb, else 85% of MemAvailable (CPU) / of the GPU's memory."""
    if override_gb:
        return override_gb * GIB
    if device == "cuda":
        return 0.9 * torch.cuda.get_device_properties(0).total_memory
    text = Path("/proc/meminfo").read_text()
    return 0.85 * int(re.search(r"MemAvailable:\s+(\d+)", text).group(1)) * 1024


@dataclasses.dataclass
class Plan:
    """Everything the parent decides: what to run, where, and the limits."""

    models: list[str]
    settings: list[Setting]
    lengths: list[int]
    device: str
    dtype: str
    train_batch: int | None
    gen_batch: int
    target: int
    gen_tokens: int
    gen_lengths: list[int] | None
    repeats: int
    steps: int
    gen_runs: int
    warmup: int
    point_budget: float
    time_budget: float
    mem_limit: float
    env_name: str
    threads: int | None
    attn: str


def train_batch_for(plan: Plan, n: int) -> int:
    """--train-batch, else CPU 1 and CUDA min(8, 65536 // n) (8 at 8k, the paper's 64 scaled to one GPU)."""
    if plan.train_batch:
        return plan.train_batch
    return 1 if plan.device == "cpu" else max(1, min(8, 65536 // n))


def predict(
    prev: dict[str, Any] | None, n: int, exponent: int, key: str, batch: int | None = None
) -> float | None:
    """Extrapolate a measured quantity of the same model from a smaller length: x * (n / n_prev)^e, times
    batch / batch_prev when a batch is given."""
    if not prev or prev.get(key) is None:
        return None
    scale = batch / prev["train_batch"] if batch else 1.0
    return prev[key] * (n / prev["n"]) ** exponent * scale


def fitted_exponent(done: list[dict[str, Any]], key: str, default: int) -> float:
    """Growth exponent of `key` per training sample over the same model's two largest measured lengths,
    clamped to [1, 2.2]; `default` (1 linear, 2 full attention) with fewer than two points."""
    pts = sorted((p for p in done if p.get(key)), key=lambda p: p["n"])[-2:]
    if len(pts) < 2:
        return default
    a, b = (p[key] / p["train_batch"] for p in pts)
    return min(2.2, max(1.0, math.log(b / a) / math.log(pts[1]["n"] / pts[0]["n"])))


def predict_wall(
    done: list[dict[str, Any]], n: int, exponent: int, batch: int, generate: bool
) -> float | None:
    """Child seconds at length n from the same model's largest measured length below n: build + training
    phase (scaled with n^e and the batch) + generation phase (from the largest length that generated)."""
    prev = max((p for p in done if p["n"] < n), key=lambda p: p["n"], default=None)
    if prev is None:
        return None
    wall = prev["build_s"] + predict(prev, n, exponent, "train_phase_s", batch)
    gen = max((p for p in done if p["n"] < n and p.get("gen_phase_s")), key=lambda p: p["n"], default=None)
    if generate and gen is not None:
        wall += predict(gen, n, exponent, "gen_phase_s")
    return wall


def run(plan: Plan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every point of the plan; returns {"points": [...], ...} (see models_env.json)."""
    env, tuned_settings = child_env(plan.env_name)
    dtype_bytes = 2 if plan.dtype == "bf16" else 4
    started = time.monotonic()
    points: dict[tuple[str, str, int], dict[str, Any]] = {}
    order = [
        (setting, name, n)
        for setting in plan.settings
        for n in plan.lengths
        for name in plan.models
        if setting.name.split(" ")[0] in MODELS[name].settings
    ]
    for setting, name, n in order:
        params = count_parameters(name, setting, n)
        points[(setting.name, name, n)] = {
            "setting": setting.name, "model": name, "n": n, "params": params, "runs": [],
            "train_batch": train_batch_for(plan, n), "status": "pending",
        }  # fmt: skip
    for rep in range(plan.repeats):
        for i, (setting, name, n) in enumerate(order):
            point = points[(setting.name, name, n)]
            if point["status"] not in ("pending", "ok"):
                continue
            remaining = plan.time_budget - (time.monotonic() - started)
            default = 2 if MODELS[name].full_attention else 1
            smaller = [p for p in points.values() if (p["setting"], p["model"]) == (setting.name, name)]
            done = [p for p in smaller if p["n"] < n and p["status"] == "ok"]
            prev = max(done, key=lambda p: p["n"], default=None)
            do_gen = plan.gen_lengths is None or n in plan.gen_lengths
            exponent = fitted_exponent(done, "train_phase_s", default)
            expected = (
                point["wall_s"]
                if point["runs"]
                else predict_wall(done, n, exponent, point["train_batch"], do_gen)
            )
            if remaining < min(expected or plan.point_budget, plan.point_budget):
                if not point["runs"]:
                    point["status"], point["reason"] = "skipped", "total --time-budget spent"
                continue
            failed_before = [p for p in smaller if p["n"] < n and p["status"] in ("failed", "skipped")]
            if rep == 0 and failed_before:
                point["status"] = "skipped"
                point["reason"] = f"{failed_before[0]['status']} at n={failed_before[0]['n']}"
                continue
            if rep == 0:
                mem = predict(prev, n, fitted_exponent(done, "train_mem", default), "train_mem",
                              point["train_batch"])  # fmt: skip
                flash = plan.device == "cuda" and plan.attn == "sdpa" and supports_sdpa(name)
                est = estimate_memory(name, setting, n, point["train_batch"], plan.target, dtype_bytes,
                                      point["params"], flash) if mem is None else mem  # fmt: skip
                wall = expected
                if est > plan.mem_limit and not (plan.device == "cuda" and point["train_batch"] > 1):
                    point["status"] = "skipped"
                    point["reason"] = f"estimated {est / GIB:.1f} GiB > limit {plan.mem_limit / GIB:.1f} GiB"
                    continue
                if wall is not None and wall > plan.point_budget:
                    point["status"] = "skipped"
                    point["reason"] = f"estimated {wall:.0f} s > --point-budget {plan.point_budget:.0f} s"
                    continue
            opts = {
                "name": name, "setting": dataclasses.asdict(setting), "n": n, "device": plan.device,
                "dtype": plan.dtype, "train_batch": point["train_batch"],
                "gen_batch": plan.gen_batch, "target": plan.target, "gen_tokens": plan.gen_tokens,
                "steps": plan.steps, "gen_runs": plan.gen_runs, "warmup": plan.warmup,
                "count_flops": rep == 0, "generate": do_gen, "attn": plan.attn, "seed": rep,
                "threads": plan.threads,
            }  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                spec_file, out_file = Path(tmp) / "opts.json", Path(tmp) / "result.json"
                spec_file.write_text(json.dumps(opts))
                cmd = [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--worker",
                    str(spec_file),
                    str(out_file),
                ]
                rss_limit = plan.mem_limit if plan.device == "cpu" else None
                limit = min(2 * plan.point_budget, max(remaining, 10.0))
                code, reason = _watch(cmd, env, limit, rss_limit)
                result = json.loads(out_file.read_text()) if out_file.exists() else None
                if result is not None and code and "error" not in result:  # killed while counting FLOPs
                    result["flops_error"] = reason.splitlines()[0]
            if result is None or "error" in result:
                error = (result or {}).get("error") or reason or f"exit code {code}"
                log(f"[rep {rep + 1}] {setting.name} {name} n={n}: FAILED {error.splitlines()[0]}")
                if point["runs"]:  # an earlier repetition worked: keep it, note the failure
                    point.setdefault("errors", []).append(error.splitlines()[0])
                else:
                    point["status"], point["reason"] = "failed", error
                continue
            point["status"] = "ok"
            point["runs"].append(result)
            point["train_batch"] = result["train_batch"]  # after CUDA OOM halving
            for key in ("train_mem", "build_s", "train_phase_s", "gen_phase_s", "wall_s"):
                point[key] = max((r[key] for r in point["runs"] if key in r), default=None)
            if "train_flops" in result:
                point["train_flops"] = result["train_flops"]
            if "flops_error" in result:
                point["flops_error"] = result["flops_error"]
            log(
                f"[rep {rep + 1}/{plan.repeats} {i + 1}/{len(order)}] {setting.name} {name} n={n}: train "
                f"{statistics.median(result['train_s']):.3f} s (batch {result['train_batch']}), gen "
                + (f"{statistics.median(result['gen_s']):.3f} s" if "gen_s" in result else "-")
                + f", train mem {result['train_mem'] / GIB:.2f} GiB, child {result['wall_s']:.0f} s"
            )
    return {"points": [summarize(p) for p in points.values()], "tuned_settings": tuned_settings,
            "wall_s": time.monotonic() - started}  # fmt: skip


def summarize(point: dict[str, Any]) -> dict[str, Any]:
    """Medians over every timed run of every repetition; per-sample train time; memory medians."""
    out = {k: v for k, v in point.items() if k != "runs"}
    runs = point["runs"]
    if not runs:
        return out
    train = [t for r in runs for t in r["train_s"]]
    batch = runs[-1]["train_batch"]
    out.update(
        train_s=statistics.median(train), train_min=min(train), train_max=max(train),
        train_batch=batch, train_s_per_sample=statistics.median(train) / batch,
        train_mem=statistics.median(r["train_mem"] for r in runs),
        train_mem_abs=statistics.median(r["train_mem_abs"] for r in runs),
        repetitions=len(runs), timed_steps=len(train), attn=runs[-1]["attn"],
        train_tflops_per_s=point.get("train_flops", 0) / statistics.median(train) / 1e12,
    )  # fmt: skip
    gens = [t for r in runs for t in r.get("gen_s", [])]
    if gens:
        out.update(
            gen_s=statistics.median(gens), gen_min=min(gens), gen_max=max(gens),
            gen_mem=statistics.median(r["gen_mem"] for r in runs if "gen_mem" in r),
        )  # fmt: skip
    return out


# ---- reporting ---------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".3f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def ratio(points: list[dict], setting: str, n: int, model: str, base: str, key: str) -> float | None:
    """value(base) / value(model) at (setting, n): > 1 means `model` is faster / smaller than `base`."""
    index = {(p["setting"], p["n"], p["model"]): p for p in points}
    a, b = index.get((setting, n, model)), index.get((setting, n, base))
    if not a or not b or a.get(key) is None or b.get(key) is None or not a[key]:
        return None
    return b[key] / a[key]


def markdown_table(points: list[dict], setting: str) -> str:
    """One row per (length, model): time, memory, FLOPs and ratios against Blockwise and LED (same run)."""
    head = (
        "| n | model | params | train batch | train s/step | train s/sample | vs Blockwise | vs LED | "
        "gen s | gen vs Blockwise | gen vs LED | train mem MiB | mem vs LED | GFLOP/step | attn | status |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    order = list(MODELS)
    rows = (p for p in points if p["setting"] == setting)
    for p in sorted(rows, key=lambda p: (p["n"], order.index(p["model"]))):
        n, m = p["n"], p["model"]
        r = lambda base, key, n=n, m=m: _fmt(ratio(points, setting, n, m, base, key), ".2f", "x")
        status = p["status"] if p["status"] == "ok" else f"**{p['status']}**: {p.get('reason', '')}"
        if p.get("flops_error") and p.get("train_flops") is None:
            status += f" (FLOPs not counted: {p['flops_error']})"
        if p.get("errors"):
            status += f" ({len(p['errors'])} repetition(s) failed: {p['errors'][0]})"
        status = status.splitlines()[0].replace("|", "/")[:160]
        mem = p.get("train_mem")
        flops = p.get("train_flops")
        lines.append(
            f"| {n} | {MODELS[m].label if m in MODELS else m} | {p['params'] / 1e6:.1f}M | "
            f"{p.get('train_batch', '-')} | {_fmt(p.get('train_s'))} | {_fmt(p.get('train_s_per_sample'))} | "
            f"{r('blockwise', 'train_s_per_sample')} | {r('led', 'train_s_per_sample')} | "
            f"{_fmt(p.get('gen_s'))} | {r('blockwise', 'gen_s')} | {r('led', 'gen_s')} | "
            f"{_fmt(None if mem is None else mem / (1 << 20), '.0f')} | {r('led', 'train_mem')} | "
            f"{_fmt(None if flops is None else flops / 1e9, '.4g')} | {p.get('attn', '-')} | {status} |"
        )
    return "\n".join(lines)


def headline(points: list[dict], n: int = HEADLINE_LENGTH) -> list[str]:
    """DeepPyramidion vs deep Blockwise / LED / PEGASUS-X at n (a table: train and generation speedups,
    training memory ratio), then whether the longest input fits."""
    setting = next((p["setting"] for p in points if p["model"] == "deep-pyramidion"), None)
    if setting is None:
        return ["- DeepPyramidion was not part of this run (use --setting deep)."]
    have_n = {p["n"] for p in points if p["setting"] == setting and p["model"] == "deep-pyramidion"}
    note = []
    if n not in have_n:
        n = min(have_n, key=lambda m: abs(m - n))
        note = [f"({HEADLINE_LENGTH} tokens not in this run: headline at n={n}.)", ""]
    lines = [
        *note,
        f"| DeepPyramidion at n={n} | training speedup | generation speedup | training memory ratio |",
        "|---|---|---|---|",
    ]
    for base in HEADLINE_PEERS:
        cells = [
            _fmt(ratio(points, setting, n, "deep-pyramidion", base, key), ".2f", "x")
            for key in ("train_s_per_sample", "gen_s", "train_mem")
        ]
        lines.append(f"| vs {MODELS[base].label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ratios are baseline / DeepPyramidion (> 1: DeepPyramidion is faster or smaller). Paper (Table 3, "
        "A100, batch 64 / 8, 512 tokens): 1.8x training and 4.5x generation vs deep Blockwise at 8k.",
        "",
    ]
    longest = max(p["n"] for p in points if p["setting"] == setting)
    for model in ("deep-pyramidion", *HEADLINE_PEERS):
        p = next((q for q in points if (q["setting"], q["model"], q["n"]) == (setting, model, longest)), None)
        if p:
            fits = "fits" if p["status"] == "ok" else f"does not fit / not run ({p.get('reason', '')})"
            lines.append(f"- {MODELS[model].label} at n={longest}: {fits.splitlines()[0]}")
    return lines


def report(results: dict[str, Any], plan: Plan, command: str) -> str:
    """models.md: headline, one table per setting, method and environment notes."""
    points = results["points"]
    env = results["environment"]
    device = env.get("cuda_device") or env["cpu"]
    lines = [
        "# Model benchmark: training and generation time, memory, FLOPs (paper §5, Tables 2, 3, 10)",
        "",
        f"Generated by `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}) on {device}, "
        f"{plan.dtype}, torch {env['torch']}, transformers {env['transformers']}, {env['threads']} threads, "
        f"{plan.env_name} environment. Training: AdamW step on batch (see column) x n random tokens with "
        f"{plan.target}-token labels; generation: batch {plan.gen_batch}, forced {plan.gen_tokens} new "
        f"tokens (greedy, KV cache). Times are medians over {plan.repeats} repetition(s) x {plan.steps} "
        f"step(s) / {plan.gen_runs} generation(s), after {plan.warmup} warm-up step(s); each (model, n) "
        "point in a fresh child process, repetitions round-robin over the models. Memory: peak above the "
        "footprint of the built model (weights excluded; grads, AdamW state and activations included; "
        "generation runs first), "
        + ("max_memory_allocated." if plan.device == "cuda" else "RSS high-water (VmHWM) after a reset.")
        + " Ratios are baseline / model (> 1: this model is faster or smaller), from this run, on time per "
        "training sample (= per step when the batches are equal). FLOPs: torch FlopCounterMode, one "
        "training forward+backward (matmuls and attention; CPU attention counted through SDPA's math "
        "backend).",
        "",
        "## Headline",
        "",
        *headline(points),
        "",
    ]
    for setting in dict.fromkeys(p["setting"] for p in points):
        lines += [f"## {setting} setting", "", markdown_table(points, setting), ""]
    lines += [
        "![time](models_time.png)",
        "",
        "![memory](models_memory.png)",
        "",
        "## Notes",
        "",
        "- Our schedules are rescaled to each n keeping the reduction ratios (`rescale_schedule`): "
        "DeepPyramidion outputs n, n, n/4, n/16, n/16, n/16 vectors; blocks of 512 everywhere except "
        "Vanilla. LED, PEGASUS-X and BART have learned/sinusoidal position tables of n rows (LED's and "
        "BART's are parameters: 6.3M at 8k, 50M at 64k in the deep setting); LED also carries separate "
        "global-attention projections (3 d^2 per encoder layer).",
        f"- Peers use `attn_implementation='{plan.attn}'` where the class supports it (column attn).",
        f"- Whole run: {results['wall_s']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def plot(points: list[dict], out_dir: Path) -> None:
    """models_time.png (train per sample, generation) and models_memory.png vs n, log-log, one panel per
    setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(p["setting"] for p in points))
    for kind, keys in (("time", ("train_s_per_sample", "gen_s")), ("memory", ("train_mem",))):
        fig, axes = plt.subplots(
            len(settings), len(keys), figsize=(6 * len(keys), 4 * len(settings)), squeeze=False
        )
        for row, setting in enumerate(settings):
            for col, key in enumerate(keys):
                ax = axes[row][col]
                for model in dict.fromkeys(p["model"] for p in points if p["setting"] == setting):
                    pts = sorted(
                        (p["n"], p[key] / (GIB if kind == "memory" else 1))
                        for p in points
                        if (p["setting"], p["model"]) == (setting, model) and p.get(key)
                    )
                    if pts:
                        xs, ys = zip(*pts, strict=True)
                        ours = MODELS[model].family == "ours"
                        ax.plot(xs, ys, "-o" if ours else "--s", ms=4, label=MODELS[model].label)
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_xlabel("input length n")
                ax.set_ylabel(
                    {
                        "train_s_per_sample": "training s / sample",
                        "gen_s": "generation s / batch",
                        "train_mem": "training peak memory GiB",
                    }[key]  # fmt: skip
                )
                ax.set_title(setting)
                ax.grid(alpha=0.3, which="both")
                ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / f"models_{kind}.png", dpi=110)
        plt.close(fig)


def environment(device: str) -> dict[str, Any]:
    """bench_topk's CPU/allocator record plus transformers and (CUDA) the device."""
    import transformers

    env = bench_topk.environment()
    env["transformers"] = transformers.__version__
    env["platform"] = platform.platform()
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(
            cuda_device=props.name, cuda_memory_gib=props.total_memory / GIB, cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )  # fmt: skip
    return env


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def build_plan(args: argparse.Namespace) -> Plan:
    """Plan and model list from the command line (quick mode: tiny sizes and short runs)."""
    setting = args.setting or ("deep" if args.quick else "both")
    settings = ["shallow", "deep"] if setting == "both" else [setting]
    models = args.models.split(",") if args.models else list(MODELS)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    cpu = args.device == "cpu"
    quick = args.quick
    lengths = (
        _ints(args.lengths) if args.lengths else ([512, 1024] if quick else [2048, 8192, 16384, 32768, 65536])
    )
    plan = Plan(
        models=models,
        settings=[tiny(SETTINGS[s]) if quick else SETTINGS[s] for s in settings],
        lengths=sorted(lengths),
        device=args.device,
        dtype=args.dtype,
        train_batch=args.train_batch,
        gen_batch=args.gen_batch or (1 if cpu else 8),
        target=args.target or (32 if quick else 256),
        gen_tokens=args.gen_tokens or (8 if quick else 64 if cpu else 512),
        gen_lengths=_ints(args.gen_lengths) if args.gen_lengths else None,
        repeats=args.repeats or (1 if quick else 3),
        steps=args.steps or 2,
        gen_runs=args.gen_runs or 2,
        warmup=args.warmup,
        point_budget=args.point_budget or (60 if quick else 900 if cpu else 120),
        time_budget=args.time_budget or float("inf"),
        mem_limit=memory_limit(args.device, args.memory_limit_gb),
        env_name=args.env or ("tuned" if cpu else "default"),
        threads=args.threads,
        attn=args.attn,
    )
    return plan


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16 = autocast")
    parser.add_argument("--setting", choices=("shallow", "deep", "both"), help="default both (--quick: deep)")
    parser.add_argument("--lengths", help="comma-separated input lengths (default 2048,...,65536)")
    parser.add_argument("--models", help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--repeats", type=int, help="repetitions (child processes) per point (default 3)")
    parser.add_argument("--steps", type=int, help="timed training steps per repetition (default 2)")
    parser.add_argument("--gen-runs", type=int, help="timed generations per repetition (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps per child (default 1)")
    parser.add_argument("--train-batch", type=int, help="default: CPU 1, CUDA min(8, 65536 // n), OOM halves")
    parser.add_argument("--gen-batch", type=int, help="default: CPU 1, CUDA 8")
    parser.add_argument("--gen-tokens", type=int, help="forced new tokens (default: CPU 64, CUDA 512)")
    parser.add_argument("--gen-lengths", help="input lengths at which to time generation (default: all)")
    parser.add_argument("--target", type=int, help="training label length (default 256)")
    parser.add_argument("--point-budget", type=float, help="seconds per child (default CPU 900, CUDA 120)")
    parser.add_argument("--time-budget", type=float, help="seconds for the whole run (later points skipped)")
    parser.add_argument("--memory-limit-gb", type=float, help="per-point memory limit (default: 85%% free)")
    parser.add_argument("--env", choices=("default", "tuned"), help="bench_topk environment (CPU: tuned)")
    parser.add_argument("--threads", type=int, help="torch threads in the children (default: torch's)")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (d=64, n=512,1024, deep setting, 1 repetition), < 2 min",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        opts = json.loads(args.worker[0].read_text())
        saved: dict[str, Any] = {}

        def checkpoint(partial: dict[str, Any]) -> None:
            saved.update(partial)
            args.worker[1].write_text(json.dumps(partial))

        try:
            result = run_point(opts, checkpoint)
        except Exception as error:  # a failed point for the parent, unless only the FLOP count failed
            kind = "CUDA out of memory" if _is_oom(error) else type(error).__name__
            message = f"{kind}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
            result = {**saved, "flops_error": message} if saved else {"error": message}
        args.worker[1].write_text(json.dumps(result))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    plan = build_plan(args)
    command = "python benchmarks/bench_models.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_start = os.getloadavg()
    results = run(plan)
    results["environment"] = environment(plan.device)
    results["load_start"] = load_start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "models.md").write_text(report(results, plan, command.strip()))
    plot(results["points"], args.out)
    (args.out / "models_env.json").write_text(
        json.dumps({**results, "plan": dataclasses.asdict(plan), "command": command}, indent=1, default=str)
    )
    print(f"wrote models.md, models_time.png, models_memory.png, models_env.json to {args.out} "
          f"in {results['wall_s']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
