"""The scorer / top-k ablation of the paper's Table 4 on the selection task, trainable on this CPU.

    python benchmarks/selection_ablation.py --jobs 2       # 11 configurations x 3 seeds (~55 min, 2 cores)
    python benchmarks/selection_ablation.py --configs linear/successive_halving --seeds 0    # one run, ~3 min
    python benchmarks/selection_ablation.py --quick        # tiny sizes (seconds), checks that it works

Task (`pyramidion_hf.analysis.selection_task`): documents of 2048 filler tokens holding 2 marked spans and 2
look-alike decoy spans of 3 content tokens each; the marked spans are numbered (the i-th opens with marker i)
and token j of every span comes from slice j of the 16 content ids; the target is the 6 marked content tokens
in order.
Model: the same Transpooler for every configuration (2 blockwise encoder layers, blocks of 32, pooling 2048
-> 128 after the second layer, 2 decoder layers, d=32, 4 heads, pre-norm), trained from scratch with AdamW for
a fixed number of steps of 8 fresh documents (equal budget); training documents have 64 to 2048 tokens and
come shortest first (a length curriculum: the copy is learned on short documents, where it is fast; the
encoder skips the padding columns, so short batches are cheap), evaluation documents have 2048. Top-k
temperature 0.1: each kept vector is (nearly) one token, so the scorer must keep the content itself rather
than a soft blend of its neighbours. The Blockwise reference is the same model without pooling (the decoder
reads all 2048 vectors). Configurations: every scorer with successive-halving top-k, and the linear scorer
with each top-k operator (hard top-k passes no gradient to the scorer). Per (configuration, seed), on held-out
documents: exact match and token accuracy of greedy generation, and the selection recall of the marked
content positions in ``encoder_pooling_indices``. Results are appended to ``selection_ablation.json`` as each
run ends (an interrupted run resumes where it stopped); the report, ``selection_ablation.md``, keeps any text
under its "## Discussion" heading when it is rewritten, and ``selection_ablation.png`` plots the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import common
import torch

from pyramidion_hf import PyramidionConfig, PyramidionForConditionalGeneration
from pyramidion_hf.analysis.selection_task import PAD_ID, build_selection_dataset, selection_recall
from pyramidion_hf.modeling.pooling import STRIDED_SCORERS

BLOCKWISE = "blockwise"
DISCUSSION = "## Discussion"
# Table 4 of the paper (ROUGE-1 / ROUGE-2 on arXiv, 4-layer Transpooler 2048 -> 512, successive halving)
PAPER_TABLE4 = {
    "linear": (39.1, 14.6), "nonlinear": (38.9, 14.6), "random": (32.3, 11.4), "index": (38.2, 13.9),
    "embedding": (37.6, 14.0), "power": (36.9, 13.6), "mean": (38.1, 13.9), "max": (38.4, 14.2),
}  # fmt: skip
SCORER_ORDER = ("linear", "nonlinear", "power", "embedding", "random", "index", "mean", "max")
TOPK_ORDER = ("successive_halving", "hard", "iterative")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Task and training sizes shared by every configuration (the full run and --quick differ only here)."""

    doc_length: int = 2048
    pooled_length: int = 128
    block_size: int = 32
    n_spans: int = 2
    span_length: int = 3
    n_distractors: int = 2
    numbered_marks: bool = True  # the i-th marked span opens with the i-th numbered marker
    ordered_content: bool = True  # token j of a span comes from slice j of the content ids
    train_min_length: int | None = 64  # training documents: uniform in [this, doc_length], shortest first
    vocab_size: int = 128
    content_vocab_size: int = 16
    d_model: int = 32
    heads: int = 4
    ffn: int = 128
    decoder_layers: int = 2
    batch_size: int = 8
    steps: int = 2000
    lr: float = 3e-3
    warmup_steps: int = 100
    eval_examples: int = 128
    topk_weighting: str = "sigmoid"  # the config's pairwise weighting of successive halving
    topk_temperature: float = 0.1  # the config's top-k temperature (lower: kept vectors nearer one token)


QUICK = Recipe(doc_length=256, pooled_length=16, block_size=64, d_model=32, ffn=64, decoder_layers=1,
               steps=6, warmup_steps=2, eval_examples=8)  # fmt: skip


def configurations() -> list[str]:
    """Names "scorer/topk" of the ablation (plus the Blockwise reference), in table order."""
    names = [f"{scorer}/successive_halving" for scorer in SCORER_ORDER]
    names += [f"linear/{topk}" for topk in TOPK_ORDER if topk != "successive_halving"]
    return [*names, BLOCKWISE]


def model_config(name: str, recipe: Recipe) -> PyramidionConfig:
    """The Transpooler of configuration `name` ("scorer/topk" or "blockwise") at the recipe's sizes."""
    pooled = recipe.doc_length if name == BLOCKWISE else recipe.pooled_length
    extra: dict[str, Any] = {}
    if name != BLOCKWISE:
        scorer, topk = name.split("/")
        extra = {"scorer": scorer, "topk": topk}
    return PyramidionConfig(
        vocab_size=recipe.vocab_size,
        max_position_embeddings=recipe.doc_length,
        encoder_lengths=[recipe.doc_length, pooled],
        block_size=recipe.block_size,
        d_model=recipe.d_model,
        encoder_attention_heads=recipe.heads,
        decoder_attention_heads=recipe.heads,
        encoder_ffn_dim=recipe.ffn,
        decoder_ffn_dim=recipe.ffn,
        decoder_layers=recipe.decoder_layers,
        dropout=0.0,
        init_std=recipe.d_model**-0.5,
        normalize_before=True,
        max_target_positions=recipe.n_spans * recipe.span_length + 2,
        topk_weighting=recipe.topk_weighting,
        topk_temperature=recipe.topk_temperature,
        **extra,
    )


def task_data(recipe: Recipe, n_examples: int, seed: int, min_length: int | None = None) -> dict[str, Any]:
    """`n_examples` documents as right-padded tensors: input_ids and attention_mask (N, n), labels (N, t),
    marked positions (N lists)."""
    data = build_selection_dataset(
        n_examples, doc_length=recipe.doc_length, n_spans=recipe.n_spans, span_length=recipe.span_length,
        n_distractors=recipe.n_distractors, vocab_size=recipe.vocab_size,
        content_vocab_size=recipe.content_vocab_size, min_doc_length=min_length,
        numbered_marks=recipe.numbered_marks, ordered_content=recipe.ordered_content, seed=seed,
    )  # fmt: skip
    ids = torch.full((n_examples, recipe.doc_length), PAD_ID)
    mask = torch.zeros(n_examples, recipe.doc_length, dtype=torch.long)
    for row, doc in enumerate(data["input_ids"]):
        ids[row, : len(doc)] = torch.tensor(doc)
        mask[row, : len(doc)] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.tensor(data["labels"]),
        "marked_positions": data["marked_positions"],
    }


def train(model: PyramidionForConditionalGeneration, recipe: Recipe, seed: int) -> list[float]:
    """AdamW with linear warm-up and cosine decay, one fresh batch of documents per step (shortest first when
    the recipe varies their length) -> losses."""
    data = task_data(recipe, recipe.steps * recipe.batch_size, 10_000 + seed, recipe.train_min_length)
    # curriculum: shortest documents first (cheap: the encoder skips columns that are padding in every row)
    if recipe.train_min_length is not None:
        order = data["attention_mask"].sum(dim=1).argsort(stable=True)
        data = {key: data[key][order] for key in ("input_ids", "attention_mask", "labels")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)

    def schedule(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    losses = []
    for step in range(recipe.steps):
        rows = slice(step * recipe.batch_size, (step + 1) * recipe.batch_size)
        batch = {key: data[key][rows] for key in ("input_ids", "attention_mask", "labels")}
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate(model: PyramidionForConditionalGeneration, recipe: Recipe, seed: int) -> dict[str, float]:
    """Greedy generation on held-out documents -> exact match, token accuracy (content positions), recall
    (NaN without pooling and for mean/max pooling)."""
    data = task_data(recipe, recipe.eval_examples, 20_000 + seed)
    model.eval()
    target = data["labels"]  # (N, t): bos, content..., eos
    exact = correct = 0
    kept: list[list[int]] = []
    for start in range(0, len(target), recipe.batch_size):
        rows = slice(start, start + recipe.batch_size)
        labels, mask = target[rows], data["attention_mask"][rows]
        encoded = model.get_encoder()(input_ids=data["input_ids"][rows], attention_mask=mask)
        out = model.generate(
            encoder_outputs=encoded, attention_mask=mask, max_new_tokens=labels.shape[1],
            min_new_tokens=labels.shape[1], do_sample=False, num_beams=1,
        )[:, 1 : 1 + labels.shape[1]]  # fmt: skip
        # generation is forced to the target's length, so eos never comes: score the content positions
        hits = out[:, 1:-1] == labels[:, 1:-1]
        exact += int(hits.all(dim=1).sum())
        correct += int(hits.sum())
        if encoded.pooling_indices:
            kept.extend(encoded.pooling_indices[-1].tolist())
    # mean/max pooling keeps every token inside some window: "survived" has no meaning there
    strided = model.config.scorer in STRIDED_SCORERS
    return {
        "exact_match": exact / len(target),
        "token_accuracy": correct / (len(target) * (target.shape[1] - 2)),
        "recall": selection_recall(kept, data["marked_positions"]) if kept and not strided else float("nan"),
    }


def run_one(name: str, seed: int, recipe: Recipe) -> dict[str, Any]:
    """Train configuration `name` from seed `seed` and evaluate it."""
    torch.manual_seed(seed)
    model = PyramidionForConditionalGeneration(model_config(name, recipe))
    started = time.perf_counter()
    losses = train(model, recipe, seed)
    train_s = time.perf_counter() - started
    metrics = evaluate(model, recipe, seed)
    tail = losses[-max(1, len(losses) // 10) :]
    return {"config": name, "seed": seed, **metrics, "final_loss": statistics.fmean(tail), "train_s": train_s}


def summarize(runs: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Mean and std over seeds of every metric, per configuration."""
    rows = []
    for name in names:
        mine = [r for r in runs if r["config"] == name]
        if not mine:
            continue
        row: dict[str, Any] = {"config": name, "seeds": len(mine)}
        for key in ("exact_match", "token_accuracy", "recall", "final_loss", "train_s"):
            values = [r[key] for r in mine if not math.isnan(r[key])]
            row[key] = statistics.fmean(values) if values else float("nan")
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def _pm(row: dict[str, Any], key: str, scale: float = 100.0, spec: str = ".1f") -> str:
    if math.isnan(row[key]):
        return "-"
    if row["seeds"] < 2:  # no spread to show
        return f"{row[key] * scale:{spec}}"
    return f"{row[key] * scale:{spec}} ± {row[f'{key}_std'] * scale:{spec}}"


def _label(name: str) -> str:
    if name == BLOCKWISE:
        return "Blockwise (no pooling)"
    scorer, topk = name.split("/")
    if scorer in STRIDED_SCORERS:
        return f"{scorer} pooling (no top-k)"
    return f"{scorer} / {topk.replace('_', ' ')}"


def _intro(recipe: Recipe, env: dict[str, Any], command: str, seeds: int) -> list[str]:
    """The report's opening: how it was made, the task, the model and what each column measures."""
    curriculum = (
        f"; training documents of {recipe.train_min_length} to {recipe.doc_length} tokens, shortest first"
        if recipe.train_min_length is not None
        else ""
    )
    return [
        "# Selection task: scorer and top-k ablation (paper Table 4)",
        "",
        f"{common.generated_by(command)} on {env['cpu']}, torch {env['torch']}, {env['training']}. "
        f"Seeds per configuration: {seeds}; values are mean ± std over seeds.",
        "",
        f"Task: documents of {recipe.doc_length} tokens with {recipe.n_spans} marked and "
        f"{recipe.n_distractors} decoy spans of {recipe.span_length} content tokens"
        f"{' (marked spans numbered)' if recipe.numbered_marks else ''}"
        f"{'; token j of a span comes from slice j of the content ids' if recipe.ordered_content else ''}"
        f"; target: the {recipe.n_spans * recipe.span_length} marked content tokens in order. Model: "
        f"Transpooler {recipe.doc_length} -> {recipe.pooled_length} (2 blockwise encoder layers, blocks of "
        f"{recipe.block_size}, pooling after the second, {recipe.decoder_layers} decoder layer(s), "
        f"d={recipe.d_model}), {recipe.steps} AdamW steps of {recipe.batch_size} fresh documents "
        f"(lr {recipe.lr:g}{curriculum}; top-k temperature {recipe.topk_temperature:g}, "
        f"{recipe.topk_weighting} pair weights), evaluated on {recipe.eval_examples} held-out documents of "
        f"{recipe.doc_length} tokens. Token accuracy: greedy output vs target at each content position; "
        "exact match: every content token right; selection **recall**: fraction of marked content positions "
        "among the pooled vectors' document positions (`encoder_pooling_indices`; chance = "
        f"{recipe.pooled_length / recipe.doc_length:.3f}); '-' where nothing is selected: no pooling "
        "(Blockwise) or window pooling (mean/max, where every token enters a window). Hard top-k passes no "
        "gradient to the scorer.",
        "",
    ]


def _table_row(row: dict[str, Any], reference: dict[str, Any] | None) -> str:
    """One configuration: its metrics, token accuracy relative to Blockwise, the paper's Table 4 value."""
    relative = (
        f"{row['token_accuracy'] / reference['token_accuracy']:.2f}"
        if reference and reference["token_accuracy"] > 0
        else "-"
    )
    scorer, _, topk = row["config"].partition("/")
    paper = PAPER_TABLE4.get(scorer) if topk == "successive_halving" else None
    return (
        f"| {_label(row['config'])} | {_pm(row, 'token_accuracy')} | {relative} | "
        f"{_pm(row, 'exact_match')} | {_pm(row, 'recall', 1.0, '.3f')} | "
        f"{_pm(row, 'final_loss', 1.0, '.3f')} | {row['train_s']:.0f} | "
        f"{f'{paper[0]} / {paper[1]}' if paper else '-'} |"
    )


def report(rows: list[dict[str, Any]], recipe: Recipe, env: dict[str, Any], command: str, old: str) -> str:
    """The markdown report: recipe, table (with the paper's Table 4 values) and ordering; keeps the
    discussion."""
    reference = next((r for r in rows if r["config"] == BLOCKWISE), None)
    lines = [
        *_intro(recipe, env, command, max((r["seeds"] for r in rows), default=0)),
        "| configuration (scorer / top-k) | token accuracy % | vs Blockwise | exact match % "
        "| selection recall | final train loss | train s | paper Table 4 R-1 / R-2 |",
        "|---|---|---|---|---|---|---|---|",
        *(_table_row(row, reference) for row in rows),
    ]
    ranked = sorted((r for r in rows if r["config"] != BLOCKWISE), key=lambda r: -r["token_accuracy"])
    lines += [
        "",
        "Ordering by token accuracy: " + " > ".join(_label(r["config"]) for r in ranked) + ".",
        "",
        "![ablation](selection_ablation.png)",
        "",
    ]
    discussion = old[old.index(DISCUSSION) :].rstrip() if DISCUSSION in old else f"{DISCUSSION}\n\n(none yet)"
    return "\n".join(lines) + "\n" + discussion + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Bars of token accuracy and selection recall (mean ± std over seeds) per configuration."""
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.4))
    x = range(len(rows))
    width = 0.4
    bars = ((-width / 2, "token_accuracy", "token accuracy"), (width / 2, "recall", "recall"))
    for offset, key, label in bars:
        values = [0.0 if math.isnan(r[key]) else r[key] for r in rows]
        errors = [r[f"{key}_std"] for r in rows]
        ax.bar([i + offset for i in x], values, width, yerr=errors, capsize=3, label=label)
    names = [_label(r["config"]).replace(" / ", "\n").replace(" (", "\n(") for r in rows]
    ax.set_xticks(list(x), [n.replace("successive halving", "succ. halving") for n in names], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction (held-out documents)")
    ax.set_title("Selection task: Transpooler 2048 -> 128 by scorer / top-k (mean ± std over seeds)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(
    names: list[str], seeds: list[int], recipe: Recipe, out: Path, command: str,
    log: Callable[[str], None] = print, jobs: int = 1,
) -> list[dict[str, Any]]:  # fmt: skip
    """Run every (configuration, seed) not already in out/selection_ablation.json, then write the report.

    jobs > 1 trains that many runs at once in worker processes of one thread each (these tiny models use a
    core better that way); each result is stored as soon as its run ends."""
    out.mkdir(parents=True, exist_ok=True)
    store = out / "selection_ablation.json"
    saved = json.loads(store.read_text()) if store.exists() else {}
    if saved and saved.get("recipe") != dataclasses.asdict(recipe):
        raise SystemExit(
            f"{store} holds runs of another recipe: move it away (or pass another --out) to start afresh."
        )
    runs: list[dict[str, Any]] = saved.get("runs", [])
    done = {(r["config"], r["seed"]) for r in runs}
    # seed-major: a partial run still covers every configuration
    todo = [(name, seed) for seed in seeds for name in names if (name, seed) not in done]

    def record(result: dict[str, Any]) -> None:
        runs.append({**result, "jobs": jobs})
        log(
            f"{result['config']:32s} seed {result['seed']}: token acc {result['token_accuracy']:.3f} exact "
            f"{result['exact_match']:.3f} recall {result['recall']:.3f} ({result['train_s']:.0f} s)"
        )
        store.write_text(json.dumps({"recipe": dataclasses.asdict(recipe), "runs": runs}, indent=1))

    if jobs == 1:
        for name, seed in todo:
            record(run_one(name, seed, recipe))
    else:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(1,))
        with pool:
            futures = [pool.submit(run_one, name, seed, recipe) for name, seed in todo]
            for future in as_completed(futures):
                record(future.result())
    # how the stored runs were trained (each records its jobs), not how this call was invoked
    env = common.environment()
    env["training"] = "; ".join(
        f"{j} runs at once, 1 thread each" if j > 1 else f"{env['threads']} threads"
        for j in sorted({r["jobs"] for r in runs})
    )
    rows = summarize(runs, configurations())
    md = out / "selection_ablation.md"
    md.write_text(report(rows, recipe, env, command, md.read_text() if md.exists() else ""))
    plot(rows, out / "selection_ablation.png")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", help=f"comma-separated subset of {','.join(configurations())}")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--steps", type=int, help="training steps per run (default: the recipe's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 6 steps: checks that it works")
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs trained at once, one thread each (2 on a 2-core machine)"
    )
    args = parser.parse_args(argv)
    names = args.configs.split(",") if args.configs else configurations()
    unknown = [n for n in names if n not in configurations()]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {', '.join(configurations())}")
    recipe = QUICK if args.quick else Recipe()
    if args.steps:
        recipe = dataclasses.replace(
            recipe, steps=args.steps, warmup_steps=min(recipe.warmup_steps, args.steps)
        )
    seeds = [int(s) for s in args.seeds.split(",")]
    command = common.command_line(__file__, argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    run(names, seeds, recipe, args.out, command, jobs=args.jobs)
    print(f"wrote selection_ablation.md/.json/.png to {args.out}")


if __name__ == "__main__":
    main()
