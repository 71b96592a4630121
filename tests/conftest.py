"""Shared fixtures: tiny Pyramidion configs and a tiny word-level tokenizer built locally (no Hub access)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Before transformers is imported: no Hub, and remote code loaded by the tests goes to a private module cache.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "HF_MODULES_CACHE" not in os.environ:
    os.environ["HF_MODULES_CACHE"] = tempfile.mkdtemp(prefix="pyramidion-test-modules-")
    atexit.register(shutil.rmtree, os.environ["HF_MODULES_CACHE"], ignore_errors=True)

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from pyramidion_hf import PyramidionConfig, PyramidionForConditionalGeneration  # noqa: E402

torch.set_num_threads(1)

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3: bos, pad, eos, unk (the config defaults 0, 1, 2)
WORDS = [f"w{i}" for i in range(60)]


def tiny_config(**overrides: Any) -> PyramidionConfig:
    """A 2+2-layer model (d=16) over 64-token inputs: blocks of 16, pooling 64 -> 16 after layer 2."""
    kwargs: dict[str, Any] = dict(
        vocab_size=len(SPECIALS) + len(WORDS),
        max_position_embeddings=64,
        encoder_lengths=[64, 16],
        block_size=16,
        d_model=16,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        decoder_layers=2,
        dropout=0.0,
        max_target_positions=32,
        init_std=0.25,  # ~d_model^-0.5 (fairseq scale): random outputs depend on the input, unlike with 0.02
    )
    kwargs.update(overrides)
    return PyramidionConfig(**kwargs)


def tiny_model(seed: int = 0, **overrides: Any) -> PyramidionForConditionalGeneration:
    """An eval-mode model with seeded random weights."""
    torch.manual_seed(seed)
    return PyramidionForConditionalGeneration(tiny_config(**overrides)).eval()


def random_batch(lengths: list[int], vocab_size: int, seed: int = 0, pad_to: int | None = None):
    """Right-padded input_ids (B, n) and attention_mask (B, n) of documents of the given lengths (ending in
    eos)."""
    gen = torch.Generator().manual_seed(seed)
    n = pad_to or max(lengths)
    ids = torch.full((len(lengths), n), 1, dtype=torch.long)
    mask = torch.zeros(len(lengths), n, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids[row, : length - 1] = torch.randint(4, vocab_size, (length - 1,), generator=gen)
        ids[row, length - 1] = 2
        mask[row, :length] = 1
    return ids, mask


def run_without_package(code: str, *args: str, cwd: Path) -> dict[str, Any]:
    """Run `python -c code args` where `import pyramidion_hf` fails (the code sets
    sys.modules["pyramidion_hf"] = None), offline, with a private remote-code cache under `cwd`; return the
    JSON its last line prints."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(cwd / "modules"),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def make_config() -> Callable[..., PyramidionConfig]:
    return tiny_config


@pytest.fixture
def make_model() -> Callable[..., PyramidionForConditionalGeneration]:
    return tiny_model


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over w0..w59 that appends </s>; ids match the config's special tokens."""
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=10**30,
    )
