"""The training script's arguments: which model and tokenizer, which data, and the command-line parsing.

`ModelArguments` and `DataArguments` sit beside transformers' `Seq2SeqTrainingArguments` in one
`HfArgumentParser`; `--config_overrides "d_model=256,encoder_lengths=[2048,512]"` edits a preset. The names of
transformers' `examples/pytorch/summarization/run_summarization.py` are accepted too (`--dataset_name`,
`--text_column`, `--num_beams`, `--val_max_target_length`, ...), so its command lines run unchanged; the few
that do not apply to Pyramidion (`--pad_to_max_length`, `--resize_position_embeddings`, `--forced_bos_token`)
are ignored with a logged note or refused, as their help says.
"""

from __future__ import annotations

import ast
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import HfArgumentParser, Seq2SeqTrainingArguments

from pyramidion_hf.presets import list_presets

logger = logging.getLogger(__name__)


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
    config_name: str | None = field(
        default=None,
        metadata={
            "help": "Upstream name: a preset name here is the same as --preset (a fresh model); a saved "
            "model keeps its own config.json, so any other value is refused."
        },
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={"help": "Tokenizer folder (required with --preset; defaults to --model_name_or_path)."},
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where Hub models, tokenizers and datasets are cached."}
    )
    model_revision: str = field(
        default="main", metadata={"help": "Hub revision (branch, tag or commit) of the model and tokenizer."}
    )
    token: str | None = field(
        default=None, metadata={"help": "Hub token for private models and datasets (default: the login's)."}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow remote code when loading a model folder that is not ours."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "eager | sdpa (default: auto)."})
    resize_position_embeddings: bool | None = field(
        default=None,
        metadata={
            "help": "Upstream name, refused when true: Pyramidion's encoder_lengths schedule is built for "
            "max_position_embeddings, so longer inputs need a new model (--config_overrides "
            "max_position_embeddings=...,encoder_lengths=[...])."
        },
    )

    def __post_init__(self) -> None:
        if self.resize_position_embeddings:
            raise ValueError(
                "--resize_position_embeddings is not supported: the pooling schedule (encoder_lengths) is "
                "built for max_position_embeddings; build a model for longer inputs with --config_overrides "
                "max_position_embeddings=...,encoder_lengths=[...]."
            )
        if self.config_name is None or self.config_name == self.model_name_or_path:
            return
        if self.config_name not in list_presets() or self.preset not in (None, self.config_name):
            raise ValueError(
                f"--config_name {self.config_name!r}: name a preset (one of {list_presets()}) to build a "
                "fresh model; a saved model keeps its own config (edit a preset with --config_overrides)."
            )
        self.preset = self.config_name

    def hub_kwargs(self) -> dict[str, Any]:
        """The `from_pretrained` options every model, config and tokenizer load of a run shares."""
        kwargs = {
            "cache_dir": self.cache_dir,
            "token": self.token,
            "trust_remote_code": self.trust_remote_code,
        }
        if self.model_revision != "main":
            kwargs["revision"] = self.model_revision
        return {key: value for key, value in kwargs.items() if value is not None}


@dataclass
class DataArguments:
    """What to train and evaluate on, how long inputs and targets may be, and how to generate."""

    dataset: str = field(
        default="aclsum",
        metadata={
            "aliases": ["--dataset_name"],
            "help": "aclsum, a Hub dataset, a local .json/.jsonl/.csv/.parquet or a save_to_disk folder.",
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The Hub dataset's configuration (e.g. 'section' of arXiv)."}
    )
    train_file: str | None = field(
        default=None,
        metadata={"help": "Local train file or save_to_disk folder (overrides --dataset)."},
    )
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file or folder."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file or folder."})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the data instead of loading it (corpora larger than memory): training needs "
            "--max_steps; streamed evaluation / test splits read only their first --max_eval_samples / "
            "--max_predict_samples rows into memory."
        },
    )
    article_column: str = field(
        default="article", metadata={"aliases": ["--text_column"], "help": "Column holding the documents."}
    )
    summary_column: str = field(
        default="abstract", metadata={"help": "Column holding the reference summaries."}
    )
    source_prefix: str | None = field(
        default=None, metadata={"help": 'Text put before every document (e.g. "summarize: " for T5).'}
    )
    overwrite_cache: bool = field(
        default=False, metadata={"help": "Tokenize again instead of reusing datasets' cached features."}
    )
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "Processes that tokenize the data (not with --streaming)."}
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
    val_max_target_length: int | None = field(
        default=None,
        metadata={
            "help": "Summary tokens kept for evaluation / test labels, and the default "
            "--generation_max_length (default: --max_target_length)."
        },
    )
    pad_to_max_length: bool = field(
        default=False,
        metadata={
            "help": "Upstream name, ignored (logged): batches are padded to their longest example, the model "
            "masks the padding, and fixed shapes only matter on TPUs."
        },
    )
    ignore_pad_token_for_loss: bool = field(
        default=True,
        metadata={"help": "Pad labels with -100, leaving padding out of the loss (false: the pad id)."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N train examples."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N eval examples."}
    )
    max_predict_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N test examples."}
    )
    num_beams: int | None = field(
        default=None, metadata={"help": "Beams for evaluation / prediction (sets --generation_num_beams)."}
    )
    no_repeat_ngram_size: int | None = field(
        default=None, metadata={"help": "Generation: forbid repeated n-grams of this size (0 or None = off)."}
    )
    forced_bos_token: str | None = field(
        default=None,
        metadata={
            "help": "Upstream name for multilingual models (mBART language codes), refused: Pyramidion "
            "tokenizers have no language tokens and generation starts from decoder_start_token_id."
        },
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

    def __post_init__(self) -> None:
        if self.forced_bos_token is not None:
            raise ValueError(
                "--forced_bos_token is for multilingual models (mBART language codes): Pyramidion tokenizers "
                "have no language tokens; drop the option."
            )
        if self.pad_to_max_length:
            logger.info(
                "--pad_to_max_length is ignored: batches are padded to their longest example (the model "
                "masks the padding)."
            )
        if self.streaming and self.preprocessing_num_workers:
            raise ValueError("--preprocessing_num_workers does not apply to --streaming (tokenized lazily).")

    def target_length(self, split: str) -> int:
        """Summary tokens kept in the labels of `split`: --val_max_target_length off the train split."""
        if split == self.train_split or self.val_max_target_length is None:
            return self.max_target_length
        return self.val_max_target_length


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
    """Parse the command line (or a single .json file of arguments) into the three dataclasses.

    As upstream, --num_beams sets --generation_num_beams and --val_max_target_length the default
    --generation_max_length.
    """
    parser = HfArgumentParser((ModelArguments, DataArguments, Seq2SeqTrainingArguments))
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 1 and argv[0].endswith(".json"):
        model_args, data_args, training_args = parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    else:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    if data_args.num_beams is not None:
        training_args.generation_num_beams = data_args.num_beams
    if training_args.generation_max_length is None:
        training_args.generation_max_length = data_args.val_max_target_length
    return model_args, data_args, training_args
