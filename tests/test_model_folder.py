"""pyramidion_hf.model_folder: each kind of bad saved folder is refused with the reason; the dtype choice;
the CLI error wrapper (pyramidion_hf.cli_errors) that turns such refusals into one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import tiny_model
from safetensors.torch import load_file, save_file

from pyramidion_hf import PyramidionForConditionalGeneration
from pyramidion_hf import model_folder as mf
from pyramidion_hf.cli_errors import DEBUG_ENV, cli_main
from pyramidion_hf.model_folder import check_model_folder, load_model_folder, resolve_dtype

TENSOR = "model.encoder.layers.0.fc1.weight"


def save_folder(folder: Path, tokenizer, **overrides) -> Path:
    """A tiny model + the conftest tokenizer saved in `folder`."""
    tiny_model(**overrides).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def folder(tmp_path, tokenizer) -> Path:
    return save_folder(tmp_path / "model", tokenizer)


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_weights(folder: Path, edit) -> None:
    weights = load_file(folder / "model.safetensors")
    edit(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def _set(name: str, value: float):
    def edit(weights):
        weights[name].view(-1)[:3] = value

    return edit


def _truncate(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _drop_tokenizer(folder: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


NAN, INF = float("nan"), float("inf")
BREAKAGES = {
    "no config": (lambda f: (f / "config.json").unlink(), "missing: config.json"),
    "bart": (lambda f: _edit_config(f, model_type="bart", auto_map=None), "pyramidion-convert"),
    "unknown type": (lambda f: _edit_config(f, model_type="t5", auto_map=None), "transformers' own classes"),
    "no tokenizer": (_drop_tokenizer, "tokenizer.save_pretrained"),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), "missing: model weights"),
    "remote code": (lambda f: _edit_config(f, model_type="pyramidion_fork"), "--trust-remote-code"),
    "truncated": (_truncate, "truncated or corrupt"),
    "missing tensor": (lambda f: _edit_weights(f, lambda w: w.pop(TENSOR)), f"missing keys: {TENSOR}"),
    "nan tensor": (lambda f: _edit_weights(f, _set(TENSOR, NAN)), f"NaN or inf values, first in {TENSOR}"),
    "inf tensor": (lambda f: _edit_weights(f, _set(TENSOR, INF)), f"first in {TENSOR} (3 of"),
    "wrong shape": (lambda f: _edit_config(f, encoder_ffn_dim=48), "mismatched keys: "),
    "bad json": (lambda f: (f / "config.json").write_text("{not json"), "not valid JSON"),
}


@pytest.mark.parametrize("kind", sorted(BREAKAGES))
def test_refuses_a_broken_folder(folder, kind):
    breakage, phrase = BREAKAGES[kind]
    breakage(folder)
    with pytest.raises(ValueError) as err:
        load_model_folder(folder, dtype="fp32")
    assert phrase in str(err.value)
    assert "sentencepiece" not in str(err.value) and "\n" not in str(err.value)


def test_refuses_a_missing_folder_and_a_tokenizer_larger_than_the_model(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="does not exist"):
        load_model_folder(tmp_path / "nowhere")
    small = save_folder(tmp_path / "small", tokenizer, vocab_size=40)
    with pytest.raises(ValueError, match="has 64 tokens but the model's vocab_size is 40"):
        load_model_folder(small, dtype="fp32")


def test_loads_a_good_folder_in_the_dtype_asked(folder, tokenizer):
    model, tok = load_model_folder(folder, dtype="fp32")
    assert isinstance(model, PyramidionForConditionalGeneration) and not model.training
    assert model.dtype == torch.float32 and len(tok) == len(tokenizer)
    reference = tiny_model()
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0)
    assert load_model_folder(folder, dtype="bf16")[0].dtype == torch.bfloat16
    assert load_model_folder(folder, dtype=None)[0].dtype == torch.float32  # as saved
    assert check_model_folder(folder) is False  # our own auto_map: the package's classes load it


def test_remote_code_folder_loads_when_trusted(folder):
    _edit_config(folder, model_type="pyramidion_fork")
    assert check_model_folder(folder) is True
    model, _ = load_model_folder(folder, dtype="fp32", trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules.")
    assert type(model).__name__ == "PyramidionForConditionalGeneration"


def test_remote_code_folder_naming_other_classes(folder):
    shutil.copyfile(folder / "modeling_pyramidion.py", folder / "modeling_fork.py")
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    auto_map["AutoModelForSeq2SeqLM"] = "modeling_fork.PyramidionForConditionalGeneration"
    _edit_config(folder, auto_map=auto_map)
    with pytest.raises(ValueError, match="loads with its own code"):
        load_model_folder(folder)


# ------------------------------------------------------------------------------------------------ dtype


@pytest.mark.parametrize("fast,expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_follows_the_cpu(monkeypatch, folder, fast, expected):
    monkeypatch.delenv(mf.DTYPE_ENV, raising=False)
    monkeypatch.setattr(mf, "cpu_has_fast_bf16", lambda: fast)
    assert resolve_dtype("auto") == expected
    assert load_model_folder(folder)[0].dtype == expected
    assert resolve_dtype("fp32") == torch.float32 and resolve_dtype("bf16") == torch.bfloat16
    assert resolve_dtype("auto", device="meta") == torch.float32


def test_auto_dtype_on_cuda(monkeypatch):
    monkeypatch.delenv(mf.DTYPE_ENV, raising=False)
    monkeypatch.setattr(mf, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", device="cuda:0") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", device="cuda") == torch.float32


def test_environment_overrides_auto_only(monkeypatch):
    monkeypatch.setattr(mf, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.setenv(mf.DTYPE_ENV, "fp32")
    assert resolve_dtype("auto") == torch.float32 and resolve_dtype("bf16") == torch.bfloat16
    monkeypatch.setenv(mf.DTYPE_ENV, "fp16")
    with pytest.raises(ValueError, match="PYRAMIDION_DTYPE='fp16'"):
        resolve_dtype("auto")
    with pytest.raises(ValueError, match="dtype must be one of auto, bf16, fp32"):
        resolve_dtype("half")


@pytest.mark.parametrize(
    "cpuinfo,capability,fast",
    [
        ("flags\t: fpu sse avx512f avx512_bf16 amx_tile", "AVX512", True),
        ("flags\t: fpu sse amx_bf16", "AVX512", True),
        ("flags\t: fpu sse avx2 avx512f", "AVX512", False),
        (None, "AVX2", False),
        (None, "AMX", True),
    ],
)
def test_cpu_probe(monkeypatch, tmp_path, cpuinfo, capability, fast):
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo + "\n")
    monkeypatch.setattr(mf, "CPUINFO", path)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert mf.cpu_has_fast_bf16() is fast


# ------------------------------------------------------------------------------------------------ cli_errors


def _cli(error: BaseException):
    @cli_main("prog")
    def main(argv):
        assert "--debug" not in argv
        raise error

    return main


def test_cli_main_one_line_or_traceback(monkeypatch, capsys):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as err:
        _cli(ValueError("first line\nmore detail"))(["x"])
    assert err.value.code == 2
    assert capsys.readouterr().err == "prog: error: first line (run with --debug for the rest)\n"
    with pytest.raises(SystemExit) as err:
        _cli(FileNotFoundError("no such file: x"))([])
    assert err.value.code == 2 and capsys.readouterr().err == "prog: error: no such file: x\n"
    with pytest.raises(SystemExit) as err:
        _cli(KeyboardInterrupt())([])
    assert err.value.code == 130 and capsys.readouterr().err == "prog: interrupted\n"
    with pytest.raises(ValueError, match="first line"):
        _cli(ValueError("first line"))(["x", "--debug"])
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(OSError):
        _cli(OSError("disk"))([])
    with pytest.raises(RuntimeError):  # not an expected error: its traceback always shows
        _cli(RuntimeError("a bug"))([])
