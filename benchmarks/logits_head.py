"""What fp32 logits cost a bf16 model: milliseconds per call of the LM head (vocab x d) in a decode step, for
greedy rows (batch 8) and beam rows (4 beams x 8), with bf16 logits, with our fp32 logits from the bf16
weights (`precision.lm_head_logits`: chunked conversion), with the whole matrix converted per call, and with
fp32 weights; one process, the variants interleaved round-robin, medians. Writes results/logits_head.{md,json}
(--quick: logits_head_quick.*).

    python benchmarks/logits_head.py             # deep setting: vocab 32000, d 768
    python benchmarks/logits_head.py --quick     # tiny sizes, seconds: checks that it works

Context: the deep DeepPyramidion decode step (batch 8, bf16) took ~53 ms on a CPU with AVX512-BF16
(paper_8k_bf16), of which the head is a few ms.
"""

from __future__ import annotations

import argparse
import functools
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
from pyramidion_hf.modeling.precision import FP32_CHUNK_ROWS, lm_head_logits

BASELINE = "bf16 logits"
OURS = "fp32 logits from bf16 weights (ours, chunked)"


def variants(vocab: int, d_model: int) -> dict[str, tuple[Callable, torch.dtype]]:
    """name -> (the head applied as that variant, the dtype of its input) for a random (vocab, d) head."""
    head = torch.nn.Linear(d_model, vocab, bias=False)
    bf16 = torch.nn.Linear(d_model, vocab, bias=False).to(torch.bfloat16)
    bf16.weight.data.copy_(head.weight.data)
    ours = functools.partial(lm_head_logits, bf16)
    return {
        BASELINE: (bf16, torch.bfloat16),
        OURS: (ours, torch.bfloat16),
        "fp32 logits, whole matrix converted": (
            lambda h: F.linear(h.float(), bf16.weight.float()),
            torch.bfloat16,
        ),
        "fp32 weights": (head, torch.float32),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Time every variant on each row count; returns the record."""
    torch.manual_seed(0)
    setting = tiny(SETTINGS["deep"]) if args.quick else SETTINGS["deep"]
    heads = variants(setting.vocab, setting.d_model)
    rows: dict[str, dict[str, Any]] = {}
    with torch.no_grad():
        for label, count in (("greedy, batch 8", 8), ("beam 4 x batch 8", 32)):
            hidden = torch.randn(count, 1, setting.d_model)
            seconds: dict[str, list[float]] = {name: [] for name in heads}
            for _ in range(args.repeats + 1):  # the first round warms up
                for name, (apply, dtype) in heads.items():
                    inputs = hidden.to(dtype)
                    tic = time.perf_counter()
                    apply(inputs)
                    seconds[name].append(time.perf_counter() - tic)
            medians = {name: statistics.median(times[1:]) for name, times in seconds.items()}
            outputs = {name: apply(hidden.to(dtype)).float() for name, (apply, dtype) in heads.items()}
            ours = outputs[OURS]
            rows[label] = {
                "rows": count,
                "ms": {name: 1000 * s for name, s in medians.items()},
                "max_abs_diff_to_ours": {
                    name: (out - ours).abs().max().item() for name, out in outputs.items()
                },
            }
    return {
        "vocab": setting.vocab,
        "d_model": setting.d_model,
        "chunk_rows": FP32_CHUNK_ROWS,
        "repeats": args.repeats,
        "quick": args.quick,
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "results": rows,
    }


def report(record: dict[str, Any], command: str) -> str:
    """Markdown: ms per call of each variant and its time relative to bf16 logits."""
    env = record["environment"]
    lines = [
        "# fp32 logits for bf16 models: the LM head's cost in a decode step",
        "",
        f"{common.generated_by(command)}: a {record['vocab']} x {record['d_model']} head, one token per row, "
        f"medians of {record['repeats']} interleaved calls after a warm-up; {common.machine(env)}.",
        "",
        "| rows | variant | ms / call | vs bf16 logits | max abs difference to ours |",
        "|---|---|---|---|---|",
    ]
    for label, row in record["results"].items():
        base = row["ms"][BASELINE]
        for name, ms in row["ms"].items():
            diff = row["max_abs_diff_to_ours"][name]
            lines.append(f"| {label} | {name} | {ms:.2f} | {ms / base:.2f}x | {diff:.1e} |")
    lines.append("")
    if not record["cpu_has_fast_bf16"]:
        lines.append(
            f"{common.NO_BF16_UNITS}: its bf16 matmul is emulated, so the "
            "bf16 row is no baseline for bf16 hardware; the fp32 rows compare the chunked conversion with a "
            "whole-matrix conversion and with fp32 weights."
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
