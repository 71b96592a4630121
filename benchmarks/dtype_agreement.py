"""bf16 vs fp32 inference of a trained model folder (default: `make demo`'s outputs/demo/model): the summaries
of the ACLSum test papers generated through the summarization pipeline with fp32 weights, with bf16 weights,
with fp32 weights under bf16 autocast (what the Trainer's `--bf16` evaluation runs) and -- the control -- with
the bf16-rounded weights computing in fp32 (the saved generation config, e.g. the demo's no-repeat-ngram 3):
how many are identical to fp32's, ROUGE of each against the reference abstracts (with 95 % bootstrap
intervals) and against the fp32 summaries, and the seconds per paper of each. The control separates what
rounding the weights changes (a bf16 checkpoint is a slightly different model) from what bf16 arithmetic
adds. Writes results/dtype_agreement.{md,json}.

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
import torch

from pyramidion_hf.model_folder import cpu_has_fast_bf16
from pyramidion_hf.training.aclsum import load_aclsum
from pyramidion_hf.training.metrics import ROUGE_KEYS, rouge_with_ci
from pyramidion_hf.training.summarize import load_pipeline, summarize

AUTOCAST = "fp32 weights, bf16 autocast"
ROUNDED = "bf16-rounded weights, fp32 arithmetic"
VARIANTS = ("fp32", "bf16", AUTOCAST, ROUNDED)
LOADED_AS = {"fp32": "fp32", "bf16": "bf16", AUTOCAST: "fp32", ROUNDED: "bf16"}  # the pipeline's dtype


def generate_all(model: Path, articles: list[str], variant: str) -> tuple[list[str], list[float]]:
    """Each article's summary with the weights and arithmetic of `variant` and the seconds it took."""
    pipe = load_pipeline(model, dtype=LOADED_AS[variant])
    if variant == ROUNDED:
        pipe.model.float()
    summaries, seconds = [], []
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == AUTOCAST):
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
    for variant in VARIANTS:
        summaries[variant], seconds[variant] = generate_all(model, articles, variant)
    others = VARIANTS[1:]
    return {
        "model": str(model),
        "papers": len(articles),
        "identical_to_fp32": {
            name: sum(a == b for a, b in zip(summaries["fp32"], summaries[name], strict=True))
            for name in others
        },
        "rouge_vs_reference": {
            name: rouge_with_ci(summaries[name], references, n_bootstrap=n_bootstrap) for name in VARIANTS
        },
        "rouge_vs_fp32": {
            name: rouge_with_ci(summaries[name], summaries["fp32"], n_bootstrap=n_bootstrap)
            for name in others
        },
        "seconds_per_paper": {name: statistics.median(seconds[name]) for name in VARIANTS},
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "summaries": summaries,
    }


def _scores(scores: dict[str, float]) -> str:
    return " | ".join(
        f"{scores[k]:.2f} [{scores[k + '_low']:.2f}, {scores[k + '_high']:.2f}]" for k in ROUGE_KEYS
    )


def report(record: dict[str, Any], command: str) -> str:
    """Markdown: identical counts, ROUGE of each variant against the abstracts and the fp32 summaries."""
    papers, identical = record["papers"], record["identical_to_fp32"]
    header = " | ".join(ROUGE_KEYS)
    counts = "; ".join(f"{name}: {count} of {papers}" for name, count in identical.items())
    lines = [
        "# bf16 vs fp32 inference: the same summaries?",
        "",
        f"{common.generated_by(command)}: `{record['model']}`, the first {papers} ACLSum test papers, "
        "summarization pipeline with the folder's generation config. bf16: the model loaded in bf16 (its "
        "pooling scores and logits computed in fp32 from the bf16 weights); autocast: the fp32 model under "
        "`torch.autocast(bfloat16)`, as in the Trainer's `--bf16` evaluation (matmuls in bf16, pooling "
        "scores and logits in fp32); the control: the bf16-rounded weights computing in fp32.",
        "",
        f"**Summaries identical to fp32's: {counts}.**",
        "",
        f"| summaries | identical to fp32 | scored against | {header} | s / paper (median) |",
        "|---|---|---|" + "---|" * len(ROUGE_KEYS) + "---|",
    ]
    for name in VARIANTS:
        same = identical.get(name, "-")
        scores = _scores(record["rouge_vs_reference"][name])
        seconds = record["seconds_per_paper"][name]
        lines.append(f"| {name} | {same} | reference abstracts | {scores} | {seconds:.2f} |")
        if name in record["rouge_vs_fp32"]:
            lines.append(
                f"| {name} | {same} | the fp32 summaries | {_scores(record['rouge_vs_fp32'][name])} | - |"
            )
    lines += ["", "ROUGE F1 x 100 with 95 % bootstrap intervals."]
    if not record["cpu_has_fast_bf16"]:
        lines.append(
            f"{common.NO_BF16_UNITS}: bf16 ran emulated, so its time per "
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
