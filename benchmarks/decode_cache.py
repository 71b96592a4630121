"""Decoding without waste: seconds per generated token of DeepPyramidion's decoder with transformers' dynamic
cache, with a preallocated static cache, and with the static cache's decode step compiled (torch.compile,
inductor, fullgraph), in one process, from the same pooled encoder output, modes interleaved round-robin.
Writes results/decode_cache.{md,json}
(--quick: decode_cache_quick.*).

    python benchmarks/decode_cache.py               # deep setting at 8k: batch 8 over k = 512 pooled vectors
    python benchmarks/decode_cache.py --quick       # tiny sizes, seconds: checks that it works

The encoder output is random (B, k, d) with an all-real pooled mask: decoding cost does not depend on its
values, and leaving the encoder out isolates what the cache choice changes. Greedy, forced length
(min_new_tokens = max_new_tokens); the tokens of every mode are compared with the dynamic cache's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import common
import torch
from model_zoo import SETTINGS, build_model, tiny
from transformers import CompileConfig

from pyramidion_hf.model_folder import cpu_has_fast_bf16
from pyramidion_hf.modeling.modeling_pyramidion import PyramidionEncoderOutput

MODES = ("dynamic", "static", "static+compile")


def generation_kwargs(mode: str, tokens: int, device: torch.device, backend: str) -> dict[str, Any]:
    """generate() arguments of a mode: forced greedy length, the cache, and on CPU the compile opt-in that
    transformers otherwise keeps for accelerators (CompileConfig._compile_all_devices)."""
    kwargs: dict[str, Any] = dict(min_new_tokens=tokens, max_new_tokens=tokens, do_sample=False, num_beams=1)
    if mode == "dynamic":
        return {**kwargs, "disable_compile": True}
    kwargs["cache_implementation"] = "static"
    if mode == "static":
        return {**kwargs, "disable_compile": True}
    compile_config = CompileConfig(
        fullgraph=True, mode="default" if device.type == "cpu" else "reduce-overhead"
    )
    compile_config._compile_all_devices = True
    return {**kwargs, "compile_config": compile_config}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Build the model, time `repeats` generations per mode after one warm-up each (the compile happens in
    the warm-up and is reported apart); returns the record."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    setting = tiny(SETTINGS["deep"]) if args.quick else SETTINGS["deep"]
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    with torch.device(device):
        model = build_model("deep-pyramidion", setting, args.n).eval().to(dtype)
    k = model.config.encoder_lengths[
        -1
    ]  # the decoder's cross-attention length (the schedule is rescaled to n)
    gen = torch.Generator(device="cpu").manual_seed(0)
    hidden = torch.randn(args.batch, k, setting.d_model, generator=gen).to(device, dtype)
    encoder_outputs = PyramidionEncoderOutput(
        last_hidden_state=hidden, pooled_mask=torch.ones(args.batch, k, dtype=torch.bool, device=device)
    )

    def generate(mode: str) -> tuple[float, torch.Tensor]:
        kwargs = generation_kwargs(mode, args.tokens, device, args.compile_backend)
        with torch.no_grad():
            tic = time.perf_counter()
            out = model.generate(encoder_outputs=encoder_outputs, **kwargs)
            if device.type == "cuda":
                torch.cuda.synchronize()
        return time.perf_counter() - tic, out

    warmup = {mode: generate(mode) for mode in MODES}
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            times[mode].append(generate(mode)[0])
    reference = warmup["dynamic"][1]
    return {
        "setting": setting.name,
        "n": args.n,
        "pooled_k": k,
        "batch": args.batch,
        "tokens": args.tokens,
        "repeats": args.repeats,
        "dtype": args.dtype,
        "device": args.device,
        "compile_backend": args.compile_backend,
        "cpu_has_fast_bf16": cpu_has_fast_bf16(),
        "warmup_s": {mode: seconds for mode, (seconds, _) in warmup.items()},
        "times_s": times,
        "same_tokens": {mode: bool(torch.equal(out, reference)) for mode, (_, out) in warmup.items()},
    }


def report(record: dict[str, Any], command: str) -> str:
    """Markdown table: median s per generation, ms per token, ratio to the dynamic cache, compile time."""
    medians = {mode: statistics.median(seconds) for mode, seconds in record["times_s"].items()}
    lines = [
        "# Decoding: dynamic cache, static cache, compiled decode step",
        "",
        f"{common.generated_by(command)}: DeepPyramidion ({record['setting']} setting) decoding "
        f"{record['tokens']} forced tokens for a batch of {record['batch']} over "
        f"k = {record['pooled_k']} pooled vectors (n = {record['n']}), **dtype {record['dtype']}**, "
        f"{record['device']}, {common.machine(record['environment'])}, medians of {record['repeats']} "
        "interleaved runs after one warm-up each.",
        "",
        "| mode | s / generation | ms / token | vs dynamic | warm-up s (incl. compile) | same tokens |",
        "|---|---|---|---|---|---|",
    ]
    for mode, median in medians.items():
        lines.append(
            f"| {mode} | {median:.3f} | {1000 * median / record['tokens']:.1f} | "
            f"{medians['dynamic'] / median:.2f}x | {record['warmup_s'][mode]:.1f} | "
            f"{'yes' if record['same_tokens'][mode] else 'no'} |"
        )
    lines += [
        "",
        "Ratios are dynamic / mode (> 1: faster than the dynamic cache). Compiled with "
        f"torch.compile(backend={record['compile_backend']!r}, fullgraph=True) through generate()'s "
        "compile_config; the warm-up column includes the compile.",
    ]
    if record["dtype"] == "bf16" and record["device"] == "cpu" and not record["cpu_has_fast_bf16"]:
        lines.append(f"{common.NO_BF16_UNITS}: bf16 ran emulated.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--n", type=int, default=None, help="input length the schedule is rescaled to")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=None, help="forced new tokens (default 128, quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per mode (default 3, quick 1)")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (tests: eager)")
    parser.add_argument("--out", type=Path, default=common.RESULTS)
    parser.add_argument("--stem", default=None, help="file name of the results (default decode_cache)")
    args = parser.parse_args(argv)
    args.n = args.n or (512 if args.quick else 8192)
    args.tokens = args.tokens or (8 if args.quick else 128)
    args.repeats = args.repeats or (1 if args.quick else 3)
    record = measure(args)
    stem = args.stem or ("decode_cache_quick" if args.quick else "decode_cache")
    common.publish(args.out, stem, record, report, common.command_line(__file__, argv))
    return record


if __name__ == "__main__":
    main()
