"""Uploading an exported Hub repository folder (or, with dry_run, listing what would be uploaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from .export import check_repo

LOGIN_HINT = "run `huggingface-cli login` (or `hf auth login`), set HF_TOKEN, or pass --token"


@dataclass
class PushResult:
    """What `push_repo` uploaded (or, with dry_run, would upload)."""

    repo_id: str
    files: list[str]
    dry_run: bool
    private: bool
    url: str | None = None
    commit_url: str | None = None


def repo_files(out_dir: str | Path) -> list[str]:
    """Relative paths of the files `push_repo` uploads (hidden files, __pycache__ and *.pyc are skipped)."""
    out = Path(out_dir)
    files = []
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out)
        if (
            path.is_file()
            and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts)
            and path.suffix != ".pyc"
        ):
            files.append(rel.as_posix())
    return files


def push_repo(
    out_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    dry_run: bool = False,
    commit_message: str = "Upload Pyramidion model",
) -> PushResult:
    """Create `repo_id` on the Hub (if needed) and upload the folder written by `export_repo`.

    With dry_run=True nothing touches the network: the result lists the repo id and the files to upload.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise ValueError(f"{out} does not exist: run `pyramidion-hub export MODEL_DIR {out}` first.")
    validate_repo_id(repo_id)
    incomplete = check_repo(out)
    if incomplete:
        raise ValueError(
            f"{out} is not a complete exported repository (missing: {', '.join(incomplete)}); "
            "create it with export_repo."
        )
    files = repo_files(out)
    if dry_run:
        return PushResult(repo_id=repo_id, files=files, dry_run=True, private=private)
    if token is None and get_token() is None:
        raise ValueError(f"No Hugging Face token to upload {repo_id} with: {LOGIN_HINT}.")
    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_url.repo_id,
            folder_path=str(out),
            repo_type="model",
            commit_message=commit_message,
            allow_patterns=files,
        )
    except (OfflineModeIsEnabled, LocalTokenNotFoundError, HTTPError) as err:
        raise ValueError(f"Cannot push to {repo_id}: {hub_error_reason(err)}") from err
    return PushResult(
        repo_id=repo_url.repo_id,
        files=files,
        dry_run=False,
        private=private,
        url=str(repo_url),
        commit_url=getattr(commit, "commit_url", None),
    )


def hub_error_reason(error: Exception) -> str:
    """What went wrong talking to the Hub and what to do, in one sentence (offline, token, network)."""
    if isinstance(error, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE=1): unset HF_HUB_OFFLINE to upload, or use --dry-run."
    if isinstance(error, LocalTokenNotFoundError):
        return f"no Hugging Face token found: {LOGIN_HINT}."
    if isinstance(error, HfHubHTTPError):
        status = getattr(error.response, "status_code", None)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if status in (401, 403):
            return (
                f"the Hub refused the token (HTTP {status}): {LOGIN_HINT} with a token that may write to "
                "this namespace."
            )
        return f"the Hub answered HTTP {status}: {first}"
    return (
        f"cannot reach the Hugging Face Hub ({type(error).__name__}: {error}): check the network or proxy "
        "settings and retry."
    )
