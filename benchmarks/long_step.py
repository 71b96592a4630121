"""The longest inputs: one DeepPyramidion training step (deep setting, batch 1, 256-token labels, AdamW) at
each length with activation checkpointing (`model.activation_checkpointing_enable()`: each layer's activations
are recomputed in the backward pass), each length in a fresh child process; its time and peak RSS (VmHWM,
the whole process: weights, gradients, AdamW state and activations). Writes
results/long_step.{md,json} (--quick: long_step_quick.*).

    python benchmarks/long_step.py                        # 65536 and 131072 tokens, fp32
    python benchmarks/long_step.py --lengths 1024 --quick # tiny sizes, seconds: checks that it works

By default the first step is a warm-up (it allocates the AdamW state) and the second is timed; with --steps 1
the one step is reported (with the allocation: at these lengths under a second of it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import common
import torch
from model_point import make_batch, optimizer_step, training_optimizer
from model_zoo import SETTINGS, build_model, tiny

from pyramidion_hf.model_folder import cpu_has_fast_bf16

NAME = "deep-pyramidion"


def step_point(opts: dict[str, Any], checkpoint: Any) -> dict[str, Any]:
    """Child body: build the model at opts["n"], one warm-up and one timed training step."""
    torch.manual_seed(0)
    setting = tiny(SETTINGS["deep"]) if opts["quick"] else SETTINGS["deep"]
    model = build_model(NAME, setting, opts["n"]).train()
    if opts["checkpointing"]:
        model.activation_checkpointing_enable()
    optimizer = training_optimizer(model)
    data = make_batch(NAME, setting.vocab, opts["n"], 1, opts["target"], torch.device("cpu"))
    seconds = []
    for _ in range(opts["steps"]):
        tic = time.perf_counter()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts["dtype"] == "bf16")
        loss = optimizer_step(model, optimizer, data, autocast)
        seconds.append(time.perf_counter() - tic)
        checkpoint({"n": opts["n"], "step_s": seconds, "loss": float(loss)})
    return {
        "n": opts["n"],
        "step_s": seconds,
        "loss": float(loss),
        "params": sum(p.numel() for p in model.parameters()),
        "peak_rss_gib": common.proc_status_kib("VmHWM") / 2**20,
        "encoder_lengths": list(model.config.encoder_lengths),
    }


def report(record: dict[str, Any], command: str) -> str:
    """Markdown table of the steps."""
    env = record["environment"]
    tuning = ", ".join(f"{key}={value}" for key, value in record["tuning"].items())
    lines = [
        "# One training step at the longest inputs (DeepPyramidion, activation checkpointing)",
        "",
        f"{common.generated_by(command)} on {env['cpu']}, {env['threads']} threads, "
        f"**dtype {record['dtype']}**, checkpointing {'on' if record['checkpointing'] else 'off'}, "
        f"allocator / OpenMP settings: {tuning or 'none (glibc defaults)'}. Batch 1, "
        f"{record['target']}-token labels, fused AdamW, {record['steps']} step(s) per length: step s = the "
        "last one, first step s includes allocating the optimizer state; peak RSS of the whole child process "
        "(VmHWM).",
        "",
        "| n | encoder lengths | params | step s | first step s | peak RSS GiB | status |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in record["points"]:
        if row.get("step_s") and "peak_rss_gib" in row:
            lengths = ", ".join(str(x) for x in row["encoder_lengths"])
            lines.append(
                f"| {row['n']} | {lengths} | {row['params'] / 1e6:.1f}M | {row['step_s'][-1]:.1f} | "
                f"{row['step_s'][0]:.1f} | {row['peak_rss_gib']:.1f} | ok |"
            )
        else:
            reason = row.get("reason", "?").splitlines()[0]
            if reason == "exit code -9":
                reason += " (SIGKILL: the kernel's out-of-memory killer, or the time limit)"
            lines.append(f"| {row['n']} | - | - | - | - | - | **failed**: {reason} |")
    if record["dtype"] == "bf16" and not record["cpu_has_fast_bf16"]:
        lines += ["", f"{common.NO_BF16_UNITS}: bf16 ran emulated."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--lengths", default="65536,131072", help="comma-separated input lengths")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--no-checkpointing", action="store_true", help="keep every activation")
    parser.add_argument("--quick", action="store_true", help="tiny model (seconds)")
    parser.add_argument("--env", choices=("tuned", "default"), default="tuned", help="common.child_env")
    parser.add_argument("--target", type=int, default=256, help="label length")
    parser.add_argument("--steps", type=int, default=2, help="training steps per length (the last is timed)")
    parser.add_argument("--point-budget", type=float, default=1500, help="seconds per child")
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        common.serve(args.worker, step_point)
        return None
    env, tuning = common.child_env(args.env)
    record: dict[str, Any] = {
        "dtype": args.dtype,
        "checkpointing": not args.no_checkpointing,
        "target": args.target,
        "steps": args.steps,
        "env": args.env,
        "tuning": tuning,
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "points": [],
    }
    for n in (int(x) for x in args.lengths.split(",")):
        opts = dict(
            n=n, dtype=args.dtype, checkpointing=not args.no_checkpointing, quick=args.quick, steps=args.steps
        )
        run = common.run_worker(__file__, {**opts, "target": args.target}, env, timeout=args.point_budget)
        record["points"].append(
            {**(run.result or {"n": n}), **({"reason": run.reason} if run.reason else {})}
        )
        print(record["points"][-1], flush=True)
    stem = "long_step_quick" if args.quick else "long_step"
    common.publish(args.out, stem, record, report, common.command_line(__file__, argv))
    return record


if __name__ == "__main__":
    main()
