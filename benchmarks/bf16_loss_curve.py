"""bf16 vs fp32 training of the demo recipe (`make demo`'s model, data and schedule): the same seed, weights
and batches trained with Seq2SeqTrainer in fp32 and under autocast bf16 (`--bf16 --use_cpu` on CPU), the loss
of every step side by side, and the seconds per step of each. Writes results/bf16_loss_curve.{md,json,png}.

    python benchmarks/bf16_loss_curve.py              # 200 steps, seeds 42 and 43, each dtype (~12 min)
    python benchmarks/bf16_loss_curve.py --quick      # the SMOKE recipe, seconds: checks that it works

"Within noise": per window of 20 steps, the bf16 - fp32 difference of each seed beside the difference
between the two fp32 runs of different seeds (what a change of seed alone moves the curve), and the
step-to-step noise of an fp32 curve (std of its differences from a 9-step running mean).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
from transformers import TrainerCallback

from pyramidion_hf.training.demo import demo_arguments, demo_size
from pyramidion_hf.training.summarization import run
from pyramidion_hf.training.tokenizer import train_tokenizer_on_dataset

WINDOW = 20


class LossLog(TrainerCallback):
    """The training loss the Trainer logs at each step."""

    def __init__(self) -> None:
        self.losses: dict[int, float] = {}

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.losses[state.global_step] = float(logs["loss"])


def train_curve(size: Any, work: Path, tokenizer: Any, seed: int) -> dict[str, Any]:
    """Train the demo recipe at `size` (its `bf16` field sets the dtype); loss per step and s/step."""
    out = work / f"{'bf16' if size.bf16 else 'fp32'}-{seed}"
    model_args, data_args, training_args = demo_arguments(
        size, out, preset="pyramidion", seed=seed, n_bootstrap=0
    )
    data_args.lead_baseline = False
    training_args.do_predict, training_args.logging_steps, training_args.save_strategy = False, 1, "no"
    log = LossLog()
    start = time.monotonic()
    result = run(model_args, data_args, training_args, tokenizer=tokenizer, callbacks=[log])
    return {
        "dtype": "bf16" if size.bf16 else "fp32",
        "losses": [log.losses[step] for step in sorted(log.losses)],
        "train_runtime_s": result.metrics.get("train_runtime"),
        "wall_s": time.monotonic() - start,
        "s_per_step": result.metrics.get("train_runtime", float("nan")) / size.max_steps,
    }


def noise(losses: list[float]) -> float:
    """Step-to-step noise of a loss curve: std of its differences from a centred 9-step running mean."""
    half = 4
    residuals = [
        losses[i] - statistics.fmean(losses[i - half : i + half + 1]) for i in range(half, len(losses) - half)
    ]
    return statistics.pstdev(residuals) if len(residuals) > 1 else float("nan")


def windows(fp32: list[float], bf16: list[float]) -> list[dict[str, float]]:
    """Mean loss of each dtype over consecutive windows of WINDOW steps, and their difference."""
    rows = []
    for start in range(0, min(len(fp32), len(bf16)), WINDOW):
        a = statistics.fmean(fp32[start : start + WINDOW])
        b = statistics.fmean(bf16[start : start + WINDOW])
        stop = min(start + WINDOW, len(fp32), len(bf16))
        rows.append({"steps": f"{start + 1}-{stop}", "fp32": a, "bf16": b, "diff": b - a})
    return rows


def report(record: dict[str, Any]) -> str:
    """The markdown table: window means per seed and dtype, the differences, the noise, the speed."""
    seeds = list(record["runs"])
    runs = record["runs"]
    sigma = noise(runs[seeds[0]]["fp32"]["losses"])
    window_sigma = sigma / WINDOW**0.5
    seed_windows = windows(runs[seeds[0]]["fp32"]["losses"], runs[seeds[-1]]["fp32"]["losses"])
    by_seed = {seed: windows(runs[seed]["fp32"]["losses"], runs[seed]["bf16"]["losses"]) for seed in seeds}
    header = " | ".join(f"seed {seed} fp32 | seed {seed} bf16 - fp32" for seed in seeds)
    rows = []
    for i, row in enumerate(seed_windows):
        cells = " | ".join(f"{by_seed[s][i]['fp32']:.4f} | {by_seed[s][i]['diff']:+.4f}" for s in seeds)
        rows.append(f"| {row['steps']} | {cells} | {row['diff']:+.4f} |")
    worst_seed = max(abs(row["diff"]) for row in seed_windows)
    worst = {seed: max(abs(row["diff"]) for row in by_seed[seed]) for seed in seeds}
    speed_fp32 = statistics.fmean(runs[seed]["fp32"]["s_per_step"] for seed in seeds)
    speed_bf16 = statistics.fmean(runs[seed]["bf16"]["s_per_step"] for seed in seeds)
    lines = [
        "# bf16 vs fp32 training of the demo recipe",
        "",
        common.generated_by(record["command"]),
        "",
        f"{record['steps']} steps of {record['batch_size']} (the demo's model, data, schedule and seed), "
        "trained with Seq2SeqTrainer in fp32 and under `torch.autocast(bfloat16)` (`--bf16 --use_cpu`: fp32 "
        f"master weights; the top-k tournament runs in fp32 inside). CPU: {record['environment']['cpu']}, "
        f"{record['environment']['threads']} threads, OMP_WAIT_POLICY="
        f"{record['environment']['env'].get('OMP_WAIT_POLICY', 'unset')}; load average before / after: "
        f"{record['load_before']} / {record['load_after']}.",
        "",
        f"Mean training loss per window of {WINDOW} steps:",
        "",
        f"| steps | {header} | fp32 seed {seeds[-1]} - seed {seeds[0]} |",
        "| --- |" + " ---: | ---: |" * len(seeds) + " ---: |",
        *rows,
        "",
        "Largest window difference bf16 - fp32: "
        + ", ".join(f"{worst[seed]:.4f} (seed {seed})" for seed in seeds)
        + f"; between the two fp32 seeds: {worst_seed:.4f}. Step-to-step noise of an fp32 curve: σ = "
        f"{sigma:.4f} per step (σ/√{WINDOW} = {window_sigma:.4f} for a window mean).",
        "",
        "| dtype | s / step (mean over seeds) | relative |",
        "| --- | ---: | ---: |",
        f"| fp32 | {speed_fp32:.3f} | 1.00 |",
        f"| bf16 | {speed_bf16:.3f} | {speed_fp32 / speed_bf16:.2f}x faster |",
        "",
    ]
    return "\n".join(lines)


def plot(record: dict[str, Any], path: Path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for seed, runs in record["runs"].items():
        for dtype, style in (("fp32", "-"), ("bf16", "--")):
            losses = runs[dtype]["losses"]
            ax.plot(range(1, len(losses) + 1), losses, style, label=f"{dtype}, seed {seed}", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Demo recipe: bf16 (autocast) vs fp32")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", default="42,43", help="comma-separated seeds, each trained in both dtypes")
    parser.add_argument("--quick", action="store_true", help="the SMOKE recipe (seconds)")
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    args = parser.parse_args(argv)
    base = demo_size(args.quick, max_steps=args.steps if not args.quick else None)
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="bf16-curve-") as tmp:
        work = Path(tmp)
        tokenizer = train_tokenizer_on_dataset(
            "aclsum", work / "tok", split="train", columns=("article",), vocab_size=base.vocab_size,
            model_max_length=base.max_source_length, max_samples=base.max_train_samples,
        )  # fmt: skip
        runs: dict[str, dict[str, Any]] = {}
        for seed in args.seeds.split(","):
            for bf16 in (False, True):  # per seed, both dtypes start from the same weights and batches
                size = dataclasses.replace(base, bf16=bf16, max_train_minutes=float("inf"))
                curve = train_curve(size, work, tokenizer, int(seed))
                runs.setdefault(seed, {})["bf16" if bf16 else "fp32"] = curve
    record = {
        "command": common.command_line(__file__, argv),
        "steps": base.max_steps,
        "batch_size": base.batch_size,
        "environment": common.environment(),
        "load_before": load_before,
        "load_after": _load(),
        "runs": runs,
    }
    stem = "bf16_loss_curve_quick" if args.quick else "bf16_loss_curve"
    common.write_results(args.out, {f"{stem}.json": record, f"{stem}.md": report(record)})
    plot(record, args.out / f"{stem}.png")
    print(report(record))
    return record


def _load() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


if __name__ == "__main__":
    main(sys.argv[1:])
