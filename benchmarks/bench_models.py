"""Model time/memory benchmark (paper §5 "Time benchmarks", Tables 2, 3, 10): our variants vs LED, LongT5,
PEGASUS-X and BART at equal sizes, for 2k-64k-token inputs, and the paper's Table 2 row by row.

    python benchmarks/bench_models.py --quick                      # tiny sizes (< 2 min), checks it works
    python benchmarks/bench_models.py --setting deep --lengths 8192 # one length of the deep comparison
    python benchmarks/bench_models.py --setting shallow            # the 20 rows of Table 2 -> results/table2
    python benchmarks/bench_models.py --setting shallow --estimate # only print the expected duration
    python benchmarks/bench_models.py --device cuda --dtype bf16 --setting deep --lengths 8192,16384

Settings: shallow = 2+2 layers, d=512, FFN 2048 (Table 5); deep = 6+6 layers, d=768, FFN 3072 (Table 6); 8
heads and a 32k vocabulary everywhere. The shallow setting's default models are the 20 rows of Table 2
(presets table2-1 .. table2-20, each at its own input length, training batch 8192 // n on CPU = 16 / 4 / 1
documents at 512 / 2k / 8k and min(64, 65536 // n) on CUDA, generation batch 8 x 512 forced tokens); it also
writes table2.md / table2.png: our times and ratios to the Blockwise row of the same length beside the
paper's (paper_table2.py). --dtype bf16: training under torch.autocast(bfloat16) with fp32 master weights and
optimizer, generation with bf16 weights (model.to(torch.bfloat16)); peers the same way. Every child measures
its own GEMM rate (the setting's FFN matmul over model_point.GEMM_TOKENS tokens, in the dtype): each training
row reports the ceiling time = its FLOPs / that rate and the fraction of it reached. Our models are the
presets of `pyramidion_hf.presets` with their encoder schedule rescaled to each input length n
(`rescale_schedule`: the reduction ratios are kept, e.g. DeepPyramidion at 16k outputs 16k, 16k, 4k, 1k, 1k,
1k). The peers are built locally from their `transformers` configs with random weights (no Hub): LED
(attention window 512, first token global), LongT5 transient-global (local radius 127, global blocks of 16),
PEGASUS-X (blocks of 512, 32 global tokens) and BART with n learned positions (full attention).

Per (model, length) point, each in its own child process (isolation, memory high-water, crash containment):
forced generation (min_new_tokens = max_new_tokens, greedy, KV cache), a training step (forward + backward +
fused AdamW step, the Trainer's default, on random token ids and random 256-token labels), the peak memory
of each phase above the footprint of the built model (CPU: VmHWM, reset through /proc/self/clear_refs; CUDA:
max_memory_allocated), and the FLOPs of one training forward+backward (torch.utils.flop_counter, once per
point; on CPU through SDPA's math backend, whose matmuls it counts, unlike CPU's fused kernel).
Repetitions run round-robin over the models (rep 1 of every point, then rep 2, ...); times are medians over
all timed runs after a warm-up. A point is skipped, with its reason, when an estimate (analytic before any
measurement, extrapolated from the same model's previous length after) says it would not fit in memory or
would exceed the per-point time budget; a failed point (exception, CUDA OOM, killed, timeout) is recorded as
such. Writes models.md, models_time.png, models_memory.png and models_env.json to --out (default
results/ for the deep setting, results/table2 for shallow; with bf16 results/bf16 and results/table2_bf16); a
folder holding results of the other dtype is refused, so fp32 and bf16 results never overwrite each other.

This file is the parent (plan, estimates, scheduling, CLI); model_zoo.py builds the models, model_point.py is
the child of one point, model_report.py writes the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import model_estimate
import model_point
import torch
from common import GIB
from model_report import plot, report, table2_plot, table2_report
from model_zoo import (
    MODELS,
    SETTINGS,
    TABLE2_MODELS,
    Setting,
    count_parameters,
    estimate_memory,
    supports_sdpa,
    tiny,
)  # fmt: skip


def memory_limit(device: str, override_gb: float | None) -> float:
    """Memory a point may use: --memory-limit-gb, else 85% of MemAvailable (CPU) / of the GPU's memory."""
    if override_gb:
        return override_gb * GIB
    if device == "cuda":
        return 0.9 * torch.cuda.get_device_properties(0).total_memory
    text = Path("/proc/meminfo").read_text()
    return 0.85 * int(text.split("MemAvailable:")[1].split()[0]) * 1024


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


def train_batch_for(plan: Plan, name: str, n: int) -> int:
    """--train-batch, else CPU 1 and CUDA min(8, 65536 // n) (8 at 8k, the paper's 64 scaled to one GPU);
    a Table 2 row (paper length L): CPU 8192 // L (8k tokens a step), CUDA min(64, 65536 // L)."""
    if plan.train_batch:
        return plan.train_batch
    length = MODELS[name].length
    if length is not None:
        return max(1, 8192 // length) if plan.device == "cpu" else max(1, min(64, 65536 // length))
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


def _new_points(plan: Plan) -> tuple[list[tuple[Setting, str, int]], dict[tuple[str, str, int], dict]]:
    """The (setting, model, length) order of a repetition and a pending record per point."""
    runs = [
        (setting, name, n)
        for setting in plan.settings
        for name in plan.models
        if setting.name.split(" ")[0] in MODELS[name].settings
        for n in MODELS[name].point_lengths(setting, plan.lengths)
    ]
    order = sorted(runs, key=lambda run: (plan.settings.index(run[0]), run[2]))  # models interleaved per n
    points = {
        (setting.name, name, n): {
            "setting": setting.name,
            "model": name,
            "n": n,
            "params": count_parameters(name, setting, n),
            "runs": [],
            "train_batch": train_batch_for(plan, name, n),
            "status": "pending",
        }  # fmt: skip
        for setting, name, n in order
    }
    return order, points


def _estimate_reason(plan: Plan, point: dict, setting: Setting, done: list[dict], wall: float | None) -> str:
    """Why a point's first repetition must not start (a memory or time estimate over its limit), or ""."""
    name, n = point["model"], point["n"]
    default = 2 if MODELS[name].full_attention else 1
    prev = max(done, key=lambda p: p["n"], default=None)
    mem = predict(prev, n, fitted_exponent(done, "train_mem", default), "train_mem", point["train_batch"])
    if mem is None:
        flash = plan.device == "cuda" and plan.attn == "sdpa" and supports_sdpa(name)
        dtype_bytes = 2 if plan.dtype == "bf16" else 4
        mem = estimate_memory(name, setting, n, point["train_batch"], plan.target, dtype_bytes,
                              point["params"], flash)  # fmt: skip
    if mem > plan.mem_limit and not (plan.device == "cuda" and point["train_batch"] > 1):
        return f"estimated {mem / GIB:.1f} GiB > limit {plan.mem_limit / GIB:.1f} GiB"
    if wall is not None and wall > plan.point_budget:
        return f"estimated {wall:.0f} s > --point-budget {plan.point_budget:.0f} s"
    return ""


def skip_reason(
    plan: Plan, point: dict, setting: Setting, same_model: list[dict], remaining: float, rep: int
) -> str:
    """Why this repetition of a point must not run ("" = run it): the time budget is spent, a shorter
    length of the same model failed, or (first repetition) an estimate is over a limit."""
    n = point["n"]
    default = 2 if MODELS[point["model"]].full_attention else 1
    done = [p for p in same_model if p["n"] < n and p["status"] == "ok"]
    exponent = fitted_exponent(done, "train_phase_s", default)
    expected = (
        point["wall_s"]
        if point["runs"]
        else predict_wall(done, n, exponent, point["train_batch"], generates(plan, n))
    )
    if remaining < min(expected or plan.point_budget, plan.point_budget):
        return "total --time-budget spent"
    if rep > 0:
        return ""
    failed = [p for p in same_model if p["n"] < n and p["status"] in ("failed", "skipped")]
    if failed:
        return f"{failed[0]['status']} at n={failed[0]['n']}"
    return _estimate_reason(plan, point, setting, done, expected)


def generates(plan: Plan, n: int) -> bool:
    """Whether generation is timed at length n (--gen-lengths; default every length)."""
    return plan.gen_lengths is None or n in plan.gen_lengths


def point_opts(plan: Plan, setting: Setting, point: dict, rep: int) -> dict[str, Any]:
    """The options of model_point.run_point for one repetition of a point (FLOPs counted in the first)."""
    return {
        "name": point["model"], "setting": dataclasses.asdict(setting), "n": point["n"],
        "device": plan.device, "dtype": plan.dtype, "train_batch": point["train_batch"],
        "gen_batch": plan.gen_batch, "target": plan.target, "gen_tokens": plan.gen_tokens,
        "steps": plan.steps, "gen_runs": plan.gen_runs, "warmup": plan.warmup, "count_flops": rep == 0,
        "generate": generates(plan, point["n"]), "attn": plan.attn, "seed": rep, "threads": plan.threads,
    }  # fmt: skip


def run_child(plan: Plan, opts: dict[str, Any], env: dict[str, str], remaining: float) -> tuple[dict, str]:
    """(result, "") of a point's child, or ({}, why it failed): killed past 2x the point budget (or what is
    left of the total) or, on CPU, above the memory limit."""
    limit = min(2 * plan.point_budget, max(remaining, 10.0))
    rss_limit = plan.mem_limit if plan.device == "cpu" else None
    run = common.run_worker(__file__, opts, env, limit, rss_limit)
    result = run.result
    if result is not None and run.returncode and "error" not in result:  # killed while counting FLOPs
        result["flops_error"] = run.reason.splitlines()[0]
    if result is None or "error" in result:
        return {}, (result or {}).get("error") or run.reason or f"exit code {run.returncode}"
    return result, ""


def record(point: dict[str, Any], result: dict[str, Any]) -> str:
    """Add a repetition's result to its point; returns the log line's measurements."""
    point["status"] = "ok"
    point["runs"].append(result)
    point["train_batch"] = result["train_batch"]  # after CUDA OOM halving
    for key in ("train_mem", "build_s", "train_phase_s", "gen_phase_s", "wall_s"):
        point[key] = max((r[key] for r in point["runs"] if key in r), default=None)
    for key in ("train_flops", "flops_error"):
        if key in result:
            point[key] = result[key]
    gen = f"{statistics.median(result['gen_s']):.3f} s" if "gen_s" in result else "-"
    return (
        f"train {statistics.median(result['train_s']):.3f} s (batch {result['train_batch']}), gen {gen}, "
        f"train mem {result['train_mem'] / GIB:.2f} GiB, child {result['wall_s']:.0f} s"
    )


def run(plan: Plan, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every point of the plan; returns {"points": [...], ...} (see models_env.json)."""
    env, tuned_settings = common.child_env(plan.env_name)
    started = time.monotonic()
    order, points = _new_points(plan)
    for rep in range(plan.repeats):
        for i, (setting, name, n) in enumerate(order):
            point = points[(setting.name, name, n)]
            if point["status"] not in ("pending", "ok"):
                continue
            remaining = plan.time_budget - (time.monotonic() - started)
            same_model = [p for p in points.values() if (p["setting"], p["model"]) == (setting.name, name)]
            reason = skip_reason(plan, point, setting, same_model, remaining, rep)
            if reason:
                if not point["runs"]:
                    point["status"], point["reason"] = "skipped", reason
                continue
            result, error = run_child(plan, point_opts(plan, setting, point, rep), env, remaining)
            if error:
                log(f"[rep {rep + 1}] {setting.name} {name} n={n}: FAILED {error.splitlines()[0]}")
                if point["runs"]:  # an earlier repetition worked: keep it, note the failure
                    point.setdefault("errors", []).append(error.splitlines()[0])
                else:
                    point["status"], point["reason"] = "failed", error
                continue
            line = record(point, result)
            log(f"[rep {rep + 1}/{plan.repeats} {i + 1}/{len(order)}] {setting.name} {name} n={n}: {line}")
    return {"points": [summarize(p) for p in points.values()], "tuned_settings": tuned_settings,
            "dtype": plan.dtype, "wall_s": time.monotonic() - started}  # fmt: skip


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
        dtype=runs[-1]["dtype"], gemm_flops_per_s=statistics.median(r["gemm_flops_per_s"] for r in runs),
    )  # fmt: skip
    if point.get("train_flops"):  # the step's FLOPs at this process's GEMM rate, and the share reached
        out["train_ceiling_s"] = point["train_flops"] / out["gemm_flops_per_s"]
        out["ceiling_fraction"] = out["train_ceiling_s"] / out["train_s"]
    gens = [t for r in runs for t in r.get("gen_s", [])]
    if gens:
        out.update(
            gen_s=statistics.median(gens), gen_min=min(gens), gen_max=max(gens),
            gen_mem=statistics.median(r["gen_mem"] for r in runs if "gen_mem" in r),
        )  # fmt: skip
    return out


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def default_models(settings: list[str]) -> list[str]:
    """Every model of the deep setting; for the shallow setting the 20 rows of Table 2."""
    deep = [name for name, spec in MODELS.items() if "deep" in spec.settings] if "deep" in settings else []
    return deep + (TABLE2_MODELS if "shallow" in settings else [])


def default_out(settings: list[Setting], dtype: str) -> Path:
    """results/ (deep or both) or results/table2 (shallow), with a _bf16 / bf16 folder for bf16."""
    if [s.name.split(" ")[0] for s in settings] == ["shallow"]:
        return common.RESULTS / ("table2" if dtype == "fp32" else f"table2_{dtype}")
    return common.RESULTS if dtype == "fp32" else common.RESULTS / dtype


def check_out_dtype(out: Path, dtype: str) -> None:
    """Refuse a results folder that holds results of another dtype (fp32 and bf16 never overwrite each
    other)."""
    stored = out / "models_env.json"
    if stored.exists():
        previous = json.loads(stored.read_text()).get("plan", {}).get("dtype", "fp32")
        if previous != dtype:
            raise ValueError(
                f"{out} holds {previous} results; write --dtype {dtype} results to another --out"
            )


def build_plan(args: argparse.Namespace) -> Plan:
    """Plan and model list from the command line (quick mode: tiny sizes and short runs; the shallow
    setting alone: generation batch 8 x 512 tokens, the paper's)."""
    setting = args.setting or ("deep" if args.quick else "both")
    settings = ["shallow", "deep"] if setting == "both" else [setting]
    models = args.models.split(",") if args.models else default_models(settings)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    cpu = args.device == "cpu" and settings != ["shallow"]
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
        point_budget=args.point_budget or (60 if quick else 900 if args.device == "cpu" else 120),
        time_budget=args.time_budget or float("inf"),
        mem_limit=memory_limit(args.device, args.memory_limit_gb),
        env_name=args.env or ("tuned" if args.device == "cpu" else "default"),
        threads=args.threads,
        attn=args.attn,
    )
    return plan


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--dtype", choices=("fp32", "bf16"), default="fp32",
        help="bf16: training under autocast (fp32 master weights), generation with bf16 weights",
    )  # fmt: skip
    parser.add_argument(
        "--setting", choices=("shallow", "deep", "both"),
        help="shallow = Table 2's 20 rows; default both (--quick: deep)",
    )  # fmt: skip
    parser.add_argument("--lengths", help="comma-separated input lengths (default 2048,...,65536)")
    parser.add_argument("--models", help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--repeats", type=int, help="repetitions (child processes) per point (default 3)")
    parser.add_argument("--steps", type=int, help="timed training steps per repetition (default 2)")
    parser.add_argument("--gen-runs", type=int, help="timed generations per repetition (default 2)")
    parser.add_argument(
        "--warmup", type=int, default=2,
        help="untimed training steps per child (default 2: the second step still faults in the optimizer "
        "state's pages, 1.8x the steady step of the deep DeepPyramidion in bf16)",
    )  # fmt: skip
    parser.add_argument("--train-batch", type=int, help="default: CPU 1, CUDA min(8, 65536 // n), OOM halves")
    parser.add_argument("--gen-batch", type=int, help="default: CPU 1, CUDA and --setting shallow 8")
    parser.add_argument(
        "--gen-tokens", type=int, help="forced new tokens (default: CPU 64, CUDA and --setting shallow 512)"
    )
    parser.add_argument("--gen-lengths", help="input lengths at which to time generation (default: all)")
    parser.add_argument("--target", type=int, help="training label length (default 256)")
    parser.add_argument("--point-budget", type=float, help="seconds per child (default CPU 900, CUDA 120)")
    parser.add_argument("--time-budget", type=float, help="seconds for the whole run (later points skipped)")
    parser.add_argument("--memory-limit-gb", type=float, help="per-point memory limit (default: 85%% free)")
    parser.add_argument("--env", choices=("default", "tuned"), help="common.child_env (default CPU: tuned)")
    parser.add_argument("--threads", type=int, help="torch threads in the children (default: torch's)")
    parser.add_argument("--attn", default="sdpa", choices=("sdpa", "eager"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (d=64, n=512,1024, deep setting, 1 repetition), < 2 min",
    )
    parser.add_argument("--out", type=Path, help="default results/, results/table2 (+ bf16 folders)")
    parser.add_argument(
        "--estimate", action="store_true",
        help="print the plan's expected duration (fitted on --estimate-from) and exit without running",
    )  # fmt: skip
    parser.add_argument(
        "--estimate-from", type=Path, default=model_estimate.REFERENCE, help="a models_env.json to fit on"
    )
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        common.serve(args.worker, model_point.worker)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    try:
        plan = build_plan(args)
        out = args.out or default_out(plan.settings, plan.dtype)
        if args.estimate:
            order = [(s, name, n, train_batch_for(plan, name, n)) for s, name, n in _new_points(plan)[0]]
            print(model_estimate.estimate_text(plan, order, args.estimate_from))
            return
        check_out_dtype(out, plan.dtype)
    except (ValueError, OSError) as error:
        raise SystemExit(f"bench_models.py: {error}") from None
    command = common.command_line(__file__, argv)
    load_start = os.getloadavg()
    results = run(plan)
    results["environment"] = common.environment(plan.device)
    results["load_start"] = load_start
    stored = {**results, "plan": dataclasses.asdict(plan), "command": command}
    files: dict[str, str | dict] = {"models.md": report(results, plan, command), "models_env.json": stored}
    if any(MODELS[p["model"]].length for p in results["points"]):
        files["table2.md"] = table2_report(results, plan, command)
    common.write_results(out, files)
    plot(results["points"], out)
    if "table2.md" in files:
        table2_plot(results["points"], out)
    print(f"wrote {', '.join(files)} and plots to {out} in {results['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
