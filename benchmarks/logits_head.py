"""What fp32 logits cost a bf16 model: milliseconds per call of the LM head (vocab x d) in a decode step, for
greedy rows (batch 8) and beam rows (4 beams x 8): bf16 logits; ours (`precision.lm_head_logits`: in a decode
step the bf16 matmul, then its best `REFINED_CANDIDATES` tokens per row recomputed in fp32); the exact fp32
logits of the bf16 weights by chunked conversion (`fp32_linear`, what ours does for several positions per
row: prefill, evaluation); the whole matrix converted per call; fp32 weights. Each is timed warm (the head
stays in the CPU's cache from the call before) and cold (a buffer larger than the cache is read between
calls, as the decoder's weights are between two decode steps); one process, the variants interleaved
round-robin, medians. Writes results/logits_head.{md,json} (--quick: logits_head_quick.*).

    python benchmarks/logits_head.py             # deep setting: vocab 32000, d 768
    python benchmarks/logits_head.py --quick     # tiny sizes, seconds: checks that it works
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import torch
import torch.nn.functional as F
from model_zoo import SETTINGS, tiny

from pyramidion_hf.model_folder import cpu_has_fast_bf16
from pyramidion_hf.modeling.precision import REFINED_CANDIDATES, fp32_linear, lm_head_logits

BASELINE = "bf16 logits"
OURS = "ours: bf16 matmul, top candidates in fp32"
EXACT = "exact fp32 logits, chunked conversion"
# tokens per row where accuracy is checked: well inside the refined candidates (those are the best of the
# bf16 logits, so the exact ranking's last few candidates may fall outside them)
TOP_CHECKED = REFINED_CANDIDATES // 2
EVICT_BYTES = 256 << 20  # read between cold calls: more than the last-level cache of the machines used


def variants(vocab: int, d_model: int) -> dict[str, tuple[Callable, torch.dtype]]:
    """name -> (the head applied as that variant, the dtype of its input) for a random (vocab, d) head."""
    head = torch.nn.Linear(d_model, vocab, bias=False)
    bf16 = torch.nn.Linear(d_model, vocab, bias=False).to(torch.bfloat16)
    bf16.weight.data.copy_(head.weight.data)
    return {
        BASELINE: (bf16, torch.bfloat16),
        OURS: (lambda h: lm_head_logits(bf16, h), torch.bfloat16),
        EXACT: (lambda h: fp32_linear(bf16, h), torch.bfloat16),
        "fp32 logits, whole matrix converted": (
            lambda h: F.linear(h.float(), bf16.weight.float()),
            torch.bfloat16,
        ),
        "fp32 weights": (head, torch.float32),
    }


def _accuracy(logits: torch.Tensor, exact: torch.Tensor) -> dict[str, float]:
    """How `logits` (rows, 1, vocab) differ from the exact ones: at each row's TOP_CHECKED best exact tokens
    and anywhere, and how many rows pick the exact argmax."""
    top = exact.topk(min(TOP_CHECKED, exact.shape[-1]), dim=-1).indices
    return {
        "max_abs_diff_top": (logits.gather(-1, top) - exact.gather(-1, top)).abs().max().item(),
        "max_abs_diff": (logits - exact).abs().max().item(),
        "argmax_agrees": (logits.argmax(-1) == exact.argmax(-1)).float().mean().item(),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time every variant on each row count, warm and cold; returns the record."""
    torch.manual_seed(0)
    setting = tiny(SETTINGS["deep"]) if args.quick else SETTINGS["deep"]
    heads = variants(setting.vocab, setting.d_model)
    evict = torch.ones((1 << 20) if args.quick else EVICT_BYTES // 4)
    rows: dict[str, dict[str, Any]] = {}
    with torch.no_grad():
        for label, count in (("greedy, batch 8", 8), ("beam 4 x batch 8", 32)):
            hidden = torch.randn(count, 1, setting.d_model).bfloat16()
            seconds: dict[str, dict[str, list[float]]] = {"warm": {}, "cold": {}}
            for _ in range(args.repeats + 1):  # the first round warms up
                for name, (apply, dtype) in heads.items():
                    inputs = hidden.to(dtype)
                    for mode in ("warm", "cold"):
                        if mode == "cold":
                            evict.sum()
                        tic = time.perf_counter()
                        apply(inputs)
                        seconds[mode].setdefault(name, []).append(time.perf_counter() - tic)
            exact = heads[EXACT][0](hidden)
            rows[label] = {
                "rows": count,
                "ms": {
                    mode: {name: 1000 * statistics.median(times[1:]) for name, times in by_name.items()}
                    for mode, by_name in seconds.items()
                },
                "accuracy": {
                    name: _accuracy(apply(hidden.to(dtype)).float(), exact)
                    for name, (apply, dtype) in heads.items()
                },
            }
    return {
        "vocab": setting.vocab,
        "d_model": setting.d_model,
        "refined_candidates": REFINED_CANDIDATES,
        "top_checked": TOP_CHECKED,
        "repeats": args.repeats,
        "quick": args.quick,
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "results": rows,
    }


def report(record: dict[str, Any], command: str) -> str:
    """Markdown: ms per call of each variant, warm and cold, relative to bf16 logits, and its accuracy."""
    env = record["environment"]
    lines = [
        "# fp32 logits for bf16 models: the LM head's cost in a decode step",
        "",
        f"{common.generated_by(command)}: a {record['vocab']} x {record['d_model']} head, one token per row, "
        f"medians of {record['repeats']} interleaved calls after a warm-up; {common.machine(env)}. Cold: "
        f"{EVICT_BYTES >> 20} MiB read before each call. Differences are to the exact fp32 logits of the "
        f"bf16 weights; 'top' = each row's {record['top_checked']} best tokens (ours recomputes the "
        f"{record['refined_candidates']} best of the bf16 matmul).",
        "",
        "| rows | variant | warm ms | vs bf16 | cold ms | vs bf16 | max abs diff (top) | max abs diff | "
        "argmax exact |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in record["results"].items():
        warm, cold = row["ms"]["warm"], row["ms"]["cold"]
        for name in warm:
            acc = row["accuracy"][name]
            lines.append(
                f"| {label} | {name} | {warm[name]:.2f} | {warm[name] / warm[BASELINE]:.2f}x | "
                f"{cold[name]:.2f} | {cold[name] / cold[BASELINE]:.2f}x | {acc['max_abs_diff_top']:.1e} | "
                f"{acc['max_abs_diff']:.1e} | {100 * acc['argmax_agrees']:.0f} % |"
            )
    lines.append("")
    if not record["cpu_has_fast_bf16"]:
        lines.append(
            f"{common.NO_BF16_UNITS}: its bf16 matmul is emulated, so the bf16 rows are no baseline for bf16 "
            "hardware."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check that it works)")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    args = parser.parse_args(argv)
    record = measure(args)
    stem = "logits_head_quick" if args.quick else "logits_head"
    common.publish(args.out, stem, record, report, common.command_line(__file__, argv))
    return record


if __name__ == "__main__":
    main()
