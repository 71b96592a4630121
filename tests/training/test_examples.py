"""The example scripts end to end: demo.py --smoke (the main job, tiny), train_tokenizer.py, summarize.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import demo  # noqa: E402
import run_summarization as rs  # noqa: E402
import summarize as summarize_cli  # noqa: E402
import train_tokenizer as tokenizer_cli  # noqa: E402
from test_training import REPO, TINY_OVERRIDES, synthetic_rows, write_jsonl  # noqa: E402

ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def test_demo_smoke_runs_the_whole_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    metrics = demo.main(["--smoke", "--output_dir", str(out), "--n_bootstrap", "200"])
    printed = capsys.readouterr().out

    assert metrics == json.loads((out / "metrics.json").read_text())
    for who in ("model", "lead"):
        for key in ROUGE:
            scores = metrics[who]
            assert 0.0 <= scores[f"{key}_low"] <= scores[key] <= scores[f"{key}_high"] <= 100.0
    assert metrics["model"]["samples"] == metrics["lead"]["samples"] == 4  # same split, same documents
    assert metrics["lead"]["rouge1"] > 15.0  # real ACLSum papers: the Lead baseline overlaps the abstracts
    assert metrics["train"]["train_steps"] == demo.SMOKE.max_steps
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
    assert model.config.encoder_lengths == list(demo.SMOKE.encoder_lengths)
    assert len(AutoTokenizer.from_pretrained(out / "tokenizer")) == demo.SMOKE.vocab_size
    card = (out / "hub" / "README.md").read_text()
    assert f"{metrics['model']['rouge1']:.2f}" in card and f"{metrics['lead']['rouge1']:.2f}" in card
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
    size = demo.demo_size(demo.parse_args(["--max_source_length", "4096", "--max_steps", "10"]))
    assert size.max_source_length == 4096 and size.max_steps == 10
    assert size.encoder_lengths == tuple(2 * n for n in demo.FULL.encoder_lengths)  # scaled with the input
    smoke = demo.demo_size(demo.parse_args(["--smoke", "--encoder_lengths", "256", "32"]))
    assert smoke.encoder_lengths == (256, 32) and smoke.d_model == demo.SMOKE.d_model
    overrides = rs.parse_config_overrides(demo.config_overrides(demo.FULL))
    assert overrides["encoder_lengths"] == list(demo.FULL.encoder_lengths)
    assert overrides["max_position_embeddings"] == demo.FULL.max_source_length


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_train_tokenizer_cli(tmp_path: Path, kind: str) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(30, 0, "doc"))
    out = tokenizer_cli.main(
        ["--dataset", str(data), "--vocab_size", "300", "--model", kind, "--columns", "article", "abstract",
         "--model_max_length", "64", "--output_dir", str(tmp_path / "tok")]
    )  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) <= 300 and tokenizer.model_max_length == 64
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    text = synthetic_rows(1, 99, "x")[0]["article"]
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_train_tokenizer_cli_errors(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", synthetic_rows(3, 0, "doc"))
    with pytest.raises(ValueError, match="no split 'test'"):
        tokenizer_cli.main(["--dataset", str(data), "--split", "test", "--output_dir", str(tmp_path / "a")])
    with pytest.raises(ValueError, match="no column 'body'"):
        tokenizer_cli.main(
            ["--dataset", str(data), "--article_column", "body", "--output_dir", str(tmp_path / "b")]
        )


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained model + tokenizer saved like run_summarization.py saves them."""
    root = tmp_path_factory.mktemp("saved")
    data = write_jsonl(root / "train.jsonl", synthetic_rows(30, 0, "doc"))
    tokenizer = tokenizer_cli.build_tokenizer(str(data), root / "tok", columns=("article",), vocab_size=300)
    torch.manual_seed(0)
    model = rs.build_model(rs.ModelArguments(preset="pyramidion", config_overrides=TINY_OVERRIDES), tokenizer)
    model.generation_config.max_length = 12
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return root / "model"


def test_summarize_cli_prints_what_generate_gives(saved_model: Path, tmp_path: Path) -> None:
    text = " ".join(row["article"] for row in synthetic_rows(6, 5, "doc"))  # longer than the 64-token model
    document = tmp_path / "paper.txt"
    document.write_text(text, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "summarize.py"), str(document), "--model", str(saved_model),
         "--max_new_tokens", "8", "--no_repeat_ngram_size", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    model = AutoModelForSeq2SeqLM.from_pretrained(saved_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(saved_model)
    inputs = tokenizer(text, truncation=True, max_length=64, return_tensors="pt")
    ids = model.generate(**inputs, max_new_tokens=8, no_repeat_ngram_size=2)
    expected = tokenizer.decode(ids[0], skip_special_tokens=True).strip()
    assert done.stdout.split() == (expected or "(empty summary)").split()


def test_summarize_rejects_unreadable_or_empty_documents(saved_model: Path, tmp_path: Path) -> None:
    binary = tmp_path / "paper.pdf"
    binary.write_bytes(b"%PDF-1.5 \xff\xfe\xfa")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        summarize_cli.main([str(binary), "--model", str(saved_model)])
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        summarize_cli.main([str(empty), "--model", str(saved_model)])


@pytest.mark.parametrize(
    "entry", [rs.main, demo.main, summarize_cli.main, tokenizer_cli.main], ids=lambda f: f.__module__
)
def test_every_script_prints_its_help(entry, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        entry(["--help"])
    assert exit_info.value.code == 0
    assert "--" in capsys.readouterr().out
