"""`pyramidion-hub` failures a user can cause (a bad model folder, offline, no or a refused token, no network)
are one line on stderr with status 2, before anything is written or uploaded; `--debug` shows the trace."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_model
from huggingface_hub.errors import HfHubHTTPError, HTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled
from safetensors.torch import load_file, save_file

from pyramidion_hf.hub import export_repo, main, push_repo
from pyramidion_hf.hub import push as hub_push

HTTP = importlib.import_module(HTTPError.__module__)  # the HTTP client huggingface_hub raises errors of
URL = "https://huggingface.co/api/repos/create"


@pytest.fixture
def model_dir(tmp_path, tokenizer) -> Path:
    folder = tmp_path / "model"
    tiny_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def exported(model_dir, tmp_path) -> Path:
    return export_repo(model_dir, tmp_path / "repo", benchmarks_dir=None)


def _fail(capsys, argv: list[str]) -> str:
    """Run the CLI, expect status 2, return its one stderr line."""
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyramidion-hub: error: "), lines
    return lines[0]


# ------------------------------------------------------------------------------------------------ export


def _poison(folder: Path, kind: str) -> None:
    weights = load_file(folder / "model.safetensors")
    if kind == "nan":
        weights["model.decoder.layers.1.fc1.weight"][3, 3] = float("nan")
    else:
        del weights["model.decoder.layers.1.fc1.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize(
    "kind,phrase",
    [
        ("nan", "NaN or inf values, first in model.decoder.layers.1.fc1.weight (1 of"),
        ("missing", "missing keys: model.decoder.layers.1.fc1.weight"),
        ("bart", "model_type 'bart': this is not a Pyramidion model; convert it with `pyramidion-convert"),
        ("remote", "names its own model code"),
    ],
)
def test_export_refuses_a_bad_folder_before_writing(model_dir, tmp_path, capsys, kind, phrase):
    if kind in ("nan", "missing"):
        _poison(model_dir, kind)
    else:
        config = json.loads((model_dir / "config.json").read_text())
        config.update({"model_type": "bart", "auto_map": None} if kind == "bart" else {"model_type": "fork"})
        (model_dir / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    assert phrase in _fail(capsys, ["export", str(model_dir), str(out)])
    assert not out.exists(), "nothing may be written for a refused folder"


# ------------------------------------------------------------------------------------------------ push


def _raising_api(error: Exception):
    class RaisingHfApi:
        """Fails like huggingface_hub does when the Hub cannot be used."""

        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            raise error

    return RaisingHfApi


def _http_error(status: int) -> HfHubHTTPError:
    response = HTTP.Response(status, request=HTTP.Request("POST", URL))
    message = f"{status} Client Error: Unauthorized for url: {URL}\nInvalid credentials"
    return HfHubHTTPError(message, response=response)


@pytest.mark.parametrize(
    "error,phrase",
    [
        (OfflineModeIsEnabled(f"Cannot reach {URL}: offline mode is enabled."), "unset HF_HUB_OFFLINE"),
        (HTTP.ConnectError("[Errno -2] Name or service not known"), "check the network"),
        (HTTP.ConnectTimeout("timed out"), "cannot reach the Hugging Face Hub (ConnectTimeout"),
        (_http_error(401), "refused the token (HTTP 401): run `huggingface-cli login`"),
        (_http_error(403), "refused the token (HTTP 403)"),
        (_http_error(500), "the Hub answered HTTP 500: 500 Client Error"),
        (LocalTokenNotFoundError("Token is required"), "no Hugging Face token found: run `huggingface-cli"),
    ],
)
def test_push_network_and_auth_errors_are_one_sentence(exported, monkeypatch, capsys, error, phrase):
    monkeypatch.setattr(hub_push, "HfApi", _raising_api(error))
    with pytest.raises(ValueError) as err:
        push_repo(exported, "me/tiny", token="hf_fake")
    assert phrase in str(err.value) and "\n" not in str(err.value)
    assert err.value.__cause__ is error
    line = _fail(capsys, ["push", str(exported), "--repo-id", "me/tiny", "--token", "hf_fake"])
    assert phrase in line


def test_push_without_a_token_says_how_to_log_in(exported, monkeypatch, capsys):
    class NoHfApi:
        def __init__(self, *args, **kwargs):
            raise AssertionError("no token: nothing may reach the Hub")

    monkeypatch.setattr(hub_push, "HfApi", NoHfApi)
    monkeypatch.setattr(hub_push, "get_token", lambda: None)
    line = _fail(capsys, ["push", str(exported), "--repo-id", "me/tiny"])
    assert "No Hugging Face token to upload me/tiny" in line and "HF_TOKEN" in line and "--token" in line


def test_push_offline_for_real_is_one_line_and_debug_shows_the_traceback(exported, tmp_path):
    """No mock: with HF_HUB_OFFLINE=1 huggingface_hub refuses before any connection."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "hf"))
    command = [sys.executable, "-m", "pyramidion_hf.hub", "push", str(exported), "--repo-id", "me/x"]
    command += ["--token", "hf_fake"]
    plain = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 2, plain.stderr
    assert plain.stderr.splitlines() == [
        "pyramidion-hub: error: Cannot push to me/x: offline mode is on (HF_HUB_OFFLINE=1): unset "
        "HF_HUB_OFFLINE to upload, or use --dry-run."
    ]
    debug = subprocess.run([*command, "--debug"], capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "OfflineModeIsEnabled" in debug.stderr
