"""Regenerate model_cards/example/README.md: the card `pyramidion-hub export` writes, for a tiny model.

The model is a 3-layer Pyramidion (512 -> 128 -> 32 vectors, d=32, ~70k parameters) with a 1,000-token BPE
tokenizer, both trained here in well under a minute on one CPU thread on the 100 ACLSum training papers (first
512 tokens of the body -> first 128 tokens of the abstract). Its ROUGE and the Lead baseline's are measured on
the first ACLSum validation papers: every number in the card is a measurement, if of a toy model.

    .venv/bin/python model_cards/generate_example.py            # rewrites model_cards/example/README.md
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pyramidion_hf.hub import export_repo
from pyramidion_hf.modeling.configuration_pyramidion import PyramidionConfig
from pyramidion_hf.modeling.modeling_pyramidion import PyramidionForConditionalGeneration
from pyramidion_hf.training.aclsum import load_aclsum
from pyramidion_hf.training.metrics import DEFAULT_LEAD_SENTENCES, lead_summary, rouge_with_ci
from pyramidion_hf.training.tokenizer import train_tokenizer

HERE = Path(__file__).resolve().parent
BENCHMARKS_DIR = HERE.parent / "benchmarks" / "results"  # the speed section shows their tables
MAX_SOURCE = 512
MAX_TARGET = 128
MAX_NEW_TOKENS = 64
EPOCHS = 20
BATCH_SIZE = 4
LEARNING_RATE = 3e-3
GENERATION = {"max_new_tokens": MAX_NEW_TOKENS, "num_beams": 1, "do_sample": False, "no_repeat_ngram_size": 3}


def build_tiny_model(folder: Path, seed: int = 0) -> tuple[PyramidionForConditionalGeneration, Any, dict]:
    """Train the tokenizer and tiny model on ACLSum train, save both into `folder`; return training facts."""
    train = load_aclsum("train")
    tokenizer = train_tokenizer(train["article"], vocab_size=1000, model_max_length=MAX_SOURCE)
    config = PyramidionConfig(
        vocab_size=1000,
        max_position_embeddings=MAX_SOURCE,
        encoder_lengths=[512, 128, 32],
        block_size=128,
        d_model=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        decoder_layers=1,
        dropout=0.0,
        max_target_positions=MAX_TARGET,
    )
    torch.manual_seed(seed)
    model = PyramidionForConditionalGeneration(config)
    sources = tokenizer(
        list(train["article"]), truncation=True, max_length=MAX_SOURCE, padding=True, return_tensors="pt"
    )
    targets = tokenizer(
        list(train["abstract"]), truncation=True, max_length=MAX_TARGET, padding=True, return_tensors="pt"
    )
    labels = targets["input_ids"].masked_fill(targets["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    start, loss = time.perf_counter(), torch.tensor(float("nan"))
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(labels), generator=generator).split(BATCH_SIZE):
            loss = model(
                input_ids=sources["input_ids"][batch],
                attention_mask=sources["attention_mask"][batch],
                labels=labels[batch],
            ).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    training = {
        "train_examples": len(labels),
        "max_source_length": MAX_SOURCE,
        "max_target_length": MAX_TARGET,
        "tokenizer": "byte-level BPE, 1,000 tokens, trained on the ACLSum training bodies",
        "epochs": EPOCHS,
        "per_device_train_batch_size": BATCH_SIZE,
        "learning_rate": LEARNING_RATE,
        "optimizer": "AdamW, constant learning rate, plain PyTorch loop",
        "seed": seed,
        "hardware": "1 CPU thread",
        "train_runtime": round(time.perf_counter() - start, 1),
        "train_loss": round(loss.item(), 3),
        "from_scratch": True,
        "notes": "A toy: it exists to show what `pyramidion-hub export` writes, not to summarize anything.",
    }
    return model, tokenizer, training


def measure(model, tokenizer, num_docs: int) -> dict:
    """ROUGE with 95% CIs of greedy summaries and of Lead on the first `num_docs` ACLSum validation papers."""
    data = load_aclsum("val").select(range(num_docs))
    predictions = []
    for article in list(data["article"]):
        enc = tokenizer(article, truncation=True, max_length=MAX_SOURCE, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(**enc, **GENERATION)
        predictions.append(tokenizer.decode(ids[0], skip_special_tokens=True))
    metrics = rouge_with_ci(predictions, list(data["abstract"]), n_bootstrap=1000, seed=0)
    lead = rouge_with_ci(
        [lead_summary(a) for a in list(data["article"])], list(data["abstract"]), n_bootstrap=1000, seed=0
    )
    metrics.update(
        split="validation",
        num_examples=num_docs,
        n_bootstrap=1000,
        baselines={f"Lead-{DEFAULT_LEAD_SENTENCES}": lead},
    )
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "example" / "README.md")
    parser.add_argument("--num-docs", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model, tokenizer, training = build_tiny_model(model_dir)
        metrics = measure(model, tokenizer, args.num_docs)
        training["evaluation_generation"] = "greedy, 64 new tokens, no_repeat_ngram_size=3"
        repo = export_repo(
            model_dir,
            Path(tmp) / "repo",
            metrics=metrics,
            training=training,
            dataset="aclsum",
            model_name="pyramidion-tiny-example",
            benchmarks_dir=BENCHMARKS_DIR,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text((repo / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
