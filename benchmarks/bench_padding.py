"""What skipping padding saves: encoder forward+backward on a padded batch, with and without the skip.

    python benchmarks/bench_padding.py            # DeepPyramidion (deep setting) at 8k, ~2 min on 2 cores
    python benchmarks/bench_padding.py --quick    # tiny sizes, checks that it works

A batch of documents of different lengths padded to the model's full input length (what
`tokenizer(..., padding="max_length")` gives), as a user fine-tuning on mixed-length documents sends it. The
encoder drops columns that are padding in every row (before the first layer and after each pooling) and adds
them back at the end; requesting `output_hidden_states=True` keeps every column (per-layer outputs have full
shapes), which is the "before" here, timed in the same process and interleaved. Writes padding.md and
padding_env.json to --out.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import common
import torch
from model_zoo import SETTINGS, build_model, tiny


def padded_batch(lengths: list[int], n: int, vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded random documents of `lengths` tokens in an (B, n) batch, with 64-token labels."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), n), 1)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.randint(4, vocab, (length,), generator=gen)
        mask[row, :length] = 1
    labels = torch.randint(4, vocab, (len(lengths), 64), generator=gen)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def step_time(model: torch.nn.Module, batch: dict[str, torch.Tensor], keep_padding: bool) -> float:
    """Seconds of one forward+backward; `keep_padding` runs every column (output_hidden_states=True)."""
    tic = time.perf_counter()
    loss = model(**batch, output_hidden_states=keep_padding).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - tic


def measure(model: torch.nn.Module, batch: dict[str, torch.Tensor], repeats: int) -> tuple[dict, bool]:
    """({keep_padding: [s/step, ...]} interleaved after a warm-up, whether the skip keeps the logits)."""
    with torch.no_grad():  # the skip changes cost, not results
        same = torch.allclose(
            model.eval()(**batch).logits, model(**batch, output_hidden_states=True).logits, atol=1e-4
        )
    model.train()
    step_time(model, batch, keep_padding=False)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for keep in (True, False):
            times[keep].append(step_time(model, batch, keep))
    return times, same


def padding_report(command: str, env: dict, setting: str, n: int, lengths: list[int], repeats: int,
                   times: dict, same: bool) -> str:  # fmt: skip
    """padding.md: the setting, the batch and the two medians."""
    before, after = statistics.median(times[True]), statistics.median(times[False])
    lines = [
        "# Skipping padding columns in the encoder",
        "",
        f"{common.generated_by(command)} on {env['cpu']}, torch {env['torch']}, {env['threads']} threads, "
        "fp32.",
        "",
        f"DeepPyramidion ({setting} setting, schedule rescaled to n={n}), training "
        f"forward+backward on a batch of {len(lengths)} documents of {', '.join(map(str, lengths))} "
        f'tokens padded to {n} (`padding="max_length"`); medians of {repeats} interleaved runs '
        f"after a warm-up. Same logits with and without the skip: {same}. Environment variables: "
        f"{env['env'] or 'none set'}.",
        "",
        "| encoder | s/step | speedup |",
        "|---|---|---|",
        f"| every column (before) | {before:.3f} | 1.00x |",
        f"| padding columns skipped | {after:.3f} | {before / after:.2f}x |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    args = parser.parse_args(argv)
    setting, n = (tiny(SETTINGS["deep"]), 1024) if args.quick else (SETTINGS["deep"], 8192)
    lengths = [n // 2, n // 4]  # 4k and 2k tokens padded to 8k
    torch.manual_seed(0)
    model = build_model("deep-pyramidion", setting, n)
    times, same = measure(model, padded_batch(lengths, n, setting.vocab), args.repeats)
    env = common.environment()
    command = common.command_line(__file__, argv)
    report = padding_report(command, env, setting.name, n, lengths, args.repeats, times, same)
    stored = {"environment": env, "times": {"every_column": times[True], "skipped": times[False]},
              "lengths": lengths, "n": n, "same_logits": same, "command": command}  # fmt: skip
    common.write_results(args.out, {"padding.md": report, "padding_env.json": stored})
    print(report)


if __name__ == "__main__":
    main()
