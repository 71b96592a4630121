"""Which scorer initialisation keeps a converted pretrained model working (issue 16, item 3).

Pretrains a small BART on the ACLSum train papers for a fixed wall-clock budget with a seq2seq continuation
objective (`source_length` tokens of a paper -> the next `target_length` tokens: the decoder must read the
encoder, and thousands of distinct pairs cannot be memorised; ACLSum's 100 abstracts can, see the results
file), saves it, converts it with `pyramidion_hf.convert_checkpoint` to read r x `source_length` tokens
(learned positions tiled, blocks of `source_length`, pooled back to `source_length` vectors after the last
encoder layer) for two reduction factors r, and fine-tunes each conversion for N steps under several scorer
initialisations, beside (a) the source BART reading the last `source_length` tokens and (b) the same
Pyramidion trained from scratch. Every arm continues the same points of the same papers; validation loss at
equal steps, wall-clock recorded. Writes results/warm_start.md, .json and .png.

    python benchmarks/warm_start.py            # the study (about 8 minutes on 2 shared threads)
    python benchmarks/warm_start.py --quick    # tiny sizes, under a minute: checks that it works
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import torch
from transformers import AutoConfig, BartConfig, BartForConditionalGeneration
from transformers.utils import logging as transformers_logging

from pyramidion_hf import PyramidionForConditionalGeneration, convert_checkpoint
from pyramidion_hf.training.convert import POOLING_DEFAULTS, pyramidion_config
from pyramidion_hf.training.data import load_summarization_data
from pyramidion_hf.training.tokenizer import train_tokenizer

# Scorer initialisations compared (PyramidionConfig overrides of the inserted pooling layers).
INITS: dict[str, dict[str, Any]] = {
    "sigmoid τ=1 (current)": {"topk_temperature": 1.0, "topk_weighting": "sigmoid"},
    "sigmoid τ=0.1": {"topk_temperature": 0.1, "topk_weighting": "sigmoid"},
    "peaked τ=1": {"topk_temperature": 1.0, "topk_weighting": "peaked"},
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Sizes and budgets of one study."""

    train_docs: int | None  # None = the whole ACLSum train split
    eval_docs: int | None
    vocab_size: int
    source_length: int  # input tokens of the source BART
    target_length: int  # tokens to continue
    factors: tuple[int, ...]  # converted input length = factor x source_length
    d_model: int
    layers: int  # encoder and decoder layers each
    heads: int
    pretrain_stride: int  # tokens between pretraining continuation points
    finetune_stride: int  # ... fine-tuning points
    eval_stride: int  # ... validation points
    pretrain_seconds: float
    pretrain_max_steps: int
    finetune_steps: int
    eval_every: int
    batch_size: int
    pretrain_lr: float
    finetune_lr: float


FULL = Recipe(
    None, None, 2000, 128, 32, (2, 4), 128, 2, 4, 48, 128, 2048, 150.0, 100_000, 60, 20, 8, 1e-3, 3e-4
)
QUICK = Recipe(12, 6, 300, 32, 8, (2, 4), 32, 2, 2, 32, 64, 256, 5.0, 8, 3, 3, 4, 1e-3, 3e-4)


def token_streams(tokenizer: Any, rows: Any) -> list[list[int]]:
    """The token ids of each paper body (no special tokens)."""
    return tokenizer(list(rows["article"]), add_special_tokens=False)["input_ids"]


def continuation_pairs(
    tokenizer: Any, streams: list[list[int]], context: int, first: int, stride: int, recipe: Recipe
) -> dict[str, torch.Tensor]:
    """At points p = first, first + stride, ... of every paper: input = <s> + the `context - 2` tokens before
    p + </s> (D, context), labels = the `target_length` tokens from p (D, target_length)."""
    bos, eos, body = tokenizer.bos_token_id, tokenizer.eos_token_id, context - 2
    inputs, labels = [], []
    for stream in streams:
        for point in range(first, len(stream) - recipe.target_length + 1, stride):
            inputs.append([bos, *stream[point - body : point], eos])
            labels.append(stream[point : point + recipe.target_length])
    input_ids = torch.tensor(inputs)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": torch.tensor(labels),
    }


def load_data(recipe: Recipe) -> tuple[Any, dict[str, list[list[int]]]]:
    """(tokenizer trained on the train papers, token streams of the ACLSum train/validation papers)."""
    data = load_summarization_data("aclsum", split=None)
    rows = {"train": data["train"], "validation": data["validation"]}
    for split, n in (("train", recipe.train_docs), ("validation", recipe.eval_docs)):
        if n is not None:
            rows[split] = rows[split].select(range(n))
    tokenizer = train_tokenizer(list(rows["train"]["article"]), vocab_size=recipe.vocab_size)
    return tokenizer, {split: token_streams(tokenizer, split_rows) for split, split_rows in rows.items()}


def batches(data: dict[str, torch.Tensor], batch_size: int, steps: int, seed: int) -> list[torch.Tensor]:
    """Index batches for `steps` steps, the same for every model trained with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    n = data["input_ids"].shape[0]
    return [torch.randint(0, n, (batch_size,), generator=generator) for _ in range(steps)]


def step(
    model: Any, optimizer: torch.optim.Optimizer, data: dict[str, torch.Tensor], index: torch.Tensor
) -> float:
    """One AdamW step on the rows `index`; returns the training loss."""
    model.train()
    loss = model(**{key: value[index] for key, value in data.items()}).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss)


@torch.no_grad()
def evaluate(model: Any, data: dict[str, torch.Tensor], batch_size: int) -> float:
    """Mean token cross-entropy over the validation rows (teacher forcing)."""
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, data["input_ids"].shape[0], batch_size):
        batch = {key: value[start : start + batch_size] for key, value in data.items()}
        n = int((batch["labels"] != -100).sum())
        total += float(model(**batch).loss) * n
        tokens += n
    return total / tokens


def pretrain(recipe: Recipe, tokenizer: Any, train: dict[str, torch.Tensor], log: Any) -> tuple[Any, dict]:
    """A small BART trained on the continuation pairs for `pretrain_seconds` (or `pretrain_max_steps`)."""
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=len(tokenizer), max_position_embeddings=recipe.source_length, d_model=recipe.d_model,
        encoder_layers=recipe.layers, decoder_layers=recipe.layers, encoder_attention_heads=recipe.heads,
        decoder_attention_heads=recipe.heads, encoder_ffn_dim=4 * recipe.d_model,
        decoder_ffn_dim=4 * recipe.d_model, dropout=0.1, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id, forced_eos_token_id=None,
    )  # fmt: skip
    model = BartForConditionalGeneration(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.pretrain_lr)
    start, losses = time.perf_counter(), []
    for index in batches(train, recipe.batch_size, recipe.pretrain_max_steps, seed=1):
        losses.append(step(model, optimizer, train, index))
        if time.perf_counter() - start > recipe.pretrain_seconds:
            break
    seconds = time.perf_counter() - start
    log(f"pretrained BART: {len(losses)} steps in {seconds:.0f} s, last loss {losses[-1]:.3f}")
    record = {"steps": len(losses), "seconds": seconds, "pairs": len(train["input_ids"])}
    return model.eval(), {**record, "final_train_loss": losses[-1]}


def finetune(model: Any, recipe: Recipe, train: dict, valid: dict) -> dict[str, Any]:
    """Validation loss at step 0 and every `eval_every` steps of `finetune_steps`, and the wall-clock."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.finetune_lr)
    curve, train_losses = [(0, evaluate(model, valid, recipe.batch_size))], []
    start = time.perf_counter()
    for i, index in enumerate(batches(train, recipe.batch_size, recipe.finetune_steps, seed=2), start=1):
        train_losses.append(step(model, optimizer, train, index))
        if i % recipe.eval_every == 0 or i == recipe.finetune_steps:
            curve.append((i, evaluate(model, valid, recipe.batch_size)))
    seconds = time.perf_counter() - start
    return {"curve": curve, "train_losses": train_losses, "train_seconds": seconds}


def arms(source_dir: Path, recipe: Recipe) -> list[tuple[str, int, str, Any]]:
    """(arm, factor, init, model factory): converted models per factor x init, and from scratch per factor."""
    out: list[tuple[str, int, str, Any]] = []
    for factor in recipe.factors:
        length, n = factor * recipe.source_length, recipe.source_length
        shape = dict(max_position_embeddings=length, encoder_lengths=[length] * (recipe.layers - 1) + [n])
        shape["block_size"] = n
        for name, init in INITS.items():
            make = lambda shape=shape, init=init: convert_checkpoint(str(source_dir), **shape, **init)
            out.append(("converted", factor, name, make))

        def scratch(shape: dict = shape) -> PyramidionForConditionalGeneration:
            torch.manual_seed(0)
            return PyramidionForConditionalGeneration(
                pyramidion_config(AutoConfig.from_pretrained(source_dir), **shape)
            )

        out.append(
            ("from scratch", factor, next(k for k, v in INITS.items() if v == POOLING_DEFAULTS), scratch)
        )
    return out


def run(recipe: Recipe, log: Any = print) -> dict[str, Any]:
    """The whole study; returns the results record."""
    load_before = os.getloadavg()
    tokenizer, streams = load_data(recipe)
    n, first = recipe.source_length, max(recipe.factors) * recipe.source_length - 2

    def pairs(context: int) -> tuple[dict, dict]:
        """Fine-tuning and validation pairs: the same continuation points for every arm."""
        train = continuation_pairs(
            tokenizer, streams["train"], context, first, recipe.finetune_stride, recipe
        )
        valid = continuation_pairs(
            tokenizer, streams["validation"], context, first, recipe.eval_stride, recipe
        )
        return train, valid

    pretraining_data = continuation_pairs(
        tokenizer, streams["train"], n, n - 2, recipe.pretrain_stride, recipe
    )
    source, pretraining = pretrain(recipe, tokenizer, pretraining_data, log)
    source_train, source_valid = pairs(n)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        source.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        torch.manual_seed(0)
        record = finetune(
            BartForConditionalGeneration.from_pretrained(folder), recipe, source_train, source_valid
        )
        results.append({"arm": "source BART", "factor": 1, "input_tokens": n, "init": "-", **record})
        log(f"source BART: {record['curve']}")
        data: dict[int, tuple[dict, dict]] = {}
        for arm, factor, init, make in arms(Path(folder), recipe):
            if factor not in data:
                data[factor] = pairs(factor * n)
            torch.manual_seed(0)
            record = finetune(make(), recipe, *data[factor])
            results.append({"arm": arm, "factor": factor, "input_tokens": factor * n, "init": init, **record})
            log(f"{arm} r={factor} {init}: {record['curve']}")
    return {
        "recipe": dataclasses.asdict(recipe),
        "pretraining": pretraining,
        "runs": results,
        "best_init": best_init(results),
        "environment": {**common.environment(), "load_average_before": load_before},
    }


def best_init(results: list[dict[str, Any]]) -> str:
    """The initialisation with the lowest final validation loss, averaged over the reduction factors."""
    finals: dict[str, list[float]] = {}
    for r in results:
        if r["arm"] == "converted":
            finals.setdefault(r["init"], []).append(r["curve"][-1][1])
    return min(finals, key=lambda init: sum(finals[init]) / len(finals[init]))


def report(record: dict[str, Any], command: str) -> str:
    """The markdown table and what it shows."""
    recipe, env, pretraining = record["recipe"], record["environment"], record["pretraining"]
    n = recipe["source_length"]
    lines = [
        f"# Warm start: scorer initialisation of a converted BART\n\n{common.generated_by(command)}.\n",
        f"Source: a BART (d={recipe['d_model']}, {recipe['layers']}+{recipe['layers']} layers, vocab "
        f"{recipe['vocab_size']}) pretrained on the ACLSum train papers ({pretraining['pairs']} pairs: {n} "
        f"tokens -> the next {recipe['target_length']}) for {pretraining['steps']} steps "
        f"({pretraining['seconds']:.0f} s, final training loss {pretraining['final_train_loss']:.3f}). "
        f"Converted to read r x {n} tokens (positions tiled, blocks of {n}, pooled to {n} after the last "
        f"encoder layer), then fine-tuned {recipe['finetune_steps']} steps on the same task with r x {n} "
        f"tokens of context (AdamW {recipe['finetune_lr']}, batch {recipe['batch_size']}, the same points "
        f"and batches for every arm; the source BART reads the last {n} tokens). Loss: validation token "
        "cross-entropy (teacher forcing) on the ACLSum validation papers.\n",
        f"CPU shared with other jobs ({env['threads']} threads, load average {env['load_average_before']} "
        f"before, {env['load_average']} after): wall-clock is indicative, losses at equal steps are what "
        "matter.\n",
        f"| arm | r | input tokens | scorer init | loss step 0 | loss step {recipe['finetune_steps']} | "
        "fine-tune s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in record["runs"]:
        lines.append(
            f"| {r['arm']} | {r['factor']} | {r['input_tokens']} | {r['init']} | {r['curve'][0][1]:.3f} | "
            f"{r['curve'][-1][1]:.3f} | {r['train_seconds']:.1f} |"
        )
    lines.append(f"\nBest initialisation (lowest final loss, mean over r): **{record['best_init']}**.\n")
    lines.append(observations(record["runs"]))
    return "\n".join(lines)


def observations(runs: list[dict[str, Any]]) -> str:
    """What the table shows, computed from it: start gap to the source, spread across initialisations, gap
    to the source and to from-scratch training at the last step."""
    source = next(r for r in runs if r["arm"] == "source BART")
    start, end = source["curve"][0][1], source["curve"][-1][1]
    lines = []
    for factor in sorted({r["factor"] for r in runs if r["arm"] == "converted"}):
        converted = [r for r in runs if r["arm"] == "converted" and r["factor"] == factor]
        scratch = next(r for r in runs if r["arm"] == "from scratch" and r["factor"] == factor)
        gap0 = max(abs(r["curve"][0][1] - start) for r in converted)
        finals = [r["curve"][-1][1] for r in converted]
        lines.append(
            f"- r={factor}: at step 0 every conversion is within {gap0:.4f} of the source's loss; after "
            f"the last step the initialisations span {max(finals) - min(finals):.4f}, the best is "
            f"{end - min(finals):+.3f} better than the source (which reads {factor}x fewer tokens) and "
            f"{scratch['curve'][-1][1] - min(finals):.3f} better than the same model from scratch."
        )
    return "\n".join(lines) + "\n\nOne seed: spreads this small (< 0.01) are not shown to be significant.\n"


def plot(record: dict[str, Any], path: Path) -> None:
    """Validation loss vs fine-tuning step, one column per reduction factor (the source BART in each): all
    arms on top, the pretrained ones (source and conversions) zoomed below."""
    plt = common.pyplot()
    factors = record["recipe"]["factors"]
    figure, axes = plt.subplots(2, len(factors), figsize=(6 * len(factors), 7), squeeze=False)
    source = next(r for r in record["runs"] if r["arm"] == "source BART")
    for column, factor in enumerate(factors):
        runs = [source] + [r for r in record["runs"] if r["factor"] == factor]
        for row, shown in enumerate((runs, [r for r in runs if r["arm"] != "from scratch"])):
            axis = axes[row][column]
            for r in shown:
                steps, losses = zip(*r["curve"], strict=True)
                label = r["arm"] if r["arm"] == "source BART" else f"{r['arm']}: {r['init']}"
                style = "--" if r["arm"] != "converted" else "-"
                axis.plot(steps, losses, marker="o", label=label, linestyle=style)
            title = f"r = {factor}" + (" (pretrained arms)" if row else "")
            axis.set(title=title, xlabel="fine-tuning step", ylabel="validation loss")
            axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, under a minute: checks that it works"
    )
    parser.add_argument("--pretrain-seconds", type=float, help="pretraining wall-clock budget")
    parser.add_argument("--steps", type=int, help="fine-tuning steps per arm")
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    args = parser.parse_args(argv)
    transformers_logging.disable_progress_bar()
    recipe = QUICK if args.quick else FULL
    if args.pretrain_seconds is not None:
        recipe = dataclasses.replace(recipe, pretrain_seconds=args.pretrain_seconds)
    if args.steps is not None:
        recipe = dataclasses.replace(recipe, finetune_steps=args.steps, eval_every=max(1, args.steps // 4))
    record = run(recipe)
    command = common.command_line(__file__, argv)
    common.write_results(args.out, {"warm_start.json": record, "warm_start.md": report(record, command)})
    plot(record, args.out / "warm_start.png")
    if not math.isfinite(record["runs"][-1]["curve"][-1][1]):
        raise SystemExit("warm_start: a loss is not finite")
    print(f"wrote {args.out / 'warm_start.md'}")


if __name__ == "__main__":
    main()
