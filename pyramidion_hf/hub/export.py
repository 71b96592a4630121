"""Hub publishing: model cards, complete Hub repository folders, upload, and the `pyramidion-hub` CLI.

`export_repo` turns a `save_pretrained` folder (model + tokenizer) into a self-contained Hub repository:
safetensors weights, config with `auto_map` and `custom_pipelines`, the remote-code `.py` files, tokenizer,
generation config, an Inference Endpoints `handler.py` and a model card (`README.md`). `push_repo` uploads it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.utils import validate_repo_id
from transformers.dynamic_module_utils import get_relative_imports

logger = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
CARD_TEMPLATE = TEMPLATES_DIR / "modelcard_template.md"
HANDLER_TEMPLATE = TEMPLATES_DIR / "handler.py"
WIDGET_EXAMPLE = TEMPLATES_DIR / "widget_example.json"
DEFAULT_BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results"

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
ROUGE_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
METRIC_PREFIXES = ("eval_", "test_", "predict_")
# short name -> (Hub dataset id, pretty name)
KNOWN_DATASETS = {
    "aclsum": ("sobamchan/aclsum", "ACLSum (paper body → abstract)"),
    "arxiv": ("ccdv/arxiv-summarization", "arXiv summarization"),
    "pubmed": ("ccdv/pubmed-summarization", "PubMed summarization"),
}
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
DEFAULT_AUTO_MAP = {
    "AutoConfig": "configuration_pyramidion.PyramidionConfig",
    "AutoModel": "modeling_pyramidion.PyramidionModel",
    "AutoModelForSeq2SeqLM": "modeling_pyramidion.PyramidionForConditionalGeneration",
}
DEFAULT_CUSTOM_PIPELINES = {
    "summarization": {
        "impl": "pipeline_summarization.SummarizationPipeline",
        "pt": ["AutoModelForSeq2SeqLM"],
        "type": "text",
    }
}
REQUIREMENTS = "transformers>=5.23\n"
CITATION = """@inproceedings{pietruszka-etal-2022-sparsifying,
    title = "Sparsifying Transformer Models with Trainable Representation Pooling",
    author = "Pietruszka, Micha{\\l} and Borchmann, {\\L}ukasz and Garncarek, {\\L}ukasz",
    booktitle = "Proceedings of the 60th Annual Meeting of the Association for Computational Linguistics
                 (Volume 1: Long Papers)",
    month = may,
    year = "2022",
    address = "Dublin, Ireland",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2022.acl-long.590",
    doi = "10.18653/v1/2022.acl-long.590",
    pages = "8616--8633",
}"""
TRAINING_LABELS = {
    "dataset": "Dataset",
    "train_examples": "Training documents",
    "eval_examples": "Validation documents",
    "max_source_length": "Max source tokens",
    "max_target_length": "Max target tokens",
    "tokenizer": "Tokenizer",
    "epochs": "Epochs",
    "num_train_epochs": "Epochs",
    "max_steps": "Steps",
    "global_step": "Steps",
    "learning_rate": "Learning rate",
    "lr_scheduler_type": "LR schedule",
    "warmup_steps": "Warm-up steps",
    "per_device_train_batch_size": "Batch size per device",
    "gradient_accumulation_steps": "Gradient accumulation",
    "weight_decay": "Weight decay",
    "label_smoothing_factor": "Label smoothing",
    "seed": "Seed",
    "hardware": "Hardware",
    "train_runtime": "Training time (s)",
    "train_loss": "Final training loss",
    "from_scratch": "Trained from scratch",
    "base_model": "Initialized from",
}
SMALL_DATA_EXAMPLES = 10_000


@dataclass
class PushResult:
    """What `push_repo` uploaded (or, with dry_run, would upload)."""

    repo_id: str
    files: list[str]
    dry_run: bool
    private: bool
    url: str | None = None
    commit_url: str | None = None


# ------------------------------------------------------------------------------------------------ model card


def _config_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a PyramidionConfig, a config dict, or the path to a config.json / model folder."""
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, (str, Path)):
        path = Path(config)
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise ValueError(
                f"No config.json at {path}: pass a PyramidionConfig, a dict or a saved model folder."
            )
        return json.loads(path.read_text(encoding="utf-8"))
    if hasattr(config, "to_dict"):
        return config.to_dict()
    raise ValueError(
        f"Cannot read a model config from {type(config).__name__}: pass a PyramidionConfig or a dict."
    )


def _pooling_layers(cfg: Mapping[str, Any]) -> list[int]:
    """0-based indices of the encoder layers followed by pooling (their length is below the previous one)."""
    lengths = list(cfg.get("encoder_lengths") or [])
    previous = cfg.get("max_position_embeddings") or (lengths[0] if lengths else 0)
    layers = []
    for i, length in enumerate(lengths):
        if length < previous:
            layers.append(i)
        previous = length
    return layers


def describe_variant(config: Any) -> tuple[str, str]:
    """(variant name, one-sentence description) of a Pyramidion config, following the paper's naming."""
    cfg = _config_dict(config)
    lengths = list(cfg.get("encoder_lengths") or [])
    n = cfg.get("max_position_embeddings") or (lengths[0] if lengths else 0)
    block = cfg.get("block_size")
    blockwise = block is not None and block < n
    pooling = _pooling_layers(cfg)
    scorer = cfg.get("scorer", "linear")
    attention = f"blockwise attention in blocks of {block} tokens" if blockwise else "full self-attention"
    if cfg.get("encoder_attention") == "efficient":
        attention = "efficient (linear) attention (Shen et al., 2021)"
    if not pooling:
        name = "Blockwise" if blockwise else "Vanilla"
        if cfg.get("encoder_attention") == "efficient":
            name = "Efficient-attention"
        return name, f"an encoder with {attention} and no pooling; the decoder attends to all {n} positions."
    final_k = lengths[-1]
    if scorer in ("mean", "max"):
        upsample = f", upsampled back to {n} positions for the decoder" if cfg.get("funnel_upsample") else ""
        return "Funnel-like", (
            f"an encoder with {attention} and strided {scorer} pooling (as in Funnel-Transformer) down to "
            f"{final_k} vectors{upsample}."
        )
    if scorer == "power":
        return "PoWER-like", (
            f"an encoder with {attention} that drops the tokens receiving the least attention "
            "(as in PoWER-BERT), "
            f"progressively down to {final_k} vectors."
        )
    deep = (
        len(lengths) >= 6
        and cfg.get("d_model") == 768
        and cfg.get("decoder_layers", 0) >= 6
        and len(pooling) >= 2
    )
    if deep:
        name = "DeepPyramidion"
    elif pooling == [len(lengths) - 1]:
        name = "Transpooler"
    else:
        name = "Pyramidion"
    where = "after the last encoder layer" if pooling == [len(lengths) - 1] else "between encoder layers"
    return name, (
        f"an encoder with {attention} that scores its token representations and keeps the best ones with a "
        f"trainable top-k ({where}), so the decoder cross-attends to {final_k} of {n} positions."
    )


def _fmt_int(value: int) -> str:
    return f"{value:,}"


def _fmt_params(num: int) -> str:
    return f"{num / 1e6:.1f}M ({num:,})" if num >= 1e5 else f"{num:,}"


def _model_details(cfg: Mapping[str, Any], variant: str, num_parameters: int | None) -> list[tuple[str, str]]:
    lengths = list(cfg.get("encoder_lengths") or [])
    n = cfg.get("max_position_embeddings")
    pooling = _pooling_layers(cfg)
    schedule = " → ".join(_fmt_int(x) for x in lengths)
    rows = [
        ("Variant", variant),
        ("Max input tokens", _fmt_int(n) if n else "unknown"),
        (
            "Encoder output lengths (pooling schedule)",
            f"{schedule} (for a {_fmt_int(n)}-token input)" if n else schedule,
        ),
        ("Pooling after encoder layers", ", ".join(str(i + 1) for i in pooling) if pooling else "none"),
        ("Block size", "full attention" if cfg.get("block_size") is None else _fmt_int(cfg["block_size"])),
    ]
    if pooling:
        scorer = cfg.get("scorer", "linear")
        rows.append(("Scorer", f"`{scorer}`"))
        if scorer in ("mean", "max"):
            rows.append(("Selection", f"strided {scorer} pooling (window = stride = ⌈n/k⌉)"))
        else:
            opts = f"τ = {cfg.get('topk_temperature', 1.0)}"
            if cfg.get("topk", "successive_halving") == "successive_halving":
                opts += f", sorted pairing = {cfg.get('topk_sort', True)}"
                opts += f", weighting = {cfg.get('topk_weighting', 'sigmoid')}"
            rows.append(("Top-k operator", f"`{cfg.get('topk', 'successive_halving')}` ({opts})"))
        if cfg.get("funnel_upsample"):
            rows.append(("Decoder attends to", f"{_fmt_int(n)} positions (pooled output upsampled back)"))
        else:
            rows.append(("k (vectors the decoder attends to)", _fmt_int(lengths[-1])))
    rows += [
        ("Encoder / decoder layers", f"{len(lengths)} / {cfg.get('decoder_layers', '?')}"),
        (
            "d_model / heads (enc, dec) / FFN (enc, dec)",
            (
                f"{cfg.get('d_model')} / "
                f"{cfg.get('encoder_attention_heads')}, {cfg.get('decoder_attention_heads')} / "
                f"{cfg.get('encoder_ffn_dim')}, {cfg.get('decoder_ffn_dim')}"
            ),
        ),
        ("Encoder attention", f"`{cfg.get('encoder_attention', 'dot')}`"),
        ("Layer norm", "pre-norm" if cfg.get("normalize_before") else "post-norm"),
        ("Decoder positions", f"`{cfg.get('decoder_position_embeddings', 'sinusoidal')}`"),
        ("Vocabulary", _fmt_int(cfg["vocab_size"]) if cfg.get("vocab_size") else "unknown"),
    ]
    if num_parameters is not None:
        rows.append(("Parameters", _fmt_params(num_parameters)))
    return rows


def _strip_prefix(key: str) -> str:
    for prefix in METRIC_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def normalize_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ROUGE metrics (0-100 scale, `rouge_with_ci` keys, may be prefixed `eval_`/`test_`/`predict_`).

    Returns {"scores": {key: (value, low|None, high|None)}, "baselines": {name: scores}, "split",
    "num_examples",
    "n_bootstrap"}. Baselines come from `metrics["baselines"]` ({name: metrics}) or `metrics["lead"]`.
    """
    if not isinstance(metrics, Mapping):
        raise ValueError(
            "metrics must be a dict such as the output of pyramidion_hf.training.metrics.rouge_with_ci."
        )
    flat = {_strip_prefix(k): v for k, v in metrics.items()}

    def scores_of(source: Mapping[str, Any], who: str) -> dict[str, tuple[float, float | None, float | None]]:
        source = {_strip_prefix(k): v for k, v in source.items()}
        out = {}
        for key in ROUGE_KEYS:
            if key not in source:
                continue
            value, low, high = source[key], source.get(f"{key}_low"), source.get(f"{key}_high")
            for name, number in ((key, value), (f"{key}_low", low), (f"{key}_high", high)):
                if number is not None and (not isinstance(number, (int, float)) or not math.isfinite(number)):
                    raise ValueError(f"{who}: {name} must be a finite number, got {number!r}.")
            if (low is None) != (high is None):
                raise ValueError(f"{who}: give both {key}_low and {key}_high (the 95% interval) or neither.")
            if low is not None and not low <= value <= high:
                raise ValueError(f"{who}: {key}={value} lies outside its interval [{low}, {high}].")
            out[key] = (
                float(value),
                None if low is None else float(low),
                None if high is None else float(high),
            )
        if not out:
            raise ValueError(
                f"{who}: no ROUGE scores found; expected keys {', '.join(ROUGE_KEYS)} (0-100 scale)."
            )
        return out

    baselines_in = dict(flat.get("baselines") or {})
    if "lead" in flat:
        baselines_in.setdefault("Lead", flat["lead"])
    baselines = {}
    for name, values in baselines_in.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"baseline {name!r} must be a dict of ROUGE scores.")
        baselines[str(name)] = scores_of(values, f"baseline {name!r}")
    return {
        "scores": scores_of(flat, "metrics"),
        "baselines": baselines,
        "split": flat.get("split"),
        "num_examples": flat.get("num_examples") or flat.get("samples"),
        "n_bootstrap": flat.get("n_bootstrap"),
    }


def _dataset_info(dataset: str | None) -> tuple[str | None, str | None, bool]:
    """(type id, pretty name, is a Hub dataset id) for a dataset short name, Hub id or local file."""
    if dataset is None:
        return None, None, False
    key = dataset.lower()
    if key in KNOWN_DATASETS:
        hub_id, pretty = KNOWN_DATASETS[key]
        return hub_id, pretty, True
    if re.fullmatch(r"[\w.-]+/[\w.-]+", dataset) and not Path(dataset).exists():
        return dataset, dataset, True
    return Path(dataset).stem or dataset, Path(dataset).name or dataset, False


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; `|` inside cells is escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: float, low: float | None, high: float | None) -> str:
    return f"{value:.2f}" if low is None else f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _benchmark_sections(benchmarks_dir: Path | None) -> list[dict[str, str]]:
    """The heading and first Markdown table of every committed `benchmarks/results/**/*.md` file (a run kept
    in a subfolder, e.g. `paper_8k/`, is named after it)."""
    if benchmarks_dir is None or not Path(benchmarks_dir).is_dir():
        return []
    sections = []
    for path in sorted(Path(benchmarks_dir).rglob("*.md")):
        relative = path.relative_to(benchmarks_dir)
        lines = path.read_text(encoding="utf-8").splitlines()
        title = next((ln.lstrip("#").strip() for ln in lines if ln.startswith("#")), path.stem)
        if len(relative.parts) > 1:
            title = f"{title} [{relative.parent.as_posix()}]"
        table: list[str] = []
        for line in lines:
            if line.lstrip().startswith("|"):
                table.append(line.strip())
            elif table:
                break
        if len(table) >= 3:
            source = f"benchmarks/results/{relative.as_posix()}"
            sections.append({"title": title, "source": source, "table": "\n".join(table)})
    return sections


def _training_rows(training: Mapping[str, Any], dataset_name: str | None) -> list[tuple[str, str]]:
    rows = []
    if dataset_name and "dataset" not in training:
        rows.append(("Dataset", dataset_name))
    for key, value in training.items():
        if value is None or isinstance(value, (dict, list)):
            continue
        label = TRAINING_LABELS.get(key, key.replace("_", " ").capitalize())
        if isinstance(value, bool):
            value = "yes" if value else "no"
        elif isinstance(value, float):
            value = f"{value:.4g}"
        rows.append((label, str(value)))
    return rows


def _limitations(cfg: Mapping[str, Any], training: Mapping[str, Any]) -> list[str]:
    lengths = list(cfg.get("encoder_lengths") or [])
    n = cfg.get("max_position_embeddings")
    pooling = _pooling_layers(cfg)
    items = []
    if pooling and not cfg.get("funnel_upsample"):
        items.append(
            f"Pooling keeps k = {lengths[-1]:,} of the {n:,} input positions (schedule "
            f"{' → '.join(f'{x:,}' for x in lengths)}): content outside the kept vectors never reaches the "
            "decoder, so facts the scorer ranks low are lost from the summary."
        )
        items.append(
            "The selection happens in latent space: the kept vectors are contextualized mixtures (a soft "
            "top-k blends paired representations), so `pooling_indices` names the dominating input token of "
            "each, not an extractive explanation of what the model used."
        )
    items.append(
        f"Inputs longer than {n:,} tokens must be truncated (the tokenizer does so); the paper finds the "
        "benefits of sparsification start at roughly 4k input tokens — below that, feed-forward and "
        "projection layers dominate the cost and pooling mostly adds overhead."
    )
    scratch = training.get("from_scratch", not training.get("base_model"))
    examples = training.get("train_examples")
    if scratch:
        size = f" on {examples:,} documents" if isinstance(examples, int) else ""
        small = isinstance(examples, int) and examples < SMALL_DATA_EXAMPLES
        items.append(
            f"Trained from scratch{size} without pretraining"
            + (
                ": a small dataset, so expect limited fluency and factuality, and domain-specific output."
                if small
                else "; outputs follow the training domain."
            )
        )
    items.append(
        "Summaries can be fluent yet unfaithful to the document (hallucinated numbers, names or claims); "
        "review them before use. Quality outside the training domain is untested."
    )
    items.append(
        "Positions are absolute (sinusoidal, counted from the document start); relative position schemes "
        "are not supported with pooling."
    )
    return items


def _widget(widget_text: str | None) -> list[dict[str, str]]:
    example = json.loads(WIDGET_EXAMPLE.read_text(encoding="utf-8"))
    if widget_text is None:
        return [{"text": example["text"], "example_title": example["example_title"]}]
    if not widget_text.strip():
        raise ValueError(
            "widget_text is empty: pass a long document excerpt, or None for the bundled ACLSum example."
        )
    return [{"text": widget_text, "example_title": "Document"}]


def render_model_card(
    config: Any,
    *,
    metrics: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    widget_text: str | None = None,
    num_parameters: int | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    license: str = "mit",
    language: str = "en",
    benchmarks_dir: str | Path | None = DEFAULT_BENCHMARKS_DIR,
) -> str:
    """Render the model card (YAML metadata + Markdown body) of a Pyramidion model; validated with ModelCard.

    `metrics`: ROUGE on 0-100 scale as from `rouge_with_ci` (keys rouge1, rouge1_low, rouge1_high, ...),
    optionally with "split", "num_examples", "n_bootstrap" and "baselines" ({"Lead-3": {...}}) or "lead".
    `training`: free-form facts (train_examples, epochs, learning_rate, hardware, from_scratch, ...).
    """
    cfg = _config_dict(config)
    if cfg.get("model_type") not in (None, "pyramidion"):
        raise ValueError(
            f"model_type is {cfg.get('model_type')!r}: model cards are rendered for Pyramidion models only."
        )
    if not cfg.get("encoder_lengths") or not cfg.get("max_position_embeddings"):
        raise ValueError(
            "The config lacks encoder_lengths / max_position_embeddings: pass a PyramidionConfig."
        )
    training = dict(training or {})
    dataset = dataset or training.get("dataset")
    dataset_type, dataset_name, on_hub = _dataset_info(dataset)
    variant, variant_description = describe_variant(cfg)
    slug = re.sub(r"(?<!^)(?=[A-Z][a-z])", "-", variant).lower()  # "DeepPyramidion" -> "deep-pyramidion"
    default_name = slug if "pyramidion" in slug else f"pyramidion-{slug}"
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else default_name)

    eval_results = None
    eval_table = ""
    parsed = None
    if metrics is not None:
        parsed = normalize_metrics(metrics)
        if dataset is None:
            raise ValueError(
                "metrics were given without dataset: pass dataset= (e.g. 'aclsum') to say what they measure."
            )
        eval_results = []
        for key, (value, low, high) in parsed["scores"].items():
            args = (
                None
                if low is None
                else {"confidence_level": 0.95, "ci_low": round(low, 2), "ci_high": round(high, 2)}
            )
            eval_results.append(
                EvalResult(
                    task_type="summarization",
                    task_name="Summarization",
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=parsed["split"],
                    metric_type="rouge",
                    metric_config=key,
                    metric_name=ROUGE_NAMES[key],
                    metric_value=round(value, 2),
                    metric_args=args,
                )
            )
        keys = [k for k in ROUGE_KEYS if k in parsed["scores"]]
        rows = [[f"**{model_name}**"] + [_cell(*parsed["scores"][k]) for k in keys]]
        for name, scores in parsed["baselines"].items():
            rows.append([name] + [_cell(*scores[k]) if k in scores else "–" for k in keys])
        eval_table = _md_table(["System"] + [ROUGE_NAMES[k] for k in keys], rows)

    tags = [
        "pyramidion",
        "summarization",
        "long-document",
        slug,
        "representation-pooling",
        "successive-halving-top-k",
        "custom_code",
    ]
    card_data = ModelCardData(
        language=language,
        license=license,
        library_name="transformers",
        pipeline_tag="summarization",
        tags=tags,
        datasets=[dataset_type] if on_hub else None,
        metrics=["rouge"] if eval_results else None,
        model_name=model_name,
        eval_results=eval_results,
        widget=_widget(widget_text),
    )
    n_max = cfg["max_position_embeddings"]
    pooling_note = (
        f"The encoder reads up to {n_max:,} tokens; shorter documents are fine — a pooling layer still "
        "outputs k slots, of which min(k, real length) are real and the rest masked."
    )
    training_rows = _training_rows({k: v for k, v in training.items() if k != "notes"}, dataset_name)
    notes = training.get("notes")
    content = ModelCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        model_name=model_name,
        repo_id=repo_id or f"<your-username>/{model_name}",
        variant=variant,
        variant_description=variant_description,
        details_table=_md_table(["Property", "Value"], _model_details(cfg, variant, num_parameters)),
        pooling_note=pooling_note,
        training_table=_md_table(["Setting", "Value"], training_rows) if training_rows else "",
        training_notes=[notes] if isinstance(notes, str) and notes.strip() else [],
        eval_table=eval_table,
        eval_dataset=dataset_name,
        eval_split=parsed["split"] if parsed else None,
        eval_num_examples=parsed["num_examples"] if parsed else None,
        eval_n_bootstrap=parsed["n_bootstrap"] if parsed else None,
        eval_has_ci=bool(parsed and any(low is not None for _, low, _ in parsed["scores"].values())),
        has_baseline=bool(parsed and parsed["baselines"]),
        speed_sections=_benchmark_sections(Path(benchmarks_dir) if benchmarks_dir else None),
        max_input_tokens=n_max,
        limitations=_limitations(cfg, training),
        citation=CITATION,
    ).content
    card = ModelCard(content)
    card.text = re.sub(r"\n{3,}", "\n\n", card.text)  # template blocks leave runs of blank lines
    content = card.content
    _validate_card(content, expected_results=len(eval_results or []))
    return content


def _validate_card(content: str, expected_results: int) -> ModelCard:
    """Parse a rendered card back with huggingface_hub; raise if metadata or model-index do not round-trip."""
    card = ModelCard(content)
    data = card.data.to_dict()
    for key in ("pipeline_tag", "library_name", "tags", "widget", "license"):
        if key not in data:
            raise ValueError(
                f"The rendered model card lost its {key!r} metadata; the card template is broken."
            )
    if len(card.data.eval_results or []) != expected_results:
        raise ValueError(
            "The rendered model card's model-index does not parse back to its evaluation results."
        )
    return card


# ---------------------------------------------------------------------------------------------------- export


def _missing_inputs(model_dir: Path) -> list[str]:
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


def _ensure_remote_code(out_dir: Path) -> dict[str, Any]:
    """Make config.json carry auto_map + custom_pipelines and every module they name (+ relative imports)."""
    import pyramidion_hf

    package_dir = Path(pyramidion_hf.__file__).parent / "modeling"
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    changed = False
    auto_map = dict(config.get("auto_map") or {})
    for auto_class, ref in DEFAULT_AUTO_MAP.items():
        if auto_class not in auto_map:
            logger.warning("config.json has no auto_map entry for %s; adding %s", auto_class, ref)
            auto_map[auto_class] = ref
            changed = True
    pipelines = dict(config.get("custom_pipelines") or {})
    if "summarization" not in pipelines:
        logger.warning("config.json has no custom_pipelines['summarization']; adding the bundled pipeline")
        pipelines.update(DEFAULT_CUSTOM_PIPELINES)
        changed = True
    if changed:
        config["auto_map"], config["custom_pipelines"] = auto_map, pipelines
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    pending, seen = _module_files(config), set()
    while pending:  # the referenced modules and, transitively, their relative imports
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        target = out_dir / f"{module}.py"
        if not target.is_file():
            source = package_dir / f"{module}.py"
            if not source.is_file():
                raise ValueError(
                    f"The exported code needs {module}.py, which is neither in the model folder nor in "
                    f"pyramidion_hf ({package_dir})."
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
    missing = [
        name
        for name in ("config.json", "model.safetensors", "generation_config.json", "handler.py", "README.md")
        if not (out / name).is_file()
    ]
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
    benchmarks_dir: str | Path | None = DEFAULT_BENCHMARKS_DIR,
) -> Path:
    """Write a complete Hub repository for the model + tokenizer saved in `model_dir` to `out_dir`; return it.

    The folder loads with AutoModelForSeq2SeqLM / AutoTokenizer / pipeline("summarization") with
    trust_remote_code=True where pyramidion_hf is not installed, and serves with its Inference Endpoints
    handler.
    """
    from transformers import AutoTokenizer

    from ..modeling.modeling_pyramidion import PyramidionForConditionalGeneration

    model_dir, out_dir = Path(model_dir), Path(out_dir)
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
    metrics_parsed = normalize_metrics(metrics) if metrics is not None else None  # fail before the slow work
    if metrics_parsed is not None and not (dataset or (training or {}).get("dataset")):
        raise ValueError(
            "metrics were given without dataset: pass dataset= (e.g. 'aclsum') to say what they measure."
        )

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
    tokenizer = AutoTokenizer.from_pretrained(
        model_dir, trust_remote_code=False
    )  # never run the folder's code
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

    if out_dir.exists():
        shutil.rmtree(out_dir)  # only reached with overwrite=True (or an empty folder)
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    _copy_tokenizer(model_dir, out_dir, config.max_position_embeddings)
    if not (out_dir / "generation_config.json").is_file():
        model.generation_config.save_pretrained(out_dir)
    _ensure_remote_code(out_dir)
    shutil.copyfile(HANDLER_TEMPLATE, out_dir / "handler.py")
    (out_dir / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    card = render_model_card(
        config,
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


# ---------------------------------------------------------------------------------------------------- push


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
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_url.repo_id,
        folder_path=str(out),
        repo_type="model",
        commit_message=commit_message,
        allow_patterns=files,
    )
    return PushResult(
        repo_id=repo_url.repo_id,
        files=files,
        dry_run=False,
        private=private,
        url=str(repo_url),
        commit_url=getattr(commit, "commit_url", None),
    )


# ---------------------------------------------------------------------------------------------------- CLI


def _read_json(path: str | None, what: str) -> dict[str, Any] | None:
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyramidion-hub", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
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
    export.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    push = sub.add_parser("push", help="upload an exported folder to the Hub")
    push.add_argument("out_dir")
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    push.add_argument("--token", help="Hub token (default: the logged-in one / HF_TOKEN)")
    push.add_argument("--dry-run", action="store_true", help="list what would be uploaded, without network")
    push.add_argument("--commit-message", default="Upload Pyramidion model")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: `pyramidion-hub export MODEL_DIR OUT_DIR [...]`, `pyramidion-hub push OUT_DIR --repo-id ID`."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            widget_text = args.widget_text
            if args.widget_file:
                widget_file = Path(args.widget_file)
                if not widget_file.is_file():
                    raise ValueError(f"widget file {widget_file} does not exist.")
                widget_text = widget_file.read_text(encoding="utf-8")
            out = export_repo(
                args.model_dir,
                args.out_dir,
                metrics=_read_json(args.metrics, "metrics"),
                training=_read_json(args.training, "training"),
                dataset=args.dataset,
                widget_text=widget_text,
                model_name=args.model_name,
                repo_id=args.repo_id,
                license=args.license,
                overwrite=args.overwrite,
            )
            print(
                f"Exported {out} ({len(repo_files(out))} files). Upload with: "
                f"pyramidion-hub push {out} --repo-id {args.repo_id or 'USER/NAME'}"
            )
        else:
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
    except ValueError as err:
        parser.exit(2, f"pyramidion-hub: error: {err}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
