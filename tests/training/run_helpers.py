"""Helpers of the training-run tests: a synthetic corpus, its tokenizer, and the command line of a tiny run.

Shared by test_training.py, test_resume.py, test_multiprocess.py and test_examples.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pyramidion_hf.training.arguments import parse_args
from pyramidion_hf.training.summarization import RunResult, run
from pyramidion_hf.training.tokenizer import train_tokenizer_on_dataset

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TINY_OVERRIDES = (
    "max_position_embeddings=64,encoder_lengths=[64,32,16],block_size=16,d_model=32,encoder_attention_heads=2,"
    "decoder_attention_heads=2,encoder_ffn_dim=64,decoder_ffn_dim=64,decoder_layers=1,dropout=0.0,"
    "max_target_positions=64"
)
WORDS = (
    "we propose a model for long document summarization the encoder selects few tokens pooling attention "
    "results show gains over baselines on scientific papers data training decoder length blocks scores"
).split()


def synthetic_rows(n: int, seed: int, prefix: str) -> list[dict[str, str]]:
    """Documents of 2-4 short sentences; the summary is the first sentence (a learnable copy task)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 7))).capitalize() + "."
            for _ in range(rng.randint(2, 4))
        ]
        rows.append({"id": f"{prefix}-{i}", "article": " ".join(sentences), "abstract": sentences[0]})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One JSON object per line."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_corpus(folder: Path, n_train: int = 24, n_eval: int = 5, n_test: int = 5) -> dict[str, Path]:
    """train/validation/test .jsonl files of synthetic documents."""
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"train": n_train, "validation": n_eval, "test": n_test}
    return {
        split: write_jsonl(folder / f"{split}.jsonl", synthetic_rows(n, seed, split))
        for seed, (split, n) in enumerate(sizes.items())
    }


def build_tokenizer(folder: Path, train_file: Path) -> Path:
    """A 300-token BPE trained (as examples/train_tokenizer.py does) on the train articles and summaries."""
    train_tokenizer_on_dataset(str(train_file), folder, columns=("article", "abstract"), vocab_size=300)
    return folder


def run_argv(files: dict[str, Path], tokenizer: Path, output_dir: Path, *extra: str) -> list[str]:
    """Command line for a tiny run: preset + overrides, local files, CPU, no reporting."""
    argv = [
        "--preset", "pyramidion", "--config_overrides", TINY_OVERRIDES, "--tokenizer_name", str(tokenizer),
        "--max_target_length", "24", "--generation_max_length", "16", "--n_bootstrap", "100",
        "--output_dir", str(output_dir), "--report_to", "none", "--seed", "0", "--disable_tqdm", "true",
        "--per_device_eval_batch_size", "4", "--dataloader_pin_memory", "false",
    ]  # fmt: skip
    for split, path in files.items():
        argv += [f"--{split}_file", str(path)]
    return argv + list(extra)


def run_command_line(argv: list[str]) -> RunResult:
    """What examples/run_summarization.py runs for `argv`, in this process."""
    return run(*parse_args(argv))


def logged_losses(output_dir: Path) -> list[float]:
    """The training losses in output_dir/trainer_state.json, in step order."""
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]
