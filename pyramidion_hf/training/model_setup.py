"""The tokenizer and the model a run trains: a fresh one from a preset (+ overrides) or a saved folder.

A preset model takes its vocabulary size and special token ids from the tokenizer, so that any tokenizer
trained by `pyramidion_hf.training.tokenizer` fits it without further flags.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from pyramidion_hf import PyramidionForConditionalGeneration
from pyramidion_hf.model_folder import check_tokenizer_fits
from pyramidion_hf.presets import get_preset
from pyramidion_hf.training.arguments import DataArguments, ModelArguments, parse_config_overrides


def load_tokenizer(model_args: ModelArguments) -> PreTrainedTokenizerBase:
    """The tokenizer from --tokenizer_name, else from the model folder."""
    path = model_args.tokenizer_name or model_args.model_name_or_path
    if path is None:
        raise ValueError(
            "No tokenizer: pass --tokenizer_name (train one with examples/train_tokenizer.py) "
            "or --model_name_or_path."
        )
    return AutoTokenizer.from_pretrained(path, **model_args.hub_kwargs())


def load_saved_model(path: str | Path, model_args: ModelArguments) -> PreTrainedModel:
    """A model saved with `save_pretrained` (a run's folder, one of its checkpoints, or a Hub id)."""
    kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    return AutoModelForSeq2SeqLM.from_pretrained(str(path), **model_args.hub_kwargs(), **kwargs)


def build_config(model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase) -> PreTrainedConfig:
    """The config of the model this run trains: --preset + overrides (vocab and special ids from the
    tokenizer), or the saved folder's; read without loading any weights."""
    if (model_args.preset is None) == (model_args.model_name_or_path is None):
        raise ValueError(
            "Pass exactly one of --preset (train from scratch) or --model_name_or_path (a saved model)."
        )
    if model_args.model_name_or_path is not None:
        if model_args.config_overrides:
            raise ValueError("--config_overrides applies to --preset only; a saved model keeps its config.")
        return AutoConfig.from_pretrained(model_args.model_name_or_path, **model_args.hub_kwargs())
    special = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.eos_token_id,
    }
    if any(value is None for value in special.values()):
        raise ValueError(
            f"The tokenizer lacks special tokens {special}: train it with examples/train_tokenizer.py."
        )
    overrides = parse_config_overrides(model_args.config_overrides)
    return get_preset(model_args.preset, **{**special, **overrides})


def check_tokenizer_matches(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, model_args: ModelArguments
) -> None:
    """Refuse, before training, a tokenizer with more tokens or other special ids than the model has."""
    source = Path(model_args.tokenizer_name or model_args.model_name_or_path or "the tokenizer")
    try:
        check_tokenizer_fits(model, tokenizer, source)
    except ValueError as err:
        raise ValueError(
            f"{err} To train anyway: drop --tokenizer_name to use the model's own tokenizer, or resize the "
            "model first (model.resize_token_embeddings(len(tokenizer)), config special ids set, "
            "save_pretrained) and pass that folder."
        ) from None


def build_model(model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A fresh model from --preset (+ overrides; vocab and special ids from the tokenizer), or a saved one;
    ValueError when the tokenizer does not fit it."""
    config = build_config(model_args, tokenizer)
    if model_args.model_name_or_path is not None:
        model = load_saved_model(model_args.model_name_or_path, model_args)
    else:
        if model_args.attn_implementation:
            config._attn_implementation = model_args.attn_implementation
        model = PyramidionForConditionalGeneration(config)
    check_tokenizer_matches(model, tokenizer, model_args)
    return model


def source_length(model: PreTrainedModel, data_args: DataArguments) -> int:
    """Input tokens kept per document: --max_source_length, at most (and by default) the model's positions."""
    max_positions = model.config.max_position_embeddings
    length = data_args.max_source_length or max_positions
    if length > max_positions:
        raise ValueError(
            f"--max_source_length {length} exceeds the model's max_position_embeddings {max_positions}: "
            "lower it, or build a model for longer inputs (--config_overrides max_position_embeddings=...)."
        )
    return length


def configure_generation(
    model: PreTrainedModel, data_args: DataArguments, generation_max_length: int | None, num_beams: int | None
) -> None:
    """Write the run's generation settings into `model.generation_config` (saved with the model)."""
    model.generation_config.max_length = generation_max_length or data_args.max_target_length
    model.generation_config.num_beams = num_beams or 1
    if data_args.no_repeat_ngram_size:
        model.generation_config.no_repeat_ngram_size = data_args.no_repeat_ngram_size
    if data_args.repetition_penalty is not None:
        model.generation_config.repetition_penalty = data_args.repetition_penalty
