"""The ROUGE scores a model card reports: validated (0-100, finite, inside their interval) and as model-index.

The keys are those `pyramidion_hf.training.metrics.rouge_with_ci` writes, optionally prefixed by the Trainer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from huggingface_hub import EvalResult

from ..training.metrics import ROUGE_KEYS

ROUGE_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "rougeLsum": "ROUGE-Lsum"}
METRIC_PREFIXES = ("eval_", "test_", "predict_")

Scores = dict[str, tuple[float, float | None, float | None]]


def _strip_prefix(key: str) -> str:
    for prefix in METRIC_PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _check_number(who: str, name: str, number: Any) -> None:
    if number is not None and (not isinstance(number, (int, float)) or not math.isfinite(number)):
        raise ValueError(f"{who}: {name} must be a finite number, got {number!r}.")


def _scores_of(source: Mapping[str, Any], who: str) -> Scores:
    """{key: (value, low | None, high | None)} of the ROUGE keys in `source`; raise if none or invalid."""
    source = {_strip_prefix(k): v for k, v in source.items()}
    out: Scores = {}
    for key in ROUGE_KEYS:
        if key not in source:
            continue
        value, low, high = source[key], source.get(f"{key}_low"), source.get(f"{key}_high")
        for name, number in ((key, value), (f"{key}_low", low), (f"{key}_high", high)):
            _check_number(who, name, number)
        if (low is None) != (high is None):
            raise ValueError(f"{who}: give both {key}_low and {key}_high (the 95% interval) or neither.")
        if low is not None and not low <= value <= high:
            raise ValueError(f"{who}: {key}={value} lies outside its interval [{low}, {high}].")
        out[key] = (float(value), None if low is None else float(low), None if high is None else float(high))
    if not out:
        raise ValueError(
            f"{who}: no ROUGE scores found; expected keys {', '.join(ROUGE_KEYS)} (0-100 scale)."
        )
    return out


def normalize_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ROUGE metrics (0-100 scale, `rouge_with_ci` keys, may be prefixed `eval_`/`test_`/`predict_`).

    Returns {"scores": {key: (value, low|None, high|None)}, "baselines": {name: scores}, "split",
    "num_examples", "n_bootstrap"}. Baselines come from `metrics["baselines"]` ({name: metrics}) or
    `metrics["lead"]`.
    """
    if not isinstance(metrics, Mapping):
        raise ValueError(
            "metrics must be a dict such as the output of pyramidion_hf.training.metrics.rouge_with_ci."
        )
    flat = {_strip_prefix(k): v for k, v in metrics.items()}
    baselines_in = dict(flat.get("baselines") or {})
    if "lead" in flat:
        baselines_in.setdefault("Lead", flat["lead"])
    baselines = {}
    for name, values in baselines_in.items():
        if not isinstance(values, Mapping):
            raise ValueError(f"baseline {name!r} must be a dict of ROUGE scores.")
        baselines[str(name)] = _scores_of(values, f"baseline {name!r}")
    return {
        "scores": _scores_of(flat, "metrics"),
        "baselines": baselines,
        "split": flat.get("split"),
        "num_examples": flat.get("num_examples") or flat.get("samples"),
        "n_bootstrap": flat.get("n_bootstrap"),
    }


def eval_results(
    parsed: Mapping[str, Any], dataset_type: str | None, dataset_name: str | None
) -> list[EvalResult]:
    """The model-index entries (one per ROUGE key, with its 95% interval) of `normalize_metrics` output."""
    results = []
    for key, (value, low, high) in parsed["scores"].items():
        args = (
            None
            if low is None
            else {"confidence_level": 0.95, "ci_low": round(low, 2), "ci_high": round(high, 2)}
        )
        results.append(
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
    return results
