"""The `pyramidion-hub` command line: `export` a saved model as a Hub repository folder, `push` it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cli_errors import add_debug_argument, cli_main
from .export import export_repo
from .push import push_repo, repo_files


def _read_json(path: str | None, what: str) -> dict[str, Any] | None:
    """The JSON object in file `path` (None when no path was given); ValueError naming `what` otherwise."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ValueError(f"{what} file {path} does not exist.") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} file {path} is not valid JSON: {err}.") from err
    if not isinstance(data, dict):
        raise ValueError(f"{what} file {path} must hold a JSON object.")
    return data


def _read_widget(args: argparse.Namespace) -> str | None:
    """The widget document: --widget-text, or the contents of --widget-file."""
    if not args.widget_file:
        return args.widget_text
    widget_file = Path(args.widget_file)
    if not widget_file.is_file():
        raise ValueError(f"widget file {widget_file} does not exist.")
    return widget_file.read_text(encoding="utf-8")


def _add_export_parser(sub: Any) -> None:
    export = sub.add_parser("export", help="write a complete Hub repository folder from a saved model")
    export.add_argument(
        "model_dir", help="folder written by model.save_pretrained + tokenizer.save_pretrained"
    )
    export.add_argument("out_dir", help="new folder for the Hub repository")
    export.add_argument(
        "--metrics", help="JSON file of ROUGE scores (rouge_with_ci output, optional baselines)"
    )
    export.add_argument(
        "--training", help="JSON file of training facts (train_examples, epochs, hardware, ...)"
    )
    export.add_argument(
        "--dataset", help="dataset the model was trained/evaluated on: aclsum, a Hub id or a file"
    )
    widget = export.add_mutually_exclusive_group()
    widget.add_argument("--widget-text", help="example document for the Hub widget")
    widget.add_argument("--widget-file", help="text file holding the example document for the Hub widget")
    export.add_argument("--model-name", help="name shown in the card and the model-index")
    export.add_argument("--repo-id", help="Hub repo id used in the card's usage examples")
    export.add_argument("--license", default="mit")
    export.add_argument(
        "--benchmarks-dir",
        help="benchmark results folder (e.g. benchmarks/results) for the card's speed tables",
    )
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyramidion-hub", description=__doc__.splitlines()[0])
    add_debug_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_export_parser(sub)
    push = sub.add_parser("push", help="upload an exported folder to the Hub")
    push.add_argument("out_dir")
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    push.add_argument("--token", help="Hub token (default: the logged-in one / HF_TOKEN)")
    push.add_argument("--dry-run", action="store_true", help="list what would be uploaded, without network")
    push.add_argument("--commit-message", default="Upload Pyramidion model")
    return parser


def _export(args: argparse.Namespace) -> None:
    out = export_repo(
        args.model_dir,
        args.out_dir,
        metrics=_read_json(args.metrics, "metrics"),
        training=_read_json(args.training, "training"),
        dataset=args.dataset,
        widget_text=_read_widget(args),
        model_name=args.model_name,
        repo_id=args.repo_id,
        license=args.license,
        overwrite=args.overwrite,
        benchmarks_dir=args.benchmarks_dir,
    )
    print(
        f"Exported {out} ({len(repo_files(out))} files). Upload with: "
        f"pyramidion-hub push {out} --repo-id {args.repo_id or 'USER/NAME'}"
    )


def _push(args: argparse.Namespace) -> None:
    result = push_repo(
        args.out_dir,
        args.repo_id,
        private=args.private,
        token=args.token,
        dry_run=args.dry_run,
        commit_message=args.commit_message,
    )
    verb = "Would upload" if result.dry_run else "Uploaded"
    print(f"{verb} {len(result.files)} files to {result.url or result.repo_id}:")
    for name in result.files:
        print(f"  {name}")


@cli_main("pyramidion-hub")
def main(argv: Sequence[str] | None = None) -> None:
    """CLI: `pyramidion-hub export MODEL_DIR OUT_DIR [...]`, `pyramidion-hub push OUT_DIR --repo-id ID`;
    errors are one line on stderr (status 2), `--debug` shows the traceback."""
    args = _parser().parse_args(argv)
    if args.command == "export":
        _export(args)
    else:
        _push(args)
