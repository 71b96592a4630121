"""A folder saved before the package layout changed (tests/fixtures/saved_before_layout: a tiny model saved by
commit 1bad1f9, with its inputs, beam-search tokens and logits) loads and computes the same today."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from conftest import run_without_package
from transformers import AutoModelForSeq2SeqLM

from pyramidion_hf import PyramidionForConditionalGeneration
from pyramidion_hf.hub import export_repo

FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "saved_before_layout"


def _expected() -> dict:
    return json.loads((FOLDER / "expected.json").read_text())


def _check(model: torch.nn.Module) -> None:
    expected = _expected()
    ids, mask = torch.tensor(expected["input_ids"]), torch.tensor(expected["attention_mask"])
    with torch.no_grad():
        generated = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, num_beams=2
        )
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=generated[:, :4]).logits
    assert generated.tolist() == expected["generated"]
    assert torch.allclose(logits[0, :, :4], torch.tensor(expected["logits_first"]), atol=1e-5)
    assert abs(float(logits.double().sum()) - expected["logits_sum"]) < 1e-3


def test_old_folder_loads_with_the_package_and_generates_the_same_tokens():
    model = AutoModelForSeq2SeqLM.from_pretrained(FOLDER).eval()
    assert isinstance(model, PyramidionForConditionalGeneration)
    _check(model)


CHILD = """
import json, sys
sys.modules["pyramidion_hf"] = None  # the package is not importable: only the folder's own code can load it
import torch
from transformers import AutoModelForSeq2SeqLM
folder = sys.argv[1]
expected = json.load(open(folder + "/expected.json"))
model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
ids, mask = torch.tensor(expected["input_ids"]), torch.tensor(expected["attention_mask"])
out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, num_beams=2)
print(json.dumps({"module": type(model).__module__, "generated": out.tolist()}))
"""


def test_old_folder_loads_as_its_own_remote_code_without_the_package(tmp_path):
    folder = shutil.copytree(FOLDER, tmp_path / "model")
    child = run_without_package(CHILD, str(folder), cwd=tmp_path)
    assert child["module"].startswith("transformers_modules.")
    assert child["generated"] == _expected()["generated"]


def test_resaving_an_old_folder_writes_todays_remote_code(tmp_path):
    model = AutoModelForSeq2SeqLM.from_pretrained(FOLDER).eval()
    model.save_pretrained(tmp_path / "resaved")
    assert (tmp_path / "resaved" / "attention.py").is_file()  # a module the old layout did not have
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "resaved", trust_remote_code=True).eval()
    _check(reloaded)


def test_export_follows_the_relative_imports_of_todays_modeling_package(tmp_path, tokenizer):
    model = AutoModelForSeq2SeqLM.from_pretrained(FOLDER).eval()
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    export_repo(tmp_path / "model", tmp_path / "repo")
    exported = {p.name for p in (tmp_path / "repo").iterdir()}
    assert {"attention.py", "modeling_pyramidion.py", "topk.py"} <= exported
