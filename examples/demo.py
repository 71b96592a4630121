#!/usr/bin/env python
"""The main job (`make demo`): train and evaluate a small Pyramidion summarizer on ACLSum, on a CPU.

Steps: (1) train a BPE tokenizer on the ACLSum train articles; (2) train a small Pyramidion (blockwise
attention, representation pooling inside the encoder) with `Seq2SeqTrainer`; (3) generate summaries of the
ACLSum test papers and score them with ROUGE-1/2/L/Lsum and 95% bootstrap intervals, beside the Lead baseline
scored by the same metric; (4) summarize one held-out paper through the summarization pipeline; (5) write
`outputs/demo/metrics.json`, `outputs/demo/explain.html` (which tokens of the held-out paper survived each
pooling layer) and a Hub-ready model folder whose model card carries the metrics.

    python examples/demo.py            # ~10 minutes on 2 CPU cores
    python examples/demo.py --smoke    # a tiny end-to-end run (tests)

A rerun resumes from the last checkpoint in outputs/demo/model (`--overwrite` starts from scratch).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, Seq2SeqTrainingArguments, TrainerCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run_summarization as rs  # noqa: E402
import summarize as summarize_cli  # noqa: E402
import train_tokenizer as tokenizer_cli  # noqa: E402

from pyramidion_hf.analysis.explain import explain  # noqa: E402
from pyramidion_hf.hub import export_repo  # noqa: E402
from pyramidion_hf.training.data import load_summarization_data  # noqa: E402
from pyramidion_hf.training.metrics import split_sentences  # noqa: E402

logger = logging.getLogger("demo")


@dataclass(frozen=True)
class DemoSize:
    """Everything that sets the demo's cost: input length, model size, data and steps."""

    max_source_length: int
    encoder_lengths: tuple[int, ...]
    block_size: int
    d_model: int
    heads: int
    ffn_dim: int
    decoder_layers: int
    vocab_size: int
    max_target_length: int
    max_steps: int
    batch_size: int
    learning_rate: float
    max_train_samples: int | None
    max_predict_samples: int | None
    generation_max_length: int
    max_train_minutes: float


FULL = DemoSize(
    max_source_length=2048,
    encoder_lengths=(512, 256),
    block_size=256,
    d_model=192,
    heads=4,
    ffn_dim=768,
    decoder_layers=2,
    vocab_size=8000,
    max_target_length=192,
    max_steps=220,
    batch_size=8,
    learning_rate=3e-3,
    max_train_samples=None,
    max_predict_samples=None,
    generation_max_length=160,
    max_train_minutes=7.0,
)
SMOKE = DemoSize(
    max_source_length=256,
    encoder_lengths=(256, 64),
    block_size=64,
    d_model=32,
    heads=2,
    ffn_dim=64,
    decoder_layers=1,
    vocab_size=400,
    max_target_length=48,
    max_steps=6,
    batch_size=2,
    learning_rate=3e-3,
    max_train_samples=8,
    max_predict_samples=4,
    generation_max_length=24,
    max_train_minutes=5.0,
)


class TimeLimit(TrainerCallback):
    """Stop training (and save a checkpoint) after `minutes`: the demo keeps to its time on slow machines."""

    def __init__(self, minutes: float) -> None:
        self.deadline = time.monotonic() + 60.0 * minutes
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if time.monotonic() > self.deadline and not control.should_training_stop:
            control.should_training_stop = True
            control.should_save = True
            self.stopped_at = state.global_step
        return control


def config_overrides(size: DemoSize) -> str:
    """The --config_overrides string for the preset."""
    lengths = ",".join(str(n) for n in size.encoder_lengths)
    return (
        f"max_position_embeddings={size.max_source_length},encoder_lengths=[{lengths}],block_size={size.block_size},"
        f"d_model={size.d_model},encoder_attention_heads={size.heads},decoder_attention_heads={size.heads},"
        f"encoder_ffn_dim={size.ffn_dim},decoder_ffn_dim={size.ffn_dim},decoder_layers={size.decoder_layers},"
        # pre-norm tolerates the high learning rate of a minutes-long run from scratch; decoder positions give
        # the decoder word order (the paper uses none)
        "dropout=0.1,normalize_before=True,decoder_position_embeddings=sinusoidal"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Demo flags: --smoke for a tiny run, explicit sizes to override either profile."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", default="outputs/demo")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a quick end-to-end check")
    parser.add_argument(
        "--overwrite", action="store_true", help="discard earlier demo outputs and start over"
    )
    parser.add_argument("--preset", default="pyramidion")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n_bootstrap", type=int, default=1000)
    for name, kind in (
        ("max_source_length", int),
        ("block_size", int),
        ("d_model", int),
        ("decoder_layers", int),
        ("vocab_size", int),
        ("max_steps", int),
        ("batch_size", int),
        ("learning_rate", float),
        ("max_train_samples", int),
        ("max_predict_samples", int),
        ("generation_max_length", int),
        ("max_train_minutes", float),
    ):
        parser.add_argument(f"--{name}", type=kind, default=None)
    parser.add_argument("--encoder_lengths", type=int, nargs="+", default=None)
    return parser.parse_args(argv)


def demo_size(args: argparse.Namespace) -> DemoSize:
    """The profile (full or smoke) with the explicit flags applied."""
    base = SMOKE if args.smoke else FULL
    values = {k: getattr(args, k) for k in base.__dataclass_fields__ if getattr(args, k, None) is not None}
    if "encoder_lengths" in values:
        values["encoder_lengths"] = tuple(values["encoder_lengths"])
    elif "max_source_length" in values:
        ratio = [n / base.max_source_length for n in base.encoder_lengths]
        values["encoder_lengths"] = tuple(max(1, round(values["max_source_length"] * r)) for r in ratio)
    return DemoSize(**{**base.__dict__, **values})


def first_lines(text: str, n: int = 3) -> str:
    """The first n sentences, one per line, indented."""
    return "\n".join(f"    {s}" for s in split_sentences(text)[:n]) or "    (empty)"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the demo; returns the metrics written to metrics.json."""
    args = parse_args(argv)
    size = demo_size(args)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s - %(levelname)s - %(message)s",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    out = Path(args.output_dir)
    if args.overwrite and out.exists():
        shutil.rmtree(out)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))))
    timings: dict[str, float] = {}
    start = time.monotonic()

    print(f"[1/5] Tokenizer: BPE, {size.vocab_size} tokens, on the ACLSum train articles")
    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    else:
        tokenizer = tokenizer_cli.build_tokenizer(
            "aclsum",
            tok_dir,
            split="train",
            columns=("article",),
            vocab_size=size.vocab_size,
            model_max_length=size.max_source_length,
            max_samples=size.max_train_samples,
        )
    timings["tokenizer_s"] = time.monotonic() - start

    print(
        f"[2-3/5] Training a Pyramidion: {config_overrides(size)}; "
        f"{size.max_steps} steps of {size.batch_size}, "
        "then ROUGE on ACLSum test beside the Lead baseline"
    )
    model_dir = out / "model"
    model_args = rs.ModelArguments(preset=args.preset, config_overrides=config_overrides(size))
    data_args = rs.DataArguments(
        dataset="aclsum",
        max_source_length=size.max_source_length,
        max_target_length=size.max_target_length,
        max_train_samples=size.max_train_samples,
        max_predict_samples=size.max_predict_samples,
        lead_baseline=True,
        # chosen on the ACLSum validation split (ROUGE-1 18.9 / 24.9 / 28.3 for 1.0 / 1.2 / 1.5): a model
        # trained for minutes repeats itself without it
        repetition_penalty=1.5,
        n_bootstrap=args.n_bootstrap,
    )
    training_args = Seq2SeqTrainingArguments(
        output_dir=str(model_dir),
        do_train=True,
        do_predict=True,
        predict_with_generate=True,
        max_steps=size.max_steps,
        per_device_train_batch_size=size.batch_size,
        per_device_eval_batch_size=8,
        learning_rate=size.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=max(1, size.max_steps // 10),
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=max(1, size.max_steps // 20),
        save_strategy="steps",
        save_steps=max(1, size.max_steps // 4),
        save_total_limit=1,
        generation_max_length=size.generation_max_length,
        seed=args.seed,
        data_seed=args.seed,
        report_to="none",
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        use_cpu=not torch.cuda.is_available(),
    )
    time_limit = TimeLimit(size.max_train_minutes)
    phase = time.monotonic()
    result = rs.run(model_args, data_args, training_args, tokenizer=tokenizer, callbacks=[time_limit])
    timings["train_and_evaluate_s"] = time.monotonic() - phase

    print("[4/5] Summarizing one held-out paper (ACLSum test) with the summarization pipeline")
    phase = time.monotonic()
    test = load_summarization_data("aclsum")["test"]
    paper = test[len(test) - 1]
    pipe = summarize_cli.load_pipeline(model_dir)
    summary = summarize_cli.summarize(
        pipe, paper["article"]
    )  # the saved generation config: no_repeat_ngram 3
    explanation = explain(pipe.model, pipe.tokenizer, paper["article"])
    explain_html = explanation.save_html(out / "explain.html")  # which tokens survived each pooling layer
    timings["summarize_and_explain_one_s"] = time.monotonic() - phase

    print("[5/5] Writing metrics.json and the Hub-ready folder")
    metrics = {
        "model": {k[len("predict_") :]: v for k, v in result.metrics.items() if k.startswith("predict_")},
        "lead": {k[len("lead_") :]: v for k, v in result.metrics.items() if k.startswith("lead_")},
        "train": {k: v for k, v in result.metrics.items() if k.startswith("train")},
        "stopped_early_at_step": time_limit.stopped_at,
        "data_report": result.data_report,
        "size": size.__dict__,
        "timings_s": timings,
        "example": {"id": paper.get("id"), "summary": summary, "reference": paper["abstract"]},
    }
    hub_dir = export_repo(
        model_dir,
        out / "hub",
        metrics=rs.card_metrics(result.metrics, args.n_bootstrap),
        training=rs.training_summary(training_args, result.metrics),
        overwrite=True,
        dataset="aclsum",
        widget_text=paper["article"][:2000],
    )
    timings["total_s"] = time.monotonic() - start
    rs.write_json(out / "metrics.json", metrics)

    print("\nHeld-out paper:", paper.get("id"))
    print("  generated summary (first lines):\n" + first_lines(summary))
    print("  reference abstract (first lines):\n" + first_lines(paper["abstract"]))
    print("\nACLSum test ROUGE (95% bootstrap CI), model vs Lead:")
    for key in rs.ROUGE_TYPES:
        m, lead = metrics["model"], metrics["lead"]
        print(
            f"  {key:<10} model {m[key]:6.2f} [{m[key + '_low']:6.2f}, {m[key + '_high']:6.2f}]   "
            f"lead {lead[key]:6.2f} [{lead[key + '_low']:6.2f}, {lead[key + '_high']:6.2f}]"
        )
    print(f"\nTotal time {timings['total_s'] / 60:.1f} min. Outputs:")
    print(f"  metrics           {out / 'metrics.json'}")
    print(f"  trained model     {model_dir}")
    print(f"  test predictions  {model_dir / 'generated_predictions.jsonl'}")
    print(f"  Hub-ready folder  {hub_dir}  (pyramidion-hub push {hub_dir} <user>/<repo>)")
    print(f"  kept tokens       {explain_html}  (open in a browser: what survived each pooling layer)")
    print(f"  summarize a file  python examples/summarize.py --model {model_dir} paper.txt")
    return json.loads((out / "metrics.json").read_text())


if __name__ == "__main__":
    main()
