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

from transformers import AutoTokenizer
from transformers.dynamic_module_utils import get_relative_imports

from .. import modeling
from ..modeling.configuration_pyramidion import CUSTOM_PIPELINES, PyramidionConfig
from ..modeling.modeling_pyramidion import PyramidionForConditionalGeneration, PyramidionModel
from .card import TEMPLATES_DIR, render_model_card
from .metrics import normalize_metrics

logger = logging.getLogger(__name__)

HANDLER_TEMPLATE = TEMPLATES_DIR / "handler.py"
MODELING_DIR = Path(modeling.__file__).parent
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
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


def _class_ref(cls: type) -> str:
    """`module_basename.ClassName`: how auto_map names a class of the remote code."""
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


DEFAULT_AUTO_MAP = {
    "AutoConfig": _class_ref(PyramidionConfig),
    "AutoModel": _class_ref(PyramidionModel),
    "AutoModelForSeq2SeqLM": _class_ref(PyramidionForConditionalGeneration),
}
DEFAULT_CUSTOM_PIPELINES = CUSTOM_PIPELINES


def _missing_inputs(model_dir: Path) -> list[str]:
    """What a model folder lacks for export (config, weights, tokenizer), saying what writes each."""
    missing = []
    if not (model_dir / "config.json").is_file():
        missing.append("config.json (model.save_pretrained(model_dir) writes it)")
    if not any((model_dir / name).is_file() for name in WEIGHT_FILES):
        missing.append(
            "model weights (model.safetensors or pytorch_model.bin; model.save_pretrained writes them)"
        )
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        missing.append(
            "tokenizer files (tokenizer.json / tokenizer_config.json; tokenizer.save_pretrained writes them)"
        )
    return missing


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
    for auto_class, ref in DEFAULT_AUTO_MAP.items():
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
        for auto_class in DEFAULT_AUTO_MAP:
            if auto_class not in (config.get("auto_map") or {}):
                missing.append(f"config.json auto_map[{auto_class!r}]")
        if "summarization" not in (config.get("custom_pipelines") or {}):
            missing.append("config.json custom_pipelines['summarization']")
        missing += [f"{m}.py" for m in _module_files(config) if not (out / f"{m}.py").is_file()]
    return missing


def _check_folders(model_dir: Path, out_dir: Path, overwrite: bool) -> None:
    """Raise before any work if `model_dir` is not a complete saved Pyramidion or `out_dir` is not free."""
    if not model_dir.is_dir():
        raise ValueError(
            f"Model folder {model_dir} does not exist: pass the folder written by save_pretrained."
        )
    missing = _missing_inputs(model_dir)
    if missing:
        raise ValueError(f"{model_dir} is not a complete saved model; missing: " + "; ".join(missing) + ".")
    model_type = json.loads((model_dir / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type != "pyramidion":
        raise ValueError(
            f"{model_dir}/config.json has model_type {model_type!r}; export_repo exports Pyramidion models."
        )
    if out_dir.resolve() == model_dir.resolve() or model_dir.resolve().is_relative_to(out_dir.resolve()):
        raise ValueError("out_dir must be a new folder, not the model folder or one containing it.")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"{out_dir} exists and is not empty: choose a new folder or pass overwrite=True.")


def _load_checked(model_dir: Path) -> tuple[PyramidionForConditionalGeneration, Any]:
    """The saved model and tokenizer (never running the folder's code), checked to belong together."""
    model, loading_info = PyramidionForConditionalGeneration.from_pretrained(
        model_dir, output_loading_info=True
    )
    problems = {
        k: v
        for k, v in loading_info.items()
        if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v
    }
    if problems:
        raise ValueError(f"The weights in {model_dir} do not match the config: {problems}.")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    config = model.config
    if len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}: "
            "they were not trained together."
        )
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        tok_id, cfg_id = getattr(tokenizer, name, None), getattr(config, name, None)
        if tok_id is not None and cfg_id is not None and tok_id != cfg_id:
            raise ValueError(
                f"tokenizer.{name} = {tok_id} but config.{name} = {cfg_id}: save the config with the "
                "tokenizer's special-token ids."
            )
    return model, tokenizer


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
    model, _ = _load_checked(model_dir)
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
