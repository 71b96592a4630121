"""bf16 vs fp32 inference of a trained model folder (default: `make demo`'s outputs/demo/model): the summaries
of the ACLSum test papers generated through the summarization pipeline with fp32 weights and with bf16
weights (the saved generation config, e.g. the demo's no-repeat-ngram 3), how many are identical, ROUGE of
each dtype against the reference abstracts (with 95 % bootstrap intervals), ROUGE of the bf16 summaries with
the fp32 ones as references, and the seconds per paper of each. Writes results/dtype_agreement.{md,json}.

    python benchmarks/dtype_agreement.py                        # after `make demo`
    python benchmarks/dtype_agreement.py --model DIR --papers 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import common

from pyramidion_hf.model_folder import cpu_has_fast_bf16
from pyramidion_hf.training.aclsum import load_aclsum
from pyramidion_hf.training.metrics import ROUGE_KEYS, rouge_with_ci
from pyramidion_hf.training.summarize import load_pipeline, summarize

DTYPES = ("fp32", "bf16")


def generate_all(model: Path, articles: list[str], dtype: str) -> tuple[list[str], list[float]]:
    """Each article's summary in `dtype` and the seconds it took."""
    pipe = load_pipeline(model, dtype=dtype)
    summaries, seconds = [], []
    for article in articles:
        tic = time.perf_counter()
        summaries.append(summarize(pipe, article))
        seconds.append(time.perf_counter() - tic)
    return summaries, seconds


def measure(model: Path, papers: int | None, n_bootstrap: int) -> dict[str, Any]:
    """Summaries in both dtypes and their comparison (see the module docstring)."""
    test = load_aclsum("test")
    rows = test.select(range(min(papers, len(test)))) if papers else test
    articles, references = list(rows["article"]), list(rows["abstract"])
    summaries, seconds = {}, {}
    for dtype in DTYPES:
        summaries[dtype], seconds[dtype] = generate_all(model, articles, dtype)
    identical = sum(a == b for a, b in zip(summaries["fp32"], summaries["bf16"], strict=True))
    return {
        "model": str(model),
        "papers": len(articles),
        "identical": identical,
        "rouge_vs_reference": {
            dtype: rouge_with_ci(summaries[dtype], references, n_bootstrap=n_bootstrap) for dtype in DTYPES
        },
        "rouge_bf16_vs_fp32": rouge_with_ci(summaries["bf16"], summaries["fp32"], n_bootstrap=n_bootstrap),
        "seconds_per_paper": {dtype: statistics.median(seconds[dtype]) for dtype in DTYPES},
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "summaries": summaries,
    }


def _scores(scores: dict[str, float]) -> str:
    return " | ".join(
        f"{scores[k]:.2f} [{scores[k + '_low']:.2f}, {scores[k + '_high']:.2f}]" for k in ROUGE_KEYS
    )


def report(record: dict[str, Any], command: str) -> str:
    """Markdown: agreement, ROUGE both dtypes, ROUGE of bf16 against fp32, time per paper."""
    papers, identical = record["papers"], record["identical"]
    header = " | ".join(ROUGE_KEYS)
    lines = [
        "# bf16 vs fp32 inference: the same summaries?",
        "",
        f"{common.generated_by(command)}: `{record['model']}`, the first {papers} ACLSum test papers, "
        "summarization pipeline with the folder's generation config, weights in each dtype.",
        "",
        f"**Identical summaries: {identical} of {papers} ({100 * identical / papers:.0f} %).**",
        "",
        f"| summaries | scored against | {header} | s / paper (median) |",
        "|---|---|" + "---|" * len(ROUGE_KEYS) + "---|",
    ]
    for dtype in DTYPES:
        scores = _scores(record["rouge_vs_reference"][dtype])
        lines.append(
            f"| {dtype} | reference abstracts | {scores} | {record['seconds_per_paper'][dtype]:.2f} |"
        )
    lines.append(f"| bf16 | the fp32 summaries | {_scores(record['rouge_bf16_vs_fp32'])} | - |")
    lines += ["", "ROUGE F1 x 100 with 95 % bootstrap intervals."]
    if not record["cpu_has_fast_bf16"]:
        lines.append(
            "This CPU has no bf16 units (no avx512_bf16 / amx_bf16): bf16 ran emulated, so its time per "
            "paper says nothing about bf16 hardware; the summaries carry bf16's rounding of weights and "
            "activations, though a hardware kernel may accumulate in another order."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", type=Path, default=Path("outputs/demo/model"), help="a saved model folder")
    parser.add_argument("--papers", type=int, default=None, help="the first N test papers (default: all 100)")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    parser.add_argument("--stem", default="dtype_agreement", help="file name of the results")
    args = parser.parse_args(argv)
    record = measure(args.model, args.papers, args.n_bootstrap)
    common.publish(args.out, args.stem, record, report, common.command_line(__file__, argv))
    return record


if __name__ == "__main__":
    main()
