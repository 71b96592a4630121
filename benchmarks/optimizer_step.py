"""The optimizer's share of a training step: seconds per AdamW step over the deep DeepPyramidion's parameters
(124M) with torch's foreach implementation (torch.optim.AdamW's default) and the fused one (the Trainer's
default optim, "adamw_torch_fused"), in one process, interleaved round-robin, medians; random gradients.
Writes results/optimizer_step.{md,json} (--quick: optimizer_step_quick.*).

    python benchmarks/optimizer_step.py            # deep setting
    python benchmarks/optimizer_step.py --quick    # tiny sizes, seconds: checks that it works
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import common
import torch
from model_zoo import SETTINGS, build_model, tiny

IMPLEMENTATIONS = {"foreach": {"foreach": True}, "fused": {"fused": True}}
NAME = "deep-pyramidion"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time `repeats` steps of each implementation on the same parameters and gradients."""
    torch.manual_seed(0)
    setting = tiny(SETTINGS["deep"]) if args.quick else SETTINGS["deep"]
    params = list(build_model(NAME, setting, args.n).parameters())
    for param in params:
        param.grad = torch.randn_like(param) * 1e-3
    optimizers = {
        name: torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1, **options)
        for name, options in IMPLEMENTATIONS.items()
    }
    seconds: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(args.repeats + 1):  # the first round allocates the state and warms up
        for name, optimizer in optimizers.items():
            tic = time.perf_counter()
            optimizer.step()
            seconds[name].append(time.perf_counter() - tic)
    return {
        "model": NAME,
        "n": args.n,
        "params": sum(param.numel() for param in params),
        "quick": args.quick,
        "repeats": args.repeats,
        "seconds": seconds,
        "median_s": {name: statistics.median(times[1:]) for name, times in seconds.items()},
    }


def report(record: dict[str, Any], command: str) -> str:
    """Markdown: median seconds per step of each implementation and the ratio to foreach."""
    env, medians = record["environment"], record["median_s"]
    lines = [
        "# AdamW step: foreach vs fused",
        "",
        f"{common.generated_by(command)}: the {record['params'] / 1e6:.1f}M fp32 parameters of "
        f"{record['model']} (deep setting), random gradients, medians of {record['repeats']} interleaved "
        f"steps after one; {common.machine(env)}.",
        "",
        "| AdamW | s / step | speed-up over foreach |",
        "|---|---|---|",
    ]
    for name, value in medians.items():
        lines.append(f"| {name} | {value:.3f} | {medians['foreach'] / value:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check that it works)")
    parser.add_argument("--n", type=int, default=8192, help="input length the model is built for")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    args = parser.parse_args(argv)
    record = measure(args)
    stem = "optimizer_step_quick" if args.quick else "optimizer_step"
    common.publish(args.out, stem, record, report, common.command_line(__file__, argv))
    return record


if __name__ == "__main__":
    main()
