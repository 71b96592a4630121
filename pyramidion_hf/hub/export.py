"""A complete Hub repository folder from a `save_pretrained` folder (model + tokenizer), and its check.

The folder holds safetensors weights, a config with `auto_map` and `custom_pipelines`, the remote-code `.py`
files (the modeling package's modules they name and, transitively, their relative imports), the tokenizer,
the generation config, an Inference Endpoints `handler.py`, `requirements.txt` and the model card.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers.dynamic_module_utils import get_relative_imports

from .. import modeling
from ..model_folder import TOKENIZER_FILES, check_model_folder, load_model_folder
from ..modeling.configuration_pyramidion import CUSTOM_PIPELINES
from ..modeling.modeling_pyramidion import AUTO_MAP
from .card import TEMPLATES_DIR, render_model_card
from .metrics import normalize_metrics

logger = logging.getLogger(__name__)

HANDLER_TEMPLATE = TEMPLATES_DIR / "handler.py"
MODELING_DIR = Path(modeling.__file__).parent
TOKENIZER_ARTIFACTS = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
)
REQUIRED_FILES = ("config.json", "model.safetensors", "generation_config.json", "handler.py", "README.md")
REQUIREMENTS = "transformers>=5.23\n"
DEFAULT_CUSTOM_PIPELINES = CUSTOM_PIPELINES


def _module_files(config: Mapping[str, Any]) -> list[str]:
    """Module names (without .py) referenced by the config's auto_map and custom_pipelines."""
    refs = []
    for value in (config.get("auto_map") or {}).values():
        refs += [value] if isinstance(value, str) else [v for v in value if v]
    refs += [task["impl"] for task in (config.get("custom_pipelines") or {}).values() if "impl" in task]
    modules = []
    for ref in refs:
        module = ref.split("--")[-1].rsplit(".", 1)[0]
        if module not in modules:
            modules.append(module)
    return modules


def _complete_config(config_path: Path) -> dict[str, Any]:
    """Add the missing auto_map entries and the summarization pipeline to config.json; return the config."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    auto_map = dict(config.get("auto_map") or {})
    pipelines = dict(config.get("custom_pipelines") or {})
    changed = False
    for auto_class, ref in AUTO_MAP.items():
        if auto_class not in auto_map:
            logger.warning("config.json has no auto_map entry for %s; adding %s", auto_class, ref)
            auto_map[auto_class] = ref
            changed = True
    if "summarization" not in pipelines:
        logger.warning("config.json has no custom_pipelines['summarization']; adding the bundled pipeline")
        pipelines.update(DEFAULT_CUSTOM_PIPELINES)
        changed = True
    if changed:
        config["auto_map"], config["custom_pipelines"] = auto_map, pipelines
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return config


def _ensure_remote_code(out_dir: Path) -> dict[str, Any]:
    """Make config.json carry auto_map + custom_pipelines and every module they name (+ relative imports)."""
    config = _complete_config(out_dir / "config.json")
    pending, seen = _module_files(config), set()
    while pending:  # the referenced modules and, transitively, their relative imports
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        target = out_dir / f"{module}.py"
        if not target.is_file():
            source = MODELING_DIR / f"{module}.py"
            if not source.is_file():
                raise ValueError(
                    f"The exported code needs {module}.py, which is neither in the model folder nor in "
                    f"pyramidion_hf ({MODELING_DIR})."
                )
            shutil.copyfile(source, target)
        pending += get_relative_imports(str(target))
    return config


def _copy_tokenizer(model_dir: Path, out_dir: Path, max_length: int) -> None:
    """Copy the tokenizer files verbatim; an unset `model_max_length` becomes the model's input length."""
    for name in TOKENIZER_ARTIFACTS:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out_dir / name)
    config_path = out_dir / "tokenizer_config.json"
    tok_config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    if not isinstance(tok_config.get("model_max_length"), int) or tok_config["model_max_length"] > 10**12:
        tok_config["model_max_length"] = max_length
        config_path.write_text(json.dumps(tok_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check_repo(out_dir: str | Path) -> list[str]:
    """What a Hub repository folder lacks to load with trust_remote_code and serve (empty list = complete)."""
    out = Path(out_dir)
    missing = [name for name in REQUIRED_FILES if not (out / name).is_file()]
    if (out / "model.safetensors.index.json").is_file() and "model.safetensors" in missing:
        missing.remove("model.safetensors")
    if not any((out / name).is_file() for name in TOKENIZER_FILES):
        missing.append("tokenizer.json")
    if (out / "config.json").is_file():
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
        for auto_class in AUTO_MAP:
            if auto_class not in (config.get("auto_map") or {}):
                missing.append(f"config.json auto_map[{auto_class!r}]")
        if "summarization" not in (config.get("custom_pipelines") or {}):
            missing.append("config.json custom_pipelines['summarization']")
        missing += [f"{m}.py" for m in _module_files(config) if not (out / f"{m}.py").is_file()]
    return missing


def _check_folders(model_dir: Path, out_dir: Path, overwrite: bool) -> None:
    """Raise before any work if `model_dir` is not a complete saved Pyramidion of this package's classes or
    `out_dir` is not free."""
    if check_model_folder(model_dir):
        raise ValueError(
            f"{model_dir}/config.json names its own model code (auto_map): export_repo exports folders saved "
            "with pyramidion_hf's classes; load it with trust_remote_code=True and save_pretrained it anew."
        )
    if out_dir.resolve() == model_dir.resolve() or model_dir.resolve().is_relative_to(out_dir.resolve()):
        raise ValueError("out_dir must be a new folder, not the model folder or one containing it.")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"{out_dir} exists and is not empty: choose a new folder or pass overwrite=True.")


def export_repo(
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    metrics: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    widget_text: str | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    license: str = "mit",
    overwrite: bool = False,
    benchmarks_dir: str | Path | None = None,
) -> Path:
    """Write a complete Hub repository for the model + tokenizer saved in `model_dir` to `out_dir`; return it.

    The folder loads with AutoModelForSeq2SeqLM / AutoTokenizer / pipeline("summarization") with
    trust_remote_code=True where pyramidion_hf is not installed, and serves with its Inference Endpoints
    handler. `benchmarks_dir` (a benchmark results folder) fills the card's speed section; None = none.
    """
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    _check_folders(model_dir, out_dir, overwrite)
    if metrics is not None:
        normalize_metrics(metrics)  # fail before the slow work
        if not (dataset or (training or {}).get("dataset")):
            raise ValueError(
                "metrics were given without dataset: pass dataset= (e.g. 'aclsum') to say what they measure."
            )
    model, _ = load_model_folder(model_dir, dtype=None)  # as saved; refuses missing or non-finite tensors
    if out_dir.exists():
        shutil.rmtree(out_dir)  # only reached with overwrite=True (or an empty folder)
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    _copy_tokenizer(model_dir, out_dir, model.config.max_position_embeddings)
    if not (out_dir / "generation_config.json").is_file():
        model.generation_config.save_pretrained(out_dir)
    _ensure_remote_code(out_dir)
    shutil.copyfile(HANDLER_TEMPLATE, out_dir / "handler.py")
    (out_dir / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    card = render_model_card(
        model.config,
        metrics=metrics,
        training=training,
        dataset=dataset,
        widget_text=widget_text,
        num_parameters=model.num_parameters(),
        model_name=model_name,
        repo_id=repo_id,
        license=license,
        benchmarks_dir=benchmarks_dir,
    )
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    incomplete = check_repo(out_dir)
    if incomplete:
        raise ValueError(f"Export to {out_dir} is incomplete: {', '.join(incomplete)}.")
    return out_dir
