"""The child process of the model benchmark: one (model, length) point — this process's GEMM rate, forced
generation, training steps, the peak memory of each phase and the FLOPs of one training forward+backward
(see bench_models.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import torch
from model_zoo import MODELS, Setting, build_model

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
GEMM_TOKENS = 4096  # M of the ceiling GEMM: the setting's FFN matmul (d_model -> ffn) over 4096 tokens


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
            self.base = _status_bytes("VmRSS")

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
            top = _status_bytes("VmHWM")
        return max(0, top - self.base), top  # the kernel's RSS counters lag by a few hundred KiB


def _hwm_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _status_bytes(field: str) -> int:
    """A memory field of this process in bytes (the maximum RSS where /proc has none)."""
    kib = common.proc_status_kib(field)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if kib is None else kib) * 1024


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


def gemm_rate(dtype: str, device: torch.device, d_model: int, ffn: int, runs: int = 7) -> float:
    """FLOP/s of this process's FFN matmul (GEMM_TOKENS, d_model) @ (d_model, ffn) in `dtype`, the median of
    `runs` after two warm-ups: the ceiling a training step's FLOPs are compared with."""
    m, k, n = GEMM_TOKENS, d_model, ffn
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(shape, generator=gen).to(device, DTYPES[dtype]) for shape in ((m, k), (k, n)))
    seconds = []
    for i in range(runs + 2):
        tic = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            seconds.append(time.perf_counter() - tic)
    return 2 * m * k * n / sorted(seconds)[len(seconds) // 2]


def is_oom(error: BaseException) -> bool:
    """True for a CUDA (or allocator) out-of-memory error."""
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


@dataclasses.dataclass
class _Point:
    """What the phases of one point share: the options, the built model and its optimizer, the device."""

    opts: dict[str, Any]
    setting: Setting
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    meter: MemoryMeter

    def autocast(self) -> contextlib.AbstractContextManager:
        """Training in bf16: autocast (bf16 matmuls, fp32 master weights and optimizer); else a no-op."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.opts["dtype"] == "bf16")

    def timed(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """(seconds, result) of fn(), synchronised with the device."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        out = fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - tic, out

    def batch(self, size: int, target: int) -> dict:
        return make_batch(self.opts["name"], self.setting.vocab, self.opts["n"], size, target, self.device)


def training_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW as the Trainer builds it by default (optim="adamw_torch_fused", torch >= 2.8): one fused kernel
    per step, 3.4x faster than torch's foreach AdamW at 124M parameters (results/optimizer_step.md)."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    data: dict,
    autocast: contextlib.AbstractContextManager,
) -> torch.Tensor:
    """One forward (inside `autocast`) + backward + optimizer step on a batch from make_batch; the loss."""
    with autocast:
        loss = model(**data).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def train_step(point: _Point, data: dict) -> None:
    """`optimizer_step` of a point's model in its dtype."""
    optimizer_step(point.model, point.optimizer, data, point.autocast())


def warmup_generation_tokens(device: str, tokens: int) -> int:
    """Tokens of the untimed first generation: on CUDA the full length, since the first use of each shape
    can build state there (cuDNN's attention plans, one per new key length: see
    pyramidion_hf.modeling.attention.DECODER_SDPA_BACKENDS); on CPU 8, since nothing is built per shape there
    and a full-length warm-up would double the run."""
    return tokens if device == "cuda" else min(tokens, 8)


def _generation(point: _Point) -> dict[str, Any]:
    """A warm-up generation (its time kept as gen_warmup_s), then forced-length greedy generations: their
    times and peak memory. In bf16 the model generates with bf16 weights (model.to(bfloat16)), then returns
    to fp32 for training."""
    point.model.eval()
    point.model.to(DTYPES[point.opts["dtype"]])
    gen_in = point.batch(point.opts["gen_batch"], 1)
    gen_in.pop("labels")
    tokens = point.opts["gen_tokens"]

    def generate(length: int) -> int:
        with torch.no_grad():
            out = point.model.generate(
                **gen_in, min_new_tokens=length, max_new_tokens=length, do_sample=False, num_beams=1,
                use_cache=True,
            )  # fmt: skip
        return out.shape[1]

    point.meter.start()
    phase = time.perf_counter()
    warmup = warmup_generation_tokens(point.device.type, tokens)
    warmup_s, _ = point.timed(lambda: generate(warmup))
    runs = [point.timed(lambda: generate(tokens)) for _ in range(point.opts["gen_runs"])]
    new = runs[-1][1] - (1 if point.model.config.is_encoder_decoder else 0)
    if new < tokens:
        raise RuntimeError(f"generate() returned {new} new tokens, not the forced {tokens}")
    result = {"gen_s": [seconds for seconds, _ in runs], "gen_phase_s": time.perf_counter() - phase,
              "gen_warmup_s": warmup_s, "gen_warmup_tokens": warmup}  # fmt: skip
    result["gen_mem"], result["gen_mem_abs"] = point.meter.peak()
    point.model.to(torch.float32)
    return result


def _training(point: _Point) -> tuple[dict[str, Any], dict]:
    """As large a batch as fits (a CUDA OOM halves it), warm-up, timed steps -> (their record, the batch)."""
    batch = point.opts["train_batch"]
    phase = time.perf_counter()
    result: dict[str, Any] = {}
    point.model.train()
    while True:
        data = point.batch(batch, point.opts["target"])
        point.meter.start()
        try:
            for _ in range(point.opts["warmup"]):
                train_step(point, data)
            step = functools.partial(train_step, point, data)
            times = [point.timed(step)[0] for _ in range(point.opts["steps"])]
            break
        except RuntimeError as error:
            if not (point.device.type == "cuda" and is_oom(error) and batch > 1):
                raise
            point.optimizer.zero_grad(set_to_none=True)
            point.optimizer.state.clear()
            del data
            batch //= 2
            result.setdefault("oom_batches", []).append(batch * 2)
    result.update(train_batch=batch, train_phase_s=time.perf_counter() - phase, train_s=times)
    result["train_mem"], result["train_mem_abs"] = point.meter.peak()
    result["cpu_hwm_reset"] = point.meter.reset_ok
    return result, data


def _training_flops(point: _Point, data: dict) -> int:
    """FLOPs of one forward+backward (the optimizer step adds no matmul FLOPs); torch has no FLOP formula
    for CPU's fused SDPA kernel, so on CPU attention runs through the math backend, whose matmuls count."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    point.optimizer.state.clear()
    math_sdpa = sdpa_kernel(SDPBackend.MATH) if point.device.type == "cpu" else contextlib.nullcontext()
    with FlopCounterMode(display=False) as counter, math_sdpa, point.autocast():
        point.model(**data).loss.backward()
    point.model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def run_point(opts: dict[str, Any], checkpoint: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Child body: build the model, time forced generation and training steps, measure their memory, then
    count the FLOPs of one training forward+backward.

    opts: name, setting (Setting fields), n, device, dtype ("fp32" | "bf16"), train_batch, gen_batch, target,
    gen_tokens, steps, gen_runs, warmup, count_flops, generate, attn, seed, threads. checkpoint(result) is
    called with the timings before the FLOP count (which may need more memory on CPU: attention through the
    math backend).
    """
    torch.manual_seed(opts["seed"])
    if opts.get("threads"):
        torch.set_num_threads(opts["threads"])
    device = torch.device(opts["device"])
    setting = Setting(**opts["setting"])
    started = time.perf_counter()
    with torch.device(device):
        model = build_model(opts["name"], setting, opts["n"], opts["attn"])
    optimizer = training_optimizer(model)
    result: dict[str, Any] = {
        "params": sum(p.numel() for p in model.parameters()),
        "attn": model.config._attn_implementation,
        "build_s": time.perf_counter() - started,
        "dtype": opts["dtype"],
        "gemm_flops_per_s": gemm_rate(opts["dtype"], device, setting.d_model, setting.ffn),
    }
    point = _Point(opts, setting, model, optimizer, device, MemoryMeter(device))
    if opts["generate"]:  # first, from the clean built-model footprint
        result.update(_generation(point))
    training, data = _training(point)
    result.update(training, wall_s=time.perf_counter() - started)
    if checkpoint is not None:
        checkpoint(result)
    if opts["count_flops"]:
        result["train_flops"] = _training_flops(point, data)
    result["wall_s"] = time.perf_counter() - started
    return result


def worker(opts: dict[str, Any], checkpoint: Callable[[dict], None]) -> dict[str, Any]:
    """run_point for common.serve: a failure becomes {"error": ...} for the parent, unless only the FLOP
    count failed (then the timings stand, with "flops_error")."""
    saved: dict[str, Any] = {}

    def keep(partial: dict[str, Any]) -> None:
        saved.update(partial)
        checkpoint(partial)

    try:
        return run_point(opts, keep)
    except Exception as error:
        kind = "CUDA out of memory" if is_oom(error) else type(error).__name__
        message = f"{kind}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
        return {**saved, "flops_error": message} if saved else {"error": message}
