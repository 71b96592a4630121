"""The model card of a Pyramidion checkpoint: `templates/modelcard_template.md` filled from its config,
metrics, training facts and (optionally) a benchmark results folder, validated by parsing it back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..modeling.configuration_pyramidion import PyramidionConfig
from ..modeling.pooling import STRIDED_SCORERS
from ..modeling.topk import TOPK_OPTIONS
from ..presets import describe_preset
from ..training.metrics import ROUGE_KEYS
from .benchmarks import benchmark_sections
from .metrics import ROUGE_NAMES, eval_results, normalize_metrics
from .variant import as_config, describe_variant, variant_slug

TEMPLATES_DIR = Path(__file__).parent / "templates"
CARD_TEMPLATE = TEMPLATES_DIR / "modelcard_template.md"
CITATION = TEMPLATES_DIR / "citation.bib"
WIDGET_EXAMPLE = TEMPLATES_DIR / "widget_example.json"

# short name -> (Hub dataset id, pretty name)
KNOWN_DATASETS = {
    "aclsum": ("sobamchan/aclsum", "ACLSum (paper body → abstract)"),
    "arxiv": ("ccdv/arxiv-summarization", "arXiv summarization"),
    "pubmed": ("ccdv/pubmed-summarization", "PubMed summarization"),
}
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
    "precision": "Precision",
    "hardware": "Hardware",
    "train_runtime": "Training time (s)",
    "train_loss": "Final training loss",
    "from_scratch": "Trained from scratch",
    "base_model": "Initialized from",
}
# How the card names each top-k option (the config field is `topk_<option>`).
TOPK_OPTION_LABELS = {"temperature": "τ", "sort": "sorted pairing", "weighting": "weighting"}
SMALL_DATA_EXAMPLES = 10_000


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


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; `|` inside cells is escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: float, low: float | None, high: float | None) -> str:
    return f"{value:.2f}" if low is None else f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _fmt_params(num: int) -> str:
    return f"{num / 1e6:.1f}M ({num:,})" if num >= 1e5 else f"{num:,}"


def _schedule(config: PyramidionConfig) -> str:
    return " → ".join(f"{x:,}" for x in config.encoder_lengths)


def _preset_text(preset: str) -> str:
    """The recorded preset, with its description where this version still knows the name."""
    try:
        return f"`{preset}`: {describe_preset(preset)}"
    except ValueError:
        return f"`{preset}`"


def _selection_rows(config: PyramidionConfig) -> list[tuple[str, str]]:
    """Scorer, how it selects (strided pooling, or the top-k operator with only the options it takes), k."""
    rows = [("Scorer", f"`{config.scorer}`")]
    if config.scorer in STRIDED_SCORERS:
        rows.append(("Selection", f"strided {config.scorer} pooling (window = stride = ⌈n/k⌉)"))
    else:
        options = [
            f"{TOPK_OPTION_LABELS[option]} = {getattr(config, f'topk_{option}')}"
            for option in TOPK_OPTIONS[config.topk]
        ]
        rows.append(("Top-k operator", f"`{config.topk}`" + (f" ({', '.join(options)})" if options else "")))
    if config.funnel_upsample:
        rows.append(
            (
                "Decoder attends to",
                f"{config.max_position_embeddings:,} positions (pooled output upsampled back)",
            )
        )
    else:
        rows.append(("k (vectors the decoder attends to)", f"{config.encoder_lengths[-1]:,}"))
    return rows


def _model_details(
    config: PyramidionConfig, variant: str, num_parameters: int | None
) -> list[tuple[str, str]]:
    """The "Model details" rows: variant, preset, pooling schedule and selection, sizes."""
    n, pooling, preset = (
        config.max_position_embeddings,
        config.pooling_layers,
        getattr(config, "preset", None),
    )
    rows = [("Variant", variant)]
    if preset:
        rows.append(("Preset", _preset_text(preset)))
    rows += [
        ("Max input tokens", f"{n:,}"),
        ("Encoder output lengths (pooling schedule)", f"{_schedule(config)} (for a {n:,}-token input)"),
        ("Pooling after encoder layers", ", ".join(str(i + 1) for i in pooling) if pooling else "none"),
        ("Block size", "full attention" if config.block_size is None else f"{config.block_size:,}"),
    ]
    if pooling:
        rows += _selection_rows(config)
    rows += [
        ("Encoder / decoder layers", f"{config.encoder_layers} / {config.decoder_layers}"),
        (
            "d_model / heads (enc, dec) / FFN (enc, dec)",
            f"{config.d_model} / {config.encoder_attention_heads}, {config.decoder_attention_heads} / "
            f"{config.encoder_ffn_dim}, {config.decoder_ffn_dim}",
        ),
        ("Encoder attention", f"`{config.encoder_attention}`"),
        ("Layer norm", "pre-norm" if config.normalize_before else "post-norm"),
        ("Decoder positions", f"`{config.decoder_position_embeddings}`"),
        ("Vocabulary", f"{config.vocab_size:,}"),
    ]
    if num_parameters is not None:
        rows.append(("Parameters", _fmt_params(num_parameters)))
    return rows


def _training_rows(training: Mapping[str, Any], dataset_name: str | None) -> list[tuple[str, str]]:
    """The "Training" rows: every flat fact of `training`, labelled, plus the dataset when not among them."""
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


def _limits(config: PyramidionConfig, training: Mapping[str, Any]) -> dict[str, Any]:
    """The facts the template's Limitations section depends on."""
    examples = training.get("train_examples")
    return {
        "pools_without_upsampling": bool(config.pooling_layers) and not config.funnel_upsample,
        "k": f"{config.encoder_lengths[-1]:,}",
        "schedule": _schedule(config),
        "from_scratch": training.get("from_scratch", not training.get("base_model")),
        "train_examples": f"{examples:,}" if isinstance(examples, int) else None,
        "small_data": isinstance(examples, int) and examples < SMALL_DATA_EXAMPLES,
    }


def _widget(widget_text: str | None) -> list[dict[str, str]]:
    """The Hub widget example: `widget_text`, or the bundled ACLSum document when None."""
    example = json.loads(WIDGET_EXAMPLE.read_text(encoding="utf-8"))
    if widget_text is None:
        return [{"text": example["text"], "example_title": example["example_title"]}]
    if not widget_text.strip():
        raise ValueError(
            "widget_text is empty: pass a long document excerpt, or None for the bundled ACLSum example."
        )
    return [{"text": widget_text, "example_title": "Document"}]


def _evaluation(parsed: Mapping[str, Any] | None, model_name: str) -> dict[str, Any]:
    """The template's evaluation fields: the ROUGE table (model, then baselines) and what it measured."""
    if parsed is None:
        return {"eval_table": "", "eval_split": None, "eval_num_examples": None, "eval_n_bootstrap": None}
    keys = [k for k in ROUGE_KEYS if k in parsed["scores"]]
    rows = [[f"**{model_name}**"] + [_cell(*parsed["scores"][k]) for k in keys]]
    for name, scores in parsed["baselines"].items():
        rows.append([name] + [_cell(*scores[k]) if k in scores else "–" for k in keys])
    return {
        "eval_table": md_table(["System"] + [ROUGE_NAMES[k] for k in keys], rows),
        "eval_split": parsed["split"],
        "eval_num_examples": parsed["num_examples"],
        "eval_n_bootstrap": parsed["n_bootstrap"],
        "eval_has_ci": any(low is not None for _, low, _ in parsed["scores"].values()),
        "has_baseline": bool(parsed["baselines"]),
    }


def _conversion(config: PyramidionConfig) -> dict[str, Any] | None:
    """What `pyramidion-convert` recorded in `config.converted_from` (None for a model trained from scratch):
    the source, its Hub id when it is one (the card's `base_model`), and what the conversion changed."""
    source = getattr(config, "converted_from", None)
    if not isinstance(source, Mapping) or not source.get("model"):
        return None
    name = str(source["model"])
    is_hub_id = "/" in name and not Path(name).exists() and not name.startswith((".", "/", "~"))
    try:
        validate_repo_id(name)
    except HFValidationError:
        is_hub_id = False
    return {
        "model": name,
        "hub_id": name if is_hub_id else None,
        "architecture": source.get("architecture", "?"),
        "source_positions": source.get("max_position_embeddings"),
        "positions": config.max_position_embeddings,
        "schedule": _schedule(config),
        "pooled": bool(config.pooling_layers),
        "led": source.get("model_type") == "led",
    }


def _card_data(
    slug: str,
    model_name: str,
    results: list,
    dataset: tuple,
    widget_text: str | None,
    license: str,
    language: str,
) -> ModelCardData:
    """The YAML metadata: pipeline, tags, datasets, model-index and widget."""
    dataset_type, _, on_hub = dataset
    tags = [
        "pyramidion",
        "summarization",
        "long-document",
        slug,
        "representation-pooling",
        "successive-halving-top-k",
        "custom_code",
    ]
    return ModelCardData(
        language=language,
        license=license,
        library_name="transformers",
        pipeline_tag="summarization",
        tags=tags,
        datasets=[dataset_type] if on_hub else None,
        metrics=["rouge"] if results else None,
        model_name=model_name,
        eval_results=results or None,
        widget=_widget(widget_text),
    )


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
    benchmarks_dir: str | Path | None = None,
) -> str:
    """Render the model card (YAML metadata + Markdown body) of a Pyramidion model; validated with ModelCard.

    `metrics`: ROUGE on 0-100 scale as from `rouge_with_ci` (keys rouge1, rouge1_low, rouge1_high, ...),
    optionally with "split", "num_examples", "n_bootstrap" and "baselines" ({"Lead-3": {...}}) or "lead".
    `training`: free-form facts (train_examples, epochs, learning_rate, hardware, from_scratch, ...).
    `benchmarks_dir`: a folder of benchmark results (`*.md`) whose tables fill the speed section; None = none.
    """
    config = as_config(config)
    training = dict(training or {})
    dataset = dataset or training.get("dataset")
    dataset_info = _dataset_info(dataset)
    variant, variant_description = describe_variant(config)
    slug = variant_slug(variant)
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else None)
    model_name = model_name or (slug if "pyramidion" in slug else f"pyramidion-{slug}")
    parsed = normalize_metrics(metrics) if metrics is not None else None
    if parsed is not None and dataset is None:
        raise ValueError(
            "metrics were given without dataset: pass dataset= (e.g. 'aclsum') to say what they measure."
        )
    results = eval_results(parsed, *dataset_info[:2]) if parsed else []
    conversion = _conversion(config)
    card_data = _card_data(slug, model_name, results, dataset_info, widget_text, license, language)
    card_data.base_model = conversion["hub_id"] if conversion else None
    training_rows = _training_rows({k: v for k, v in training.items() if k != "notes"}, dataset_info[1])
    notes = training.get("notes")
    content = ModelCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE),
        model_name=model_name,
        repo_id=repo_id or f"<your-username>/{model_name}",
        variant=variant,
        variant_description=variant_description,
        conversion=conversion,
        details_table=md_table(["Property", "Value"], _model_details(config, variant, num_parameters)),
        training_table=md_table(["Setting", "Value"], training_rows) if training_rows else "",
        training_notes=[notes] if isinstance(notes, str) and notes.strip() else [],
        eval_dataset=dataset_info[1],
        speed_sections=benchmark_sections(benchmarks_dir),
        max_input_tokens=config.max_position_embeddings,
        max_input_tokens_text=f"{config.max_position_embeddings:,}",
        limits=_limits(config, training),
        citation=CITATION.read_text(encoding="utf-8").strip(),
        **_evaluation(parsed, model_name),
    ).content
    card = ModelCard(content)
    card.text = re.sub(r"\n{3,}", "\n\n", card.text)  # template blocks leave runs of blank lines
    _validate_card(card.content, expected_results=len(results))
    return card.content


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
