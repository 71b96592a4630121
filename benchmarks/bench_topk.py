"""Appendix B.5 (Figures 5 and 6) on CPU: time and nCCS of the top-k operators vs n, for k = n/2 ... n/64.

    python benchmarks/bench_topk.py            # full grid, <= ~12 min on 2 quiet cores
    python benchmarks/bench_topk.py --quick    # tiny grid (< 1 min), to check that it works

Data as in the paper: B=16, d=512, E ~ U[-1, 1], v ~ U[0, 1]. nCCS (normalized Chamfer cosine similarity to
the real hard top-k) is measured once; time (forward, forward+backward; median of repetitions after a warm-up)
is measured twice, in a child process per environment: the default one and a tuned one (passive OpenMP waits,
glibc malloc that keeps freed memory instead of unmapping it). Writes benchmarks/results/topk.md,
topk_time.png, topk_nccs.png and topk_env.json.
"""

from __future__ import annotations

import argparse
import ctypes.util
import functools
import json
import math
import os
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import torch
import torch.nn.functional as F
from torch import Tensor

from pyramidion_hf.topk import hard_topk, iterative_softmax_topk, successive_halving_topk

BATCH, DIM = 16, 512
HEADLINE = (8192, 512)
PAPER_SORT_TIME, PAPER_SORT_ERROR = 7.3, 45.2  # Appendix B.5: sorting costs 7.3% time, removes 45.2% of error
# Iterative top-k is O(n k d): timed only where n*k <= this (forward+backward ~1 s at the cap on 2 cores).
ITERATIVE_TIME_CAP = 1 << 21
# nCCS uses the first max(2, min(B, NCCS_BUDGET // (n*k))) samples: the k x k Chamfer matrix is O(k^2 d).
NCCS_BUDGET = 1 << 26


def floor_pass(hidden: Tensor, scores: Tensor, k: int) -> Tensor:
    """The speed floor: one weighted pass over the (B, n, d) input, no selection at all."""
    batch, n, d = hidden.shape
    return (hidden * scores[..., None]).view(batch, k, n // k, d).sum(2)


def authors_loop_topk(hidden: Tensor, scores: Tensor, k: int, base: float = 20.0) -> Tensor:
    """A faithful re-implementation of the authors' operator (applicaai/successive-halving-topk, our_topk).

    Per sample and per round: sort the scores, pair the better half with the reversed worse half, weight each
    pair with softmax(base**v) and permute-and-combine the whole (m, d) tensor. n/k must be a power of two.
    """
    outs = []
    rounds = int(math.log2(hidden.shape[1] // k))
    for b in range(hidden.shape[0]):
        emb, sc = hidden[b : b + 1], scores[b : b + 1]
        for _ in range(rounds):
            order = sc.sort(descending=True).indices
            half = order.shape[-1] // 2
            pairs = torch.cat((order[:, :half], torch.flip(order[:, half:], dims=(1, 0))), dim=0)  # (2, m/2)
            weights = F.softmax(torch.pow(base, sc[:, pairs]), dim=1)  # (1, 2, m/2)
            sc = (sc[:, pairs] * weights).sum(dim=1)
            emb = (emb[:, pairs] * weights.unsqueeze(3)).sum(dim=1)
        outs.append(emb)
    return torch.cat(outs, 0)


METHODS: dict[str, tuple[str, Callable[[Tensor, Tensor, int], Tensor]]] = {
    "sh": ("SH sorted (sigmoid)", lambda e, v, k: successive_halving_topk(e, v, k).hidden),
    "sh_unsorted": (
        "SH unsorted (sigmoid)",
        lambda e, v, k: successive_halving_topk(e, v, k, sort=False).hidden,
    ),
    "sh_peaked": (
        "SH sorted (peaked, base 20)",
        lambda e, v, k: successive_halving_topk(e, v, k, weighting="peaked", base=20.0).hidden,
    ),
    "sh_peaked_unsorted": (
        "SH unsorted (peaked, base 20)",
        lambda e, v, k: successive_halving_topk(e, v, k, sort=False, weighting="peaked", base=20.0).hidden,
    ),
    "iterative": ("iterative (Goyal et al.)", lambda e, v, k: iterative_softmax_topk(e, v, k).hidden),
    "hard": ("hard top-k", lambda e, v, k: hard_topk(e, v, k).hidden),
    "floor": ("floor: one weighted pass", floor_pass),
    "loop": ("authors' per-sample loop (before)", authors_loop_topk),
}
NCCS_METHODS = ("sh", "sh_unsorted", "sh_peaked", "sh_peaked_unsorted", "iterative", "loop")


def grid(quick: bool) -> list[tuple[int, int]]:
    """(n, k) points: n in {512, ..., 8192}, k in {n/2, ..., n/64} (quick: two small points)."""
    if quick:
        return [(512, 128), (1024, 64)]
    return [(n, n >> r) for n in (512, 1024, 2048, 4096, 8192) for r in range(1, 7)]


def make_data(n: int, batch: int = BATCH, seed: int = 0) -> tuple[Tensor, Tensor]:
    """E ~ U[-1, 1] (B, n, d) and v ~ U[0, 1] (B, n), as in Appendix B.5."""
    gen = torch.Generator().manual_seed(seed + n)
    hidden = torch.rand(batch, n, DIM, generator=gen) * 2 - 1
    return hidden, torch.rand(batch, n, generator=gen)


def nccs(approx: Tensor, exact: Tensor) -> float:
    """nCCS = 1/k sum_i max_j cos(y_i, y^_j), averaged over the batch; approx, exact (B, k, d)."""
    y, t = F.normalize(approx.float(), dim=-1), F.normalize(exact.float(), dim=-1)
    best = []
    for start in range(0, y.shape[1], 512):
        best.append(torch.bmm(y[:, start : start + 512], t.transpose(1, 2)).amax(-1))
    return torch.cat(best, 1).mean().item()


def time_method(
    fn: Callable[[], Tensor], inputs: list[Tensor], backward: bool, slow: bool
) -> tuple[float, int]:
    """Median wall time (s) of fn (+ backward with a fixed output gradient) and minor page faults per call."""
    grad_out = None

    def call() -> None:
        nonlocal grad_out
        out = fn()
        if backward:
            if grad_out is None:
                grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
            torch.autograd.grad(out, inputs, grad_out, allow_unused=True)

    call()  # warm-up
    times: list[float] = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    min_reps, max_reps, budget = (3, 3, 0.0) if slow else (3, 5, 0.75)
    while len(times) < min_reps or (len(times) < max_reps and sum(times) < budget):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) // len(times)
    return statistics.median(times), faults


def iterative_timed(n: int, k: int) -> bool:
    return n * k <= ITERATIVE_TIME_CAP


def loop_timed(n: int, k: int) -> bool:
    """The per-sample loop is slow: timed at the headline ratio k = n/16 only."""
    return n == 16 * k


def measure_time(points: list[tuple[int, int]], quick: bool) -> dict[str, object]:
    """Child-process body: time every method at every point; return the rows and this environment."""
    rows = []
    for n in sorted({n for n, _ in points}):
        hidden, scores = make_data(n)
        hidden.requires_grad_(True)
        scores.requires_grad_(True)
        for k in sorted((k for m, k in points if m == n), reverse=True):
            for method, (_, op) in METHODS.items():
                if method == "iterative" and not iterative_timed(n, k):
                    continue
                if method == "loop" and not loop_timed(n, k):
                    continue
                slow = quick or method in ("loop", "iterative")
                call = functools.partial(op, hidden, scores, k)
                row: dict[str, object] = {"n": n, "k": k, "method": method}
                row["fwd"], _ = time_method(call, [], False, slow)
                row["fwd_bwd"], row["faults"] = time_method(call, [hidden, scores], True, slow)
                rows.append(row)
                print(
                    f"  n={n:5d} k={k:5d} {method:12s} fwd {row['fwd']:.4f}s fwd+bwd {row['fwd_bwd']:.4f}s",
                    flush=True,
                )
        del hidden, scores
    return {"rows": rows, "environment": common.environment()}


def measure_nccs(points: list[tuple[int, int]]) -> list[dict[str, object]]:
    """nCCS of every soft operator at every point, on the first few samples (see NCCS_BUDGET)."""
    rows = []
    for n in sorted({n for n, _ in points}):
        hidden, scores = make_data(n)
        for k in sorted((k for m, k in points if m == n), reverse=True):
            samples = max(2, min(BATCH, NCCS_BUDGET // (n * k)))
            e, v = hidden[:samples], scores[:samples]
            with torch.no_grad():
                exact = hard_topk(e, v, k).hidden
                for method in NCCS_METHODS:
                    value = nccs(METHODS[method][1](e, v, k), exact)
                    rows.append({"n": n, "k": k, "method": method, "nccs": value, "samples": samples})
    return rows


def loop_equivalence(point: tuple[int, int]) -> float:
    """Max distance from an output of the authors' loop to the nearest SH peaked output (2 samples, fp64).

    fp64 because in fp32 the two programs round differently, which reorders near-tied scores among thousands.
    """
    n, k = point
    hidden, scores = make_data(n, batch=2)
    hidden, scores = hidden.double(), scores.double()
    with torch.no_grad():
        ours = successive_halving_topk(hidden, scores, k, weighting="peaked", base=20.0).hidden
        theirs = authors_loop_topk(hidden, scores, k)  # same k vectors, in tournament order
        return torch.cdist(theirs, ours).amin(-1).max().item()


def _table(
    rows: list[dict], value: str, methods: list[str], fmt: str, note: Callable[[str, int, int], str]
) -> str:
    """Markdown table: one line per (n, k), one column per method."""
    names = [METHODS[m][0] for m in methods]
    lines = ["| n | k | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(methods)]
    index = {(r["n"], r["k"], r["method"]): r for r in rows}
    for n, k in sorted({(r["n"], r["k"]) for r in rows}):
        cells = []
        for m in methods:
            row = index.get((n, k, m))
            cells.append(format(row[value], fmt) if row and value in row else note(m, n, k))
        lines.append(f"| {n} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _not_timed(method: str, n: int, k: int) -> str:
    if method == "iterative":
        return f"not run (n*k > 2^{int(math.log2(ITERATIVE_TIME_CAP))})"
    return "not run (k != n/16)" if method == "loop" else "-"


def _ratio(rows: list[dict], num: str, den: str, key: str, point: tuple[int, int]) -> float | None:
    index = {(r["n"], r["k"], r["method"]): r for r in rows}
    a, b = index.get((*point, num)), index.get((*point, den))
    return a[key] / b[key] if a and b else None


def sorting_effect(time_rows: list[dict], nccs_rows: list[dict], sorted_m: str, unsorted_m: str) -> dict:
    """Mean time overhead of sorting (fwd, fwd+bwd) and mean error (1 - nCCS) reduction, over all points."""
    t = {(r["n"], r["k"], r["method"]): r for r in time_rows}
    q = {(r["n"], r["k"], r["method"]): r["nccs"] for r in nccs_rows}
    pts = sorted({(r["n"], r["k"]) for r in time_rows})
    out = {}
    for key in ("fwd", "fwd_bwd"):
        out[key] = 100 * statistics.mean(t[(*p, sorted_m)][key] / t[(*p, unsorted_m)][key] - 1 for p in pts)
    npts = sorted({(r["n"], r["k"]) for r in nccs_rows})
    out["error"] = 100 * statistics.mean(
        1 - (1 - q[(*p, sorted_m)]) / (1 - q[(*p, unsorted_m)]) for p in npts
    )
    return out


def _panel(
    ax: Any, runs: dict[str, list[dict]], ratio: int, kind: str, styles: dict, colors: dict
) -> set[str]:
    """One panel (k = n/ratio) of a figure: a line per (environment, method); returns the methods drawn."""
    used = set()
    for env_name, rows in runs.items():
        for method in METHODS:
            pts = sorted(
                (r["n"], r["fwd_bwd" if kind == "time" else "nccs"])
                for r in rows
                if r["method"] == method and r["n"] // r["k"] == ratio
            )
            if pts:
                used.add(method)
                xs, ys = zip(*pts, strict=True)
                marker, size = ("x", 6) if method == "loop" else ("o", 3)  # loop == SH peaked in nCCS
                ax.plot(xs, ys, styles.get(env_name, "-"), marker=marker, ms=size, color=colors[method])
    ax.set_xscale("log", base=2)
    ax.set_title(f"k = n/{ratio}")
    ax.set_xlabel("n")
    ax.set_ylabel("forward+backward time per batch [s]" if kind == "time" else "nCCS vs real top-k")
    if kind == "time":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return used


def plot(time_runs: dict[str, list[dict]], nccs_rows: list[dict], out_dir: Path) -> None:
    """Figure 5 (time vs n) and Figure 6 (nCCS vs n), one panel per ratio n/k; colour = method."""
    plt = common.pyplot()
    from matplotlib.lines import Line2D

    ratios = sorted({r["n"] // r["k"] for r in nccs_rows})
    colors = dict(zip(METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    styles = dict(zip(time_runs, ["-", "--", ":"], strict=False))
    for kind, runs in (("time", time_runs), ("nccs", {"": nccs_rows})):
        cols, rows_n = min(3, len(ratios)), math.ceil(len(ratios) / min(3, len(ratios)))
        fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3.4 * rows_n + 1.2), squeeze=False)
        used: set[str] = set()
        for ax, ratio in zip(axes.flat, ratios, strict=False):
            used |= _panel(ax, runs, ratio, kind, styles, colors)
        for ax in list(axes.flat)[len(ratios) :]:
            ax.axis("off")
        handles = [
            Line2D([], [], color=colors[m], marker="x" if m == "loop" else "o", ms=3, label=METHODS[m][0])
            for m in METHODS
            if m in used
        ]
        if kind == "time":
            handles += [
                Line2D([], [], color="black", ls=style, label=f"{name} env") for name, style in styles.items()
            ]
        fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
        title = "time" if kind == "time" else "approximation quality (nCCS)"
        fig.suptitle(f"Top-k operators, {title}: B={BATCH}, d={DIM}, CPU")
        fig.tight_layout(rect=(0, 1.1 / (3.4 * rows_n + 1.2), 1, 0.97))
        fig.savefig(out_dir / f"topk_{kind}.png", dpi=110)
        plt.close(fig)


def _headline_section(
    time_runs: dict[str, dict], nccs_rows: list[dict], extra: dict, head: tuple[int, int]
) -> list[str]:
    """The headline (n, k): every method's times and nCCS, then the speed targets per environment."""
    lines = [
        f"## Headline: n={head[0]}, k={head[1]}",
        "",
        "| method | " + " | ".join(f"fwd [{e}] | fwd+bwd [{e}]" for e in time_runs) + " | nCCS |",
        "|---|" + "---|---|" * len(time_runs) + "---|",
    ]
    q = {(r["n"], r["k"], r["method"]): r["nccs"] for r in nccs_rows}
    for m in METHODS:
        cells = []
        for run in time_runs.values():
            row = next((r for r in run["rows"] if (r["n"], r["k"], r["method"]) == (*head, m)), None)
            cells += [f"{row['fwd']:.4f} s", f"{row['fwd_bwd']:.4f} s"] if row else ["-", "-"]
        nc = q.get((*head, m), 1.0 if m == "hard" else None)
        lines.append(
            f"| {METHODS[m][0]} | " + " | ".join(cells) + f" | {'-' if nc is None else f'{nc:.4f}'} |"
        )
    lines.append("")
    for env_name, run in time_runs.items():
        rows = run["rows"]
        sh_floor = _ratio(rows, "sh", "floor", "fwd_bwd", head)
        loop_sh = _ratio(rows, "loop", "sh", "fwd_bwd", head)
        loop_peaked = _ratio(rows, "loop", "sh_peaked", "fwd_bwd", head)
        if sh_floor is None or loop_sh is None:
            continue
        lines.append(
            f"- **{env_name} env**: SH / floor (fwd+bwd) = **{sh_floor:.2f}x** (target <= 1.5: "
            f"{'met' if sh_floor <= 1.5 else 'NOT met'}); authors' loop / SH (fwd+bwd) = **{loop_sh:.1f}x** "
            f"(target >= 5: {'met' if loop_sh >= 5 else 'NOT met'}); loop / SH peaked (same maths) = "
            f"{loop_peaked:.1f}x; SH fwd / floor fwd = {_ratio(rows, 'sh', 'floor', 'fwd', head):.2f}x."
        )
    lines.append(
        "- The authors' loop and SH peaked compute the same k vectors: max distance from a loop output to "
        "the "
        f"nearest SH peaked output = {extra['loop_equivalence']:.2e} (headline n, k, 2 samples)."
    )
    return lines


def _sorting_section(time_runs: dict[str, dict], nccs_rows: list[dict]) -> list[str]:
    """What sorting costs and what it removes, for both pair weightings."""
    lines = ["## Sorting: cost and benefit (paper: +7.3% time, -45.2% error)", ""]
    for weighting, (sorted_m, unsorted_m) in (
        ("sigmoid", ("sh", "sh_unsorted")),
        ("peaked, base 20 (the paper's setting)", ("sh_peaked", "sh_peaked_unsorted")),
    ):
        effects = {
            name: sorting_effect(run["rows"], nccs_rows, sorted_m, unsorted_m)
            for name, run in time_runs.items()
        }
        cost = "; ".join(
            f"{name} env {e['fwd']:+.1f}% forward, {e['fwd_bwd']:+.1f}% forward+backward"
            for name, e in effects.items()
        )
        lines.append(
            f"- {weighting}: sorting removes **{next(iter(effects.values()))['error']:.1f}%** of the "
            f"error 1 - nCCS and costs {cost} time (means over all points)."
        )
    return lines


def _iterative_section(time_runs: dict[str, dict], nccs_rows: list[dict]) -> list[str]:
    """SH against iterative top-k: quality at every point, speed where iterative was timed."""
    q = {(r["n"], r["k"], r["method"]): r["nccs"] for r in nccs_rows}
    checks = []
    for n, k in sorted({(r["n"], r["k"]) for r in nccs_rows}):
        if (n, k, "iterative") in q:
            checks.append((n, k, q[(n, k, "sh")], q[(n, k, "iterative")]))
    failed = [c for c in checks if c[2] < c[3]]
    lines = [
        "## SH vs iterative top-k",
        "",
        f"- nCCS(SH sorted) >= nCCS(iterative) at {len(checks) - len(failed)} of {len(checks)} points"
        + (": **all**." if not failed else f"; fails at {[(c[0], c[1]) for c in failed]}."),
    ]
    for env_name, run in time_runs.items():
        t = {(r["n"], r["k"], r["method"]): r["fwd_bwd"] for r in run["rows"]}
        pts = [(n, k) for n, k, m in t if m == "iterative"]
        faster = [p for p in pts if t[(*p, "sh")] < t[(*p, "iterative")]]
        lines.append(
            f"- {env_name} env: SH faster than iterative (fwd+bwd) at {len(faster)} of {len(pts)} timed "
            f"points; iterative is O(n k d) and timed only where n*k <= "
            f"2^{int(math.log2(ITERATIVE_TIME_CAP))}."
        )
    return lines


def _tables_section(time_runs: dict[str, dict], nccs_rows: list[dict]) -> list[str]:
    """Every measured value: the nCCS table, then forward and forward+backward times per environment."""
    lines = ["## nCCS (higher is better; hard top-k = 1)", "", _table(nccs_rows, "nccs", list(NCCS_METHODS),
             ".4f", lambda m, n, k: "-")]  # fmt: skip
    for env_name, run in time_runs.items():
        for key, title in (("fwd", "forward"), ("fwd_bwd", "forward+backward")):
            lines += [
                "",
                f"## Time, {title} [s], {env_name} env",
                "",
                _table(run["rows"], key, list(METHODS), ".4f", _not_timed),
            ]
    return lines


def _environment_section(time_runs: dict[str, dict], extra: dict) -> list[str]:
    """Each timing environment, the tuning applied, and which glibc settings take effect."""
    lines = ["## Environments", ""]
    for env_name, run in time_runs.items():
        env = run["environment"]
        lines.append(
            f"- **{env_name}**: torch {env['torch']}, {env['threads']} threads, {env['cpu']}, "
            f"load average at end {tuple(round(x, 2) for x in env['load_average'])}, env "
            f"`{json.dumps(env['env'])}`, malloc {json.dumps(env['malloc'])}, "
            f"page faults per fwd+bwd at the headline (SH / floor): "
            f"{extra['faults'][env_name]}"
        )
    probes = [
        f"| `{name}` | "
        + (
            " | ".join("mmap" if v else "heap" for v in probe.values())
            if isinstance(probe, dict)
            else str(probe)
        )
        + " |"
        for name, probe in extra["threshold_probe"].items()
    ]
    return lines + [
        f"- Load average when the benchmark started: {extra['load_start']}; variables removed from the "
        f"default environment: {extra['stripped'] or 'none'}. The tuned environment sets "
        f"`{' '.join(f'{k}={v}' for k, v in extra['tuned_settings'].items())}`.",
        "- glibc serves allocations above its mmap threshold with mmap and unmaps them on free; its dynamic "
        "threshold grows only up to 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit), so by default every "
        "tensor above 32 MiB (here (B, n, d) fp32 = 256 MiB) is page-faulted afresh on every allocation. "
        "Which settings take effect in this glibc (is a 16 / 64 / 256 MiB posix_memalign served by mmap?):",
        "",
        "| setting | 16 MiB | 64 MiB | 256 MiB |",
        "|---|---|---|---|",
        *probes,
        "",
        f"- jemalloc: {extra['jemalloc'] or 'not installed'}; "
        f"tcmalloc: {extra['tcmalloc'] or 'not installed'}.",
        "",
    ]


def report(time_runs: dict[str, dict], nccs_rows: list[dict], extra: dict, quick: bool) -> str:
    """The markdown report (benchmarks/results/topk.md)."""
    points = {(r["n"], r["k"]) for r in nccs_rows}
    head = HEADLINE if HEADLINE in points else max(points)
    command = common.command_line(__file__, ["--quick"] if quick else [])
    lines = [
        "# Top-k operators: time and approximation quality (Appendix B.5, Figures 5 and 6)",
        "",
        f"{common.generated_by(command)}. B={BATCH}, d={DIM}, E ~ U[-1,1], "
        "v ~ U[0,1] "
        "(as in the paper, which used one A100; this is CPU). Times are medians of 3-5 repetitions after a "
        "warm-up, forward with autograd recording on; forward+backward uses a fixed random output gradient "
        "and returns gradients for E and v. nCCS = 1/k sum_i max_j cos(y_i, y^_j) against the real hard "
        "top-k, on "
        "the first max(2, min(16, 2^26/(n k))) samples of the batch.",
        "",
        "![time](topk_time.png)\n\n![nCCS](topk_nccs.png)",
        "",
        *_headline_section(time_runs, nccs_rows, extra, head),
        "",
        *_sorting_section(time_runs, nccs_rows),
        "",
        *_iterative_section(time_runs, nccs_rows),
        "",
        *_tables_section(time_runs, nccs_rows),
        "",
        *_environment_section(time_runs, extra),
    ]
    return "\n".join(lines)


def time_in(env_name: str, quick: bool) -> dict[str, Any]:
    """Timing rows and environment of a child worker in the environment `env_name` (common.child_env)."""
    env, _ = common.child_env(env_name)
    print(f"timing in the {env_name} environment ...", flush=True)
    run = common.run_worker(__file__, {"quick": quick}, env, echo=True)
    if run.result is None or run.returncode:
        raise SystemExit(f"timing in the {env_name} environment failed: {run.reason.splitlines()[0]}")
    return run.result


def page_faults(time_runs: dict[str, dict], head: tuple[int, int]) -> dict[str, str]:
    """Minor page faults "SH / floor" per forward+backward at the headline point, per environment."""
    faults = {}
    for name, run in time_runs.items():
        f = {r["method"]: r["faults"] for r in run["rows"] if (r["n"], r["k"]) == head}
        faults[name] = f"{f.get('sh')} / {f.get('floor')}"
    return faults


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny grid (< 1 min), to check the script works")
    parser.add_argument(
        "--out", type=Path, default=common.RESULTS, help="output folder (default benchmarks/results)"
    )
    parser.add_argument(
        "--point", type=int, nargs=2, metavar=("N", "K"), help="time one (n, k) point and exit"
    )
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.point:
        print(json.dumps(measure_time([tuple(args.point)], quick=True)["rows"], indent=1))
        return
    if args.worker:
        common.serve(args.worker, lambda opts, _: measure_time(grid(opts["quick"]), opts["quick"]))
        return
    points = grid(args.quick)
    started, load_start = time.time(), os.getloadavg()
    names = ["default", "tuned"] + (["jemalloc"] if ctypes.util.find_library("jemalloc") else [])
    print("nCCS ...", flush=True)
    nccs_rows = measure_nccs(points)
    time_runs = {name: time_in(name, args.quick) for name in names}
    tuned_settings = common.child_env("tuned")[1]
    head = HEADLINE if not args.quick else max(points)
    extra = {
        "load_start": tuple(round(x, 2) for x in load_start),
        "stripped": common.stripped_keys(),
        "tuned_settings": tuned_settings,
        "loop_equivalence": loop_equivalence(head),
        "threshold_probe": common.threshold_probe(common.child_env("default")[0]),
        "jemalloc": ctypes.util.find_library("jemalloc"),
        "tcmalloc": ctypes.util.find_library("tcmalloc"),
        "faults": page_faults(time_runs, head),
    }
    stored = {
        "parent": common.environment(),
        "runs": {name: run["environment"] for name, run in time_runs.items()},
        "tuned_settings": tuned_settings,
        "stripped_from_default": extra["stripped"],
        "extra": extra,
        "time_rows": {name: run["rows"] for name, run in time_runs.items()},
        "nccs_rows": nccs_rows,
        "quick": args.quick,
        "wall_seconds": time.time() - started,
    }
    common.write_results(args.out, {"topk.md": report(time_runs, nccs_rows, extra, args.quick),
                                    "topk_env.json": stored})  # fmt: skip
    plot({name: run["rows"] for name, run in time_runs.items()}, nccs_rows, args.out)
    print(
        f"wrote topk.md, topk_time.png, topk_nccs.png, topk_env.json to {args.out} "
        f"in {time.time() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
