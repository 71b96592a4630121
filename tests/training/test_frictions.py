"""Small frictions: the tokenizer trainer's progress bar, a saved tokenizer loading without the package, the
Lead baseline bar under --disable_tqdm, and a ROUGE module path that works from any directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import evaluate
import pytest

import pyramidion_hf.training.metrics_rouge_ci.metrics_rouge_ci as rouge_module
from pyramidion_hf.training.metrics import METRIC_MODULE_PATH
from pyramidion_hf.training.summarization import lead_baseline
from pyramidion_hf.training.tokenizer import _backend_and_trainer, train_tokenizer

CHILD = textwrap.dedent(
    """
    import sys
    sys.modules["pyramidion_hf"] = None  # `import pyramidion_hf` now raises ImportError
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
    print("CLASS", type(tokenizer).__name__, tokenizer("w1 w2")["input_ids"])
    """
)


@pytest.mark.parametrize("model", ["bpe", "unigram"])
def test_tokenizer_trainer_shows_progress_unless_disabled(model: str) -> None:
    assert _backend_and_trainer(300, model, 2)[1].show_progress is True
    assert _backend_and_trainer(300, model, 2, show_progress=False)[1].show_progress is False


def test_saved_tokenizer_loads_without_the_package_and_without_prompt(tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    train_tokenizer(["w1 w2 w3 w4"] * 20, vocab_size=300, show_progress=False).save_pretrained(folder)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HF_MODULES_CACHE": str(tmp_path / "m"),
    }
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)],
        input="",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "[y/N]" not in output and "model of type" not in output
    assert re.search(r"CLASS (TokenizersBackend|PreTrainedTokenizerFast) \[0, ", done.stdout)


def test_lead_baseline_bar_honours_disable_tqdm(capsys: pytest.CaptureFixture[str]) -> None:
    articles, references = ["One sentence here. Another one."] * 3, ["One sentence here."] * 3
    lead_baseline(articles, references, 1, 10, disable_tqdm=True)
    assert "Lead baseline" not in capsys.readouterr().err
    lead_baseline(articles, references, 1, 10)
    assert "Lead baseline" in capsys.readouterr().err


def test_rouge_module_path_in_its_docstring_works_from_anywhere(tmp_path, monkeypatch) -> None:
    assert "METRIC_MODULE_PATH" in rouge_module.__doc__ and "path/to" not in rouge_module.__doc__
    monkeypatch.chdir(tmp_path)
    metric = evaluate.load(str(METRIC_MODULE_PATH))
    scores = metric.compute(predictions=["the cat sat"], references=["the cat sat down"], n_bootstrap=10)
    assert round(scores["rouge1"], 1) == 85.7
