"""Publishing a trained model: the model card (card, variant, metrics, benchmarks), the Hub repository export,
the upload (push) and the `pyramidion-hub` CLI (cli)."""

from .card import render_model_card
from .cli import main
from .export import check_repo, export_repo
from .metrics import normalize_metrics
from .push import PushResult, push_repo, repo_files
from .variant import describe_variant

__all__ = [
    "PushResult",
    "check_repo",
    "describe_variant",
    "export_repo",
    "main",
    "normalize_metrics",
    "push_repo",
    "render_model_card",
    "repo_files",
]
