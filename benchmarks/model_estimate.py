"""How long a model-benchmark plan will take (bench_models.py --estimate): the analytic FLOPs of each point
(model_zoo.estimate_flops / estimate_generation_flops) at the effective FLOP rates of an earlier run on this
machine (its models_env.json), so the real runs can be sized before they start."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import common
from model_zoo import MODELS, Setting, estimate_flops, estimate_generation_flops

if TYPE_CHECKING:
    from bench_models import Plan

REFERENCE = common.RESULTS / "paper_8k" / "models_env.json"
# bf16 / fp32 time on this project's CPU (issue 17's same-process probes, DeepPyramidion and deep Blockwise at
# 8k: training 7.9 -> 4.2 s and 19.1 -> 12.2 s, generation 13.9 -> 4.0 s and 48.4 -> 11.2 s): the means.
BF16_TIME_FACTOR = {"train": 0.58, "gen": 0.26}
CHILD_OVERHEAD_S = 5.0  # interpreter start, imports, GEMM probe


def _ok_points(reference: dict[str, Any]) -> list[tuple[dict, Setting]]:
    """The measured points of a stored run, each with its Setting."""
    settings = {s["name"]: Setting(**s) for s in reference["plan"]["settings"]}
    points = reference["points"]
    return [(p, settings[p["setting"]]) for p in points if p.get("status") == "ok" and p["model"] in MODELS]


def fitted_rates(reference: dict[str, Any]) -> dict[str, float]:
    """Effective fp32 FLOP/s in a stored run (medians over its measured points): training (analytic FLOPs /
    step time; also the generation's encoder pass) and decoding (decoder FLOPs / the rest of the
    generation time); a bf16 run is converted with BF16_TIME_FACTOR."""
    plan = reference["plan"]
    points = _ok_points(reference)
    train = [
        estimate_flops(p["model"], s, p["n"], p["train_batch"], plan["target"]) / p["train_s"]
        for p, s in points
    ]
    generated = [(p, s) for p, s in points if p.get("gen_s")]
    if not train or not generated:
        raise ValueError("the reference run has no measured training and generation point to fit on")
    gen = []
    for p, s in generated:
        encoder, decode = estimate_generation_flops(
            p["model"], s, p["n"], plan["gen_batch"], plan["gen_tokens"]
        )
        gen.append(decode / max(p["gen_s"] - encoder / statistics.median(train), 0.1 * p["gen_s"]))
    factor = BF16_TIME_FACTOR if plan.get("dtype") == "bf16" else {"train": 1.0, "gen": 1.0}
    return {
        "train": statistics.median(train) * factor["train"],
        "gen": statistics.median(gen) * factor["gen"],
    }


def point_estimate(plan: Plan, setting: Setting, name: str, n: int, batch: int, rates: dict) -> dict:
    """Expected seconds of one point: a training step, a generation, and the child of the first repetition
    (warm-up and timed steps, one FLOP-count pass, warm-up and timed generations) and of a later one."""
    factor = BF16_TIME_FACTOR if plan.dtype == "bf16" else {"train": 1.0, "gen": 1.0}
    step = estimate_flops(name, setting, n, batch, plan.target) / rates["train"] * factor["train"]

    def gen_seconds(tokens: int) -> float:
        encoder, decode = estimate_generation_flops(name, setting, n, plan.gen_batch, tokens)
        return encoder / rates["train"] * factor["train"] + decode / rates["gen"] * factor["gen"]

    gen, warm_gen = gen_seconds(plan.gen_tokens), gen_seconds(min(plan.gen_tokens, 8))
    generates = plan.gen_lengths is None or n in plan.gen_lengths
    later = (
        CHILD_OVERHEAD_S + (plan.warmup + plan.steps) * step + generates * (warm_gen + plan.gen_runs * gen)
    )
    return {"step": step, "gen": gen if generates else None, "first": later + step, "later": later}


def estimate_text(plan: Plan, order: list[tuple[Setting, str, int, int]], reference_path: Path) -> str:
    """The estimate printout for the (setting, model, n, training batch) points: one line per point, then
    the whole run for plan.repeats repetitions."""
    reference = json.loads(Path(reference_path).read_text())
    rates = fitted_rates(reference)
    lines = [
        f"Estimate for {len(order)} point(s) x {plan.repeats} repetition(s), {plan.dtype}, fitted on "
        f"{reference_path} (effective fp32 rates: training {rates['train'] / 1e9:.0f} GFLOP/s, generation "
        f"{rates['gen'] / 1e9:.0f} GFLOP/s"
        + (f"; bf16 time factors {BF16_TIME_FACTOR}" if plan.dtype == "bf16" else "")
        + "):",  # fmt: skip
    ]
    total = 0.0
    for setting, name, n, batch in order:
        e = point_estimate(plan, setting, name, n, batch, rates)
        total += e["first"] + (plan.repeats - 1) * e["later"]
        gen = "-" if e["gen"] is None else f"{e['gen']:.1f} s"
        lines.append(
            f"  {setting.name} {name} n={n} batch {batch}: step {e['step']:.2f} s, generation {gen}, "
            f"child {e['first']:.0f} s"
        )
    lines.append(
        f"expected total: {total:.0f} s = {total / 60:.0f} min (analytic FLOPs at fitted rates: within "
        "about a factor 1.5; sparse attention and small models are less efficient)"
    )
    return "\n".join(lines)
