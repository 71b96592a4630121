"""The report of the model benchmark: models.md (headline, one table per setting, notes), the plots
models_time.png and models_memory.png, and the Table 2 reproduction table2.md / table2.png (see
bench_models.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import common
import model_point
import paper_table2
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
        "gen s | gen vs Blockwise | gen vs LED | train mem MiB | mem vs LED | GFLOP/step | GEMM GFLOP/s | "
        "ceiling s/step | of ceiling | attn | status |"
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
        gemm = p.get("gemm_flops_per_s")
        fraction = p.get("ceiling_fraction")
        lines.append(
            f"| {n} | {MODELS[m].label if m in MODELS else m} | {p['params'] / 1e6:.1f}M | "
            f"{p.get('train_batch', '-')} | {_fmt(p.get('train_s'))} | {_fmt(p.get('train_s_per_sample'))} | "
            f"{r('blockwise', 'train_s_per_sample')} | {r('led', 'train_s_per_sample')} | "
            f"{_fmt(p.get('gen_s'))} | {r('blockwise', 'gen_s')} | {r('led', 'gen_s')} | "
            f"{_fmt(None if mem is None else mem / (1 << 20), '.0f')} | {r('led', 'train_mem')} | "
            f"{_fmt(None if flops is None else flops / 1e9, '.4g')} | "
            f"{_fmt(None if gemm is None else gemm / 1e9, '.0f')} | {_fmt(p.get('train_ceiling_s'))} | "
            f"{_fmt(None if fraction is None else 100 * fraction, '.0f', '%')} | {p.get('attn', '-')} | "
            f"{status} |"
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


def dtype_words(dtype: str) -> str:
    """How a run's dtype was applied, for the opening line of every report."""
    if dtype == "bf16":
        return ("**dtype bf16** (training: torch.autocast bfloat16 with fp32 master weights and AdamW state; "
                "generation: bf16 weights)")  # fmt: skip
    return "**dtype fp32**"


def _opening(results: dict[str, Any], plan: Plan, command: str) -> str:
    """The report's first sentence: the command, the machine, the dtype and the libraries."""
    env = results["environment"]
    device = env.get("cuda_device") or env["cpu"]
    return (
        f"{common.generated_by(command)} on {device}, {dtype_words(plan.dtype)}, torch {env['torch']}, "
        f"transformers {env['transformers']}, {env['threads']} threads, {plan.env_name} environment."
    )


def report(results: dict[str, Any], plan: Plan, command: str) -> str:
    """models.md: headline, one table per setting, method and environment notes."""
    points = results["points"]
    lines = [
        "# Model benchmark: training and generation time, memory, FLOPs (paper §5, Tables 2, 3, 10)",
        "",
        f"{_opening(results, plan, command)} Training: fused AdamW step on batch (see column) x n random "
        f"tokens with {plan.target}-token labels; generation: batch {plan.gen_batch}, forced "
        f"{plan.gen_tokens} new tokens (greedy, KV cache). Times are medians over {plan.repeats} "
        f"repetition(s) x {plan.steps} step(s) / {plan.gen_runs} generation(s), after {plan.warmup} "
        f"warm-up step(s) and an untimed generation of "
        f"{model_point.warmup_generation_tokens(plan.device, plan.gen_tokens)} tokens (on CUDA the full "
        "length: the first use of each key length builds a cuDNN attention plan); each (model, n) point in a "
        "fresh child process, repetitions round-robin over the models. Memory: peak above the "
        "footprint of the built model (weights excluded; grads, AdamW state and activations included; "
        "generation runs first), "
        + ("max_memory_allocated." if plan.device == "cuda" else "RSS high-water (VmHWM) after a reset.")
        + " Ratios are baseline / model (> 1: this model is faster or smaller), from this run, on time per "
        "training sample (= per step when the batches are equal). FLOPs: torch FlopCounterMode, one "
        "training forward+backward (matmuls and attention; CPU attention counted through SDPA's math "
        "backend). Ceiling: those FLOPs at the GEMM rate each child measured before its model was built "
        "(median of 7 runs of the setting's FFN matmul over 4096 tokens, (4096 x d) @ (d x ffn), in the "
        "run's dtype, column GEMM GFLOP/s); of ceiling = ceiling / measured step time.",
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


# ---- Table 2 reproduction ----------------------------------------------------------------------------------


def _relative(value: float | None, reference: float | None) -> float | None:
    return None if value is None or not reference else value / reference


def _flag(ours: float | None, paper: float) -> str:
    """ "differs" when our ratio is off the paper's by more than RATIO_TOLERANCE, "ok" within, "-" unknown."""
    if ours is None:
        return "-"
    return "**differs**" if abs(ours / paper - 1) > paper_table2.RATIO_TOLERANCE else "ok"


def table2_rows(points: list[dict]) -> list[dict[str, Any]]:
    """One record per Table 2 row of the run, in the paper's order: our training time per sample and
    generation time, each relative to the Blockwise row of the same length, beside the paper's."""
    ours = {p["model"]: p for p in points if MODELS[p["model"]].length}
    rows = []
    for paper in paper_table2.ROWS:
        point = ours.get(paper.preset)
        if point is None:
            continue
        ref = paper_table2.row(paper_table2.BLOCKWISE_ROW[paper.n])
        ref_point = ours.get(ref.preset, {})
        record: dict[str, Any] = {"paper": paper, "point": point, "reference": ref.number}
        for key, ours_key in (("train", "train_s_per_sample"), ("gen", "gen_s")):
            mine = _relative(point.get(ours_key), ref_point.get(ours_key))
            theirs = getattr(paper, f"{key}_s") / getattr(ref, f"{key}_s")
            record.update({f"{key}_s": point.get(ours_key), f"{key}_ratio": mine,
                           f"paper_{key}_ratio": theirs, f"{key}_flag": _flag(mine, theirs)})  # fmt: skip
        rows.append(record)
    return rows


def _table2_line(r: dict[str, Any]) -> str:
    paper, point = r["paper"], r["point"]
    status = (
        point["status"] if point["status"] == "ok" else f"**{point['status']}**: {point.get('reason', '')}"
    )
    fraction = point.get("ceiling_fraction")
    cells = [
        f"#{paper.number}", paper.architecture, f"{paper.encoder} / {paper.decoder}".replace("->", "→"),
        str(point["n"]), str(point.get("train_batch", "-")), _fmt(r["train_s"]),
        _fmt(r["train_ratio"], ".2f"),
        f"{paper.train_s:.2f}", f"{r['paper_train_ratio']:.2f}", r["train_flag"], _fmt(r["gen_s"]),
        _fmt(r["gen_ratio"], ".2f"), f"{paper.gen_s:.2f}", f"{r['paper_gen_ratio']:.2f}", r["gen_flag"],
        _fmt(None if fraction is None else 100 * fraction, ".0f", "%"),
        status.splitlines()[0].replace("|", "/")[:120],
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def table2_report(results: dict[str, Any], plan: Plan, command: str) -> str:
    """table2.md: the paper's Table 2 timings beside ours, row by row, with the rows whose ratio to
    Blockwise differs from the paper's by more than RATIO_TOLERANCE flagged."""
    rows = table2_rows(results["points"])
    head = (
        "| # | architecture | encoder / decoder | n | train batch | train s/sample | × Blockwise | "
        f"paper train s (batch {paper_table2.PAPER_TRAIN_BATCH}) | paper × Blockwise | train ratio | "
        f"gen s (batch {plan.gen_batch}) | × Blockwise | paper gen s | paper × Blockwise | gen ratio | "
        "of GEMM ceiling | status |"
    )
    lines = [
        "# Table 2 reproduced: shallow 2+2-layer models, blocks of 512 (paper Table 2)",
        "",
        f"{_opening(results, plan, command)} Training: AdamW step, batch in the column (the paper: "
        f"{paper_table2.PAPER_TRAIN_BATCH}; here what fits the machine), {plan.target}-token labels; our "
        "time is per training sample, the paper's per batch: compare the ratios. Generation: batch "
        f"{plan.gen_batch}, forced {plan.gen_tokens} new tokens (the paper: {paper_table2.PAPER_GEN_BATCH} x "
        f"{paper_table2.PAPER_GEN_TOKENS}), greedy, KV cache. × Blockwise = the row's time / the time of the "
        "Blockwise row of the same length (#4 at 2k, #5 at 8k; at 512 tokens a single block of 512 is full "
        "attention, so #1 Vanilla is the reference), ours and the paper's (A100, fp32, fairseq) side by "
        f"side; **differs** = the ratios disagree by more than {paper_table2.RATIO_TOLERANCE:.0%}. Medians "
        f"over {plan.repeats} repetition(s) x {plan.steps} step(s) / {plan.gen_runs} generation(s), every "
        "row in its own child process, rows interleaved. Paper numbers: benchmarks/paper_table2.py.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
        *(_table2_line(r) for r in rows),
        "",
        "![table 2](table2.png)",
        "",
    ]
    for key, what in (("train", "Training"), ("gen", "Generation")):
        flagged = [f"#{r['paper'].number}" for r in rows if r[f"{key}_flag"] == "**differs**"]
        agree = [f"#{r['paper'].number}" for r in rows if r[f"{key}_flag"] == "ok"]
        lines.append(
            f"- {what}: ratio within {paper_table2.RATIO_TOLERANCE:.0%} of the paper's for "
            f"{', '.join(agree) or 'no row'}; differs for {', '.join(flagged) or 'no row'}."
        )
    lines += [f"- Whole run: {results['wall_s']:.0f} s.", ""]
    return "\n".join(lines)


def table2_plot(points: list[dict], out_dir: Path) -> None:
    """table2.png: per row, our and the paper's time relative to the Blockwise row of the same length
    (training and generation panels, log scale)."""
    plt = common.pyplot()
    rows = table2_rows(points)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    xs = range(len(rows))
    for ax, (key, what) in zip(
        axes, (("train", "training s / sample"), ("gen", "generation s")), strict=True
    ):
        ours = [r[f"{key}_ratio"] or float("nan") for r in rows]
        ax.bar([x - 0.2 for x in xs], ours, width=0.4, label="ours")
        ax.bar([x + 0.2 for x in xs], [r[f"paper_{key}_ratio"] for r in rows], width=0.4, label="paper")
        ax.set_xticks(list(xs), [f"#{r['paper'].number}" for r in rows], fontsize=7)
        ax.set_yscale("log")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_ylabel(f"{what} / Blockwise of the same length")
        ax.set_title(f"Table 2: {what.split(' ')[0]}")
        ax.grid(alpha=0.3, axis="y", which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "table2.png", dpi=110)
    plt.close(fig)
