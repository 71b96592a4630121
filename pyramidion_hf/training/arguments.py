"""The training script's arguments: which model and tokenizer, which data, and the command-line parsing.

`ModelArguments` and `DataArguments` sit beside transformers' `Seq2SeqTrainingArguments` in one
`HfArgumentParser`; `--config_overrides "d_model=256,encoder_lengths=[2048,512]"` edits a preset.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser, Seq2SeqTrainingArguments

from pyramidion_hf.presets import list_presets


@dataclass
class ModelArguments:
    """Which model (a preset to build from scratch, or a saved folder) and which tokenizer."""

    preset: str | None = field(
        default=None, metadata={"help": f"Build a fresh model from a named preset, one of {list_presets()}."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": 'Preset overrides, e.g. "d_model=256,decoder_layers=2,encoder_lengths=[2048,512]".'
        },
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved model folder (or Hub id) to fine-tune / evaluate."}
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "Tokenizer folder (required with --preset; defaults to --model_name_or_path)."},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow remote code when loading a model folder that is not ours."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "eager | sdpa (default: auto)."})


@dataclass
class DataArguments:
    """What to train and evaluate on, how long inputs and targets may be, and how to generate."""

    dataset: str = field(
        default="aclsum",
        metadata={"help": "aclsum, a Hub dataset name, or a local .json/.jsonl/.csv/.parquet."},
    )
    train_file: str | None = field(default=None, metadata={"help": "Local train file (overrides --dataset)."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file."})
    article_column: str = field(default="article", metadata={"help": "Column holding the documents."})
    summary_column: str = field(
        default="abstract", metadata={"help": "Column holding the reference summaries."}
    )
    train_split: str = field(default="train", metadata={"help": "Split used by --do_train."})
    validation_split: str = field(default="validation", metadata={"help": "Split used by --do_eval."})
    test_split: str = field(
        default="test", metadata={"help": "Split used by --do_predict and --lead_baseline."}
    )
    max_source_length: int | None = field(
        default=None, metadata={"help": "Input tokens kept per document (default: max_position_embeddings)."}
    )
    max_target_length: int = field(default=256, metadata={"help": "Summary tokens kept for training labels."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N train examples."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N eval examples."}
    )
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N test examples."}
    )
    no_repeat_ngram_size: int | None = field(
        default=3, metadata={"help": "Generation: forbid repeating n-grams of this size (0 or None = off)."}
    )
    repetition_penalty: float | None = field(
        default=None, metadata={"help": "Generation: penalty > 1 on tokens already generated (None = off)."}
    )
    lead_baseline: bool = field(
        default=False, metadata={"help": "Score the Lead baseline with the same metric on the test split."}
    )
    lead_sentences: int | None = field(
        default=None,
        metadata={"help": "Sentences in the Lead summary (default: the metric module's default)."},
    )
    n_bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for 95 percent CIs."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train from scratch even if output_dir holds checkpoints (default: resume from them)."
        },
    )


def parse_config_overrides(text: str | None) -> dict[str, Any]:
    """Parse "a=1,b=[2,3],c=linear,d=None" into {"a": 1, "b": [2, 3], "c": "linear", "d": None}."""
    if not text:
        return {}
    items, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    overrides: dict[str, Any] = {}
    for item in (i.strip() for i in items if i.strip()):
        if "=" not in item:
            raise ValueError(f"--config_overrides entry {item!r} is not key=value (e.g. 'd_model=256').")
        key, raw = (part.strip() for part in item.split("=", 1))
        try:
            overrides[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            overrides[key] = {"true": True, "false": False, "none": None}.get(raw.lower(), raw)
    return overrides


def parse_args(
    argv: Sequence[str] | None = None,
) -> tuple[ModelArguments, DataArguments, Seq2SeqTrainingArguments]:
    """Parse the command line (or a single .json file of arguments) into the three dataclasses."""
    parser = HfArgumentParser((ModelArguments, DataArguments, Seq2SeqTrainingArguments))
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)
