"""The example scripts end to end, each run as a command: demo.py --smoke (the main job, tiny),
train_tokenizer.py, summarize.py; and the package functions behind them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_helpers import EXAMPLES, TINY_OVERRIDES, synthetic_rows, write_jsonl
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from pyramidion_hf.training.arguments import ModelArguments, parse_config_overrides
from pyramidion_hf.training.demo import FULL, SMOKE, config_overrides, demo_size
from pyramidion_hf.training.metrics import ROUGE_KEYS
from pyramidion_hf.training.model_setup import build_model
from pyramidion_hf.training.summarize import load_pipeline, read_text, summarize
from pyramidion_hf.training.tokenizer import train_tokenizer_on_dataset

SCRIPTS = ("run_summarization.py", "demo.py", "summarize.py", "train_tokenizer.py")


def run_script(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """examples/<script> with `args` in a child process (the installed package, one thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_demo_smoke_runs_the_whole_job(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    done = run_script("demo.py", "--smoke", "--output_dir", str(out), "--n_bootstrap", "200", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout

    metrics = json.loads((out / "metrics.json").read_text())
    assert str(out / "metrics.json") in printed
    for who in ("model", "lead"):
        for key in ROUGE_KEYS:
            scores = metrics[who]
            assert 0.0 <= scores[f"{key}_low"] <= scores[key] <= scores[f"{key}_high"] <= 100.0
    assert metrics["model"]["samples"] == metrics["lead"]["samples"] == 4  # same split, same documents
    assert metrics["lead"]["rouge1"] > 15.0  # real ACLSum papers: the Lead baseline overlaps the abstracts
    assert metrics["train"]["train_steps"] == SMOKE.max_steps
    assert metrics["data_report"]["test"]["n_examples"] == 4
    page = (out / "explain.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert str(out / "explain.html") in printed
    assert metrics["example"]["reference"] and "summary" in metrics["example"]
    assert set(metrics["timings_s"]) >= {
        "tokenizer_s",
        "train_and_evaluate_s",
        "summarize_and_explain_one_s",
        "total_s",
    }

    model = AutoModelForSeq2SeqLM.from_pretrained(out / "model")
    assert model.config.encoder_lengths == list(SMOKE.encoder_lengths)
    assert len(AutoTokenizer.from_pretrained(out / "tokenizer")) == SMOKE.vocab_size
    card = (out / "hub" / "README.md").read_text()
    assert f"{metrics['model']['rouge1']:.2f}" in card and f"{metrics['lead']['rouge1']:.2f}" in card
    assert not metrics["size"]["bf16"] and "| Precision | fp32 |" in card  # the demo's default dtype
    for name in ("config.json", "model.safetensors", "modeling_pyramidion.py", "tokenizer.json"):
        assert (out / "hub" / name).is_file()
    assert (out / "model" / "generated_predictions.jsonl").is_file()
    for text in (
        "[1/5]",
        "[5/5]",
        "Held-out paper:",
        "reference abstract",
        "model vs Lead",
        str(out / "hub"),
    ):
        assert text in printed


def test_demo_sizes_follow_the_flags() -> None:
    size = demo_size(max_source_length=4096, max_steps=10)
    assert size.max_source_length == 4096 and size.max_steps == 10
    assert size.encoder_lengths == tuple(2 * n for n in FULL.encoder_lengths)  # scaled with the input
    smoke = demo_size(smoke=True, encoder_lengths=[256, 32])
    assert smoke.encoder_lengths == (256, 32) and smoke.d_model == SMOKE.d_model
    overrides = parse_config_overrides(config_overrides(FULL))
    assert overrides["encoder_lengths"] == list(FULL.encoder_lengths)
    assert overrides["max_position_embeddings"] == FULL.max_source_length


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_train_tokenizer_cli(tmp_path: Path, kind: str) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(30, 0, "doc"))
    out = tmp_path / "tok"
    done = run_script(
        "train_tokenizer.py", "--dataset", str(data), "--vocab_size", "300", "--model", kind,
        "--columns", "article", "abstract", "--model_max_length", "64", "--output_dir", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) <= 300 and tokenizer.model_max_length == 64
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    text = synthetic_rows(1, 99, "x")[0]["article"]
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_train_tokenizer_errors(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(3, 0, "doc"))
    with pytest.raises(ValueError, match="no split 'test'"):
        train_tokenizer_on_dataset(str(data), tmp_path / "a", split="test")
    with pytest.raises(ValueError, match="no column 'body'"):
        train_tokenizer_on_dataset(str(data), tmp_path / "b", article_column="body")


def test_cli_failure_is_one_line_on_stderr(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(3, 0, "doc"))
    done = run_script("train_tokenizer.py", "--dataset", str(data), "--split", "test", "--output_dir", "x")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr  # one line (after the datasets progress bars), no traceback
    assert done.stderr.strip().splitlines()[-1].startswith("train_tokenizer.py: error: ")
    assert "no split 'test'" in done.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained model + tokenizer saved like run_summarization.py saves them."""
    root = tmp_path_factory.mktemp("saved")
    data = write_jsonl(root / "train.jsonl", synthetic_rows(30, 0, "doc"))
    tokenizer = train_tokenizer_on_dataset(str(data), root / "tok", columns=("article",), vocab_size=300)
    torch.manual_seed(0)
    model = build_model(ModelArguments(preset="pyramidion", config_overrides=TINY_OVERRIDES), tokenizer)
    model.generation_config.max_length = 12
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return root / "model"


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_summarize_cli_prints_what_generate_gives(saved_model: Path, tmp_path: Path, dtype: str) -> None:
    text = " ".join(row["article"] for row in synthetic_rows(6, 5, "doc"))  # longer than the 64-token model
    document = tmp_path / "paper.txt"
    document.write_text(text, encoding="utf-8")
    done = run_script(
        "summarize.py", str(document), "--model", str(saved_model), "--max_new_tokens", "8",
        "--no_repeat_ngram_size", "2", "--dtype", dtype,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    model = AutoModelForSeq2SeqLM.from_pretrained(saved_model, dtype=torch_dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(saved_model)
    inputs = tokenizer(text, truncation=True, max_length=64, return_tensors="pt")
    ids = model.generate(**inputs, max_new_tokens=8, no_repeat_ngram_size=2)
    expected = tokenizer.decode(ids[0], skip_special_tokens=True).strip()
    assert done.stdout.split() == (expected or "(empty summary)").split()


def test_summarize_cli_refuses_a_folder_that_is_not_a_pyramidion(tmp_path: Path, tokenizer) -> None:
    from transformers import BartConfig, BartForConditionalGeneration

    bart = BartForConditionalGeneration(
        BartConfig(vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32)
    )  # fmt: skip
    bart.save_pretrained(tmp_path / "bart")
    tokenizer.save_pretrained(tmp_path / "bart")
    (tmp_path / "paper.txt").write_text("w1 w2 w3", encoding="utf-8")
    done = run_script("summarize.py", str(tmp_path / "paper.txt"), "--model", str(tmp_path / "bart"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pyramidion-convert" in done.stderr.strip().splitlines()[-1]


def test_summarize_rejects_unreadable_or_empty_documents(saved_model: Path, tmp_path: Path) -> None:
    binary = tmp_path / "paper.pdf"
    binary.write_bytes(b"%PDF-1.5 \xff\xfe\xfa")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        read_text(str(binary))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        summarize(load_pipeline(saved_model), read_text(str(empty)))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_prints_its_help(script: str) -> None:
    done = run_script(script, "--help")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--" in done.stdout
