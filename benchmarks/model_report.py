"""The report of the model benchmark: models.md (headline, one table per setting, notes) and the plots
models_time.png and models_memory.png (see bench_models.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import common
from model_zoo import MODELS

if TYPE_CHECKING:
    from bench_models import Plan

HEADLINE_LENGTH = 8192
HEADLINE_PEERS = ("blockwise", "led", "pegasus-x")


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
        f"{common.generated_by(command)} on {device}, "
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
    plt = common.pyplot()
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
                        (p["n"], p[key] / (common.GIB if kind == "memory" else 1))
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
