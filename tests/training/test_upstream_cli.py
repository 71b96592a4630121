"""transformers' run_summarization.py command line: its names are accepted, one of its commands runs as is."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from run_helpers import EXAMPLES, run_command_line, synthetic_rows, write_jsonl

from pyramidion_hf.modeling.modeling_pyramidion import PyramidionForConditionalGeneration
from pyramidion_hf.presets import get_preset
from pyramidion_hf.training.arguments import parse_args
from pyramidion_hf.training.features import prepare_features
from pyramidion_hf.training.tokenizer import train_tokenizer

TINY = dict(
    max_position_embeddings=64, encoder_lengths=[64, 32, 16], block_size=16, d_model=32,
    encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
    decoder_layers=1, dropout=0.0, max_target_positions=256,
)  # fmt: skip


def upstream_rows(n: int, seed: int, prefix: str) -> list[dict[str, str]]:
    """Synthetic documents under upstream's usual column names, `text` and `summary`."""
    return [
        {"id": row["id"], "text": row["article"], "summary": row["abstract"]}
        for row in synthetic_rows(n, seed, prefix)
    ]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny saved model + tokenizer folder, what --model_name_or_path names upstream."""
    folder = tmp_path_factory.mktemp("upstream") / "model"
    rows = upstream_rows(24, 0, "train")
    tokenizer = train_tokenizer([r[c] for r in rows for c in ("text", "summary")], vocab_size=300)
    special = {
        "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.eos_token_id,
    }  # fmt: skip
    model = PyramidionForConditionalGeneration(get_preset("pyramidion", **special, **TINY))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_upstream_readme_command_runs_unchanged(tmp_path: Path, model_folder: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", upstream_rows(24, 0, "train"))
    val = write_jsonl(tmp_path / "val.jsonl", upstream_rows(5, 1, "val"))
    out = tmp_path / "out"
    # transformers' examples/pytorch/summarization/README.md, "custom CSV/JSONLINES files", + --max_steps 2
    command = (
        f"--model_name_or_path {model_folder} --do_train --do_eval --train_file {train} "
        f"--validation_file {val} --source_prefix 'summarize: ' --output_dir {out} --overwrite_output_dir "
        "--per_device_train_batch_size=4 --per_device_eval_batch_size=4 --predict_with_generate "
        "--text_column text --summary_column summary --max_steps 2"
    )
    result = run_command_line(shlex.split(command))
    assert result.metrics["train_steps"] == 2 and result.metrics["eval_samples"] == 5
    assert "eval_rouge1" in result.metrics
    assert json.loads((out / "all_results.json").read_text())["eval_samples"] == 5


def test_upstream_names_map_to_ours(tmp_path: Path) -> None:
    model_args, data_args, training_args = parse_args(
        [
            "--dataset_name", "ccdv/arxiv-summarization", "--dataset_config_name", "section",
            "--text_column", "article", "--summary_column", "abstract", "--num_beams", "3",
            "--val_max_target_length", "20", "--max_target_length", "30", "--source_prefix", "summarize: ",
            "--cache_dir", str(tmp_path / "cache"), "--model_revision", "v1", "--token", "hf_x",
            "--overwrite_cache", "--preprocessing_num_workers", "2", "--pad_to_max_length",
            "--ignore_pad_token_for_loss", "false", "--config_name", "pyramidion",
            "--output_dir", str(tmp_path / "out"),
        ]
    )  # fmt: skip
    assert (data_args.dataset, data_args.dataset_config_name) == ("ccdv/arxiv-summarization", "section")
    assert training_args.generation_num_beams == 3 and training_args.generation_max_length == 20
    assert data_args.target_length("train") == 30 and data_args.target_length("validation") == 20
    assert model_args.preset == "pyramidion"
    assert model_args.hub_kwargs() == {
        "cache_dir": str(tmp_path / "cache"), "token": "hf_x", "trust_remote_code": False, "revision": "v1",
    }  # fmt: skip
    assert data_args.overwrite_cache and data_args.preprocessing_num_workers == 2
    assert not data_args.ignore_pad_token_for_loss and data_args.no_repeat_ngram_size is None  # as upstream
    # our own names still work
    _, ours, _ = parse_args(["--dataset", "x.jsonl", "--article_column", "body", "--output_dir", "o"])
    assert (ours.dataset, ours.article_column) == ("x.jsonl", "body")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--forced_bos_token", "en_XX"], "multilingual"),
        (["--resize_position_embeddings", "true"], "encoder_lengths"),
        (["--config_name", "google-t5/t5-small"], "name a preset"),
    ],
)
def test_upstream_options_that_do_not_apply_are_refused(option: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_args([*option, "--output_dir", "o"])


def test_refusal_is_one_line_from_the_script(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "run_summarization.py"), "--forced_bos_token", "en_XX",
         "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode != 0
    assert (
        done.stderr.strip().splitlines()
        == [line for line in done.stderr.strip().splitlines() if "forced_bos_token" in line]
        and "Traceback" not in done.stderr
    )


def test_source_prefix_goes_before_every_document(tokenizer) -> None:
    data = datasets.Dataset.from_list([{"article": "w1 w2", "abstract": "w3"}])
    plain, _ = prepare_features(data, tokenizer, 32, 8)
    prefixed, _ = prepare_features(data, tokenizer, 32, 8, source_prefix="w9 ")
    expected = tokenizer("w9 w1 w2")["input_ids"]
    assert prefixed["input_ids"][0] == expected != plain["input_ids"][0]
