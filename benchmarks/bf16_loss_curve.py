"""bf16 vs fp32 training of the demo recipe (`make demo`'s model, data and schedule): the same seed, weights
and batches trained with Seq2SeqTrainer in fp32 and under autocast bf16 (`--bf16 --use_cpu` on CPU), the loss
of every step side by side, and the seconds per step of each. Writes results/bf16_loss_curve.{md,json,png}.

    python benchmarks/bf16_loss_curve.py              # 200 steps of the demo recipe in each dtype (~15 min)
    python benchmarks/bf16_loss_curve.py --quick      # the SMOKE recipe, seconds: checks that it works

"Within noise": the two curves are compared with the step-to-step noise of the fp32 curve itself (the
standard deviation of its differences from a 9-step running mean), over windows of 20 steps.
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
    model_args, data_args, training_args = demo_arguments(
        size, work / ("bf16" if size.bf16 else "fp32"), preset="pyramidion", seed=seed, n_bootstrap=0
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
    """The markdown table: window means, the fp32 noise, the speed of each dtype."""
    fp32, bf16 = record["runs"]["fp32"], record["runs"]["bf16"]
    sigma = noise(fp32["losses"])
    window_sigma = sigma / WINDOW**0.5
    worst = max(abs(row["diff"]) for row in record["windows"])
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
        "| steps | fp32 loss | bf16 loss | bf16 - fp32 |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {row['steps']} | {row['fp32']:.4f} | {row['bf16']:.4f} | {row['diff']:+.4f} |"
            for row in record["windows"]
        ),
        "",
        f"Step-to-step noise of the fp32 curve: σ = {sigma:.4f} per step, σ/√{WINDOW} = {window_sigma:.4f} "
        f"for a {WINDOW}-step mean; the largest window difference is {worst:.4f} "
        f"({worst / window_sigma:.1f} σ of a window mean).",
        "",
        "| dtype | s / step | relative |",
        "| --- | ---: | ---: |",
        f"| fp32 | {fp32['s_per_step']:.3f} | 1.00 |",
        f"| bf16 | {bf16['s_per_step']:.3f} | {fp32['s_per_step'] / bf16['s_per_step']:.2f}x faster |",
        "",
    ]
    return "\n".join(lines)


def plot(record: dict[str, Any], path: Path) -> None:
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for dtype, style in (("fp32", "-"), ("bf16", "--")):
        losses = record["runs"][dtype]["losses"]
        ax.plot(range(1, len(losses) + 1), losses, style, label=dtype, linewidth=1)
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
    parser.add_argument("--seed", type=int, default=42)
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
        runs = {}
        for bf16 in (False, True):  # fp32 first; each run starts from the same seed
            size = dataclasses.replace(base, bf16=bf16, max_train_minutes=float("inf"))
            runs["bf16" if bf16 else "fp32"] = train_curve(size, work, tokenizer, args.seed)
    record = {
        "command": common.command_line(__file__, argv),
        "steps": base.max_steps,
        "batch_size": base.batch_size,
        "environment": common.environment(),
        "load_before": load_before,
        "load_after": _load(),
        "runs": runs,
        "windows": windows(runs["fp32"]["losses"], runs["bf16"]["losses"]),
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
