"""The main job's settings (`make demo`): a small Pyramidion trained for minutes on ACLSum, on a CPU.

`FULL` (~10 minutes on 2 cores) and `SMOKE` (a tiny end-to-end check) set everything that makes the cost;
`demo_arguments` turns a size into the arguments of `pyramidion_hf.training.summarization.run`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Seq2SeqTrainingArguments, TrainerCallback

from pyramidion_hf.training.arguments import DataArguments, ModelArguments


@dataclass(frozen=True)
class DemoSize:
    """Everything that sets the demo's cost: input length, model size, data and steps."""

    max_source_length: int
    encoder_lengths: tuple[int, ...]
    block_size: int
    d_model: int
    heads: int
    ffn_dim: int
    decoder_layers: int
    vocab_size: int
    max_target_length: int
    max_steps: int
    batch_size: int
    learning_rate: float
    max_train_samples: int | None
    max_predict_samples: int | None
    generation_max_length: int
    max_train_minutes: float
    bf16: bool = False  # autocast training (fp32 master weights) on hardware with fast bf16


FULL = DemoSize(
    max_source_length=2048,
    encoder_lengths=(512, 256),
    block_size=256,
    d_model=192,
    heads=4,
    ffn_dim=768,
    decoder_layers=2,
    vocab_size=8000,
    max_target_length=192,
    max_steps=220,
    batch_size=8,
    learning_rate=3e-3,
    max_train_samples=None,
    max_predict_samples=None,
    generation_max_length=160,
    max_train_minutes=7.0,
)
# bf16 on CPUs with AVX512-BF16 / AMX: a step costs less, so the same ~10 minutes buy more steps (measured:
# benchmarks/results/bf16_loss_curve.md)
FULL_BF16_STEPS = 360  # 220 fp32 steps x 1.64 (bf16 step 0.45 s vs 0.75 s)
FULL_BF16 = dataclasses.replace(FULL, bf16=True, max_steps=FULL_BF16_STEPS)
SMOKE = DemoSize(
    max_source_length=256,
    encoder_lengths=(256, 64),
    block_size=64,
    d_model=32,
    heads=2,
    ffn_dim=64,
    decoder_layers=1,
    vocab_size=400,
    max_target_length=48,
    max_steps=6,
    batch_size=2,
    learning_rate=3e-3,
    max_train_samples=8,
    max_predict_samples=4,
    generation_max_length=24,
    max_train_minutes=5.0,
)
# chosen on the ACLSum validation split (ROUGE-1 18.9 / 24.9 / 28.3 for 1.0 / 1.2 / 1.5): a model trained for
# minutes repeats itself without it
REPETITION_PENALTY = 1.5


class TimeLimit(TrainerCallback):
    """Stop training (and save a checkpoint) after `minutes`: the demo keeps to its time on slow machines."""

    def __init__(self, minutes: float) -> None:
        self.deadline = time.monotonic() + 60.0 * minutes
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if time.monotonic() > self.deadline and not control.should_training_stop:
            control.should_training_stop = True
            control.should_save = True
            self.stopped_at = state.global_step
        return control


def demo_size(smoke: bool = False, bf16: bool = False, **overrides: Any) -> DemoSize:
    """The profile (`SMOKE`, `FULL`, or `FULL_BF16` when `bf16`) with the given fields replaced (None = keep).

    A new `max_source_length` without `encoder_lengths` scales the profile's encoder lengths with it.
    """
    base = dataclasses.replace(SMOKE, bf16=bf16) if smoke else FULL_BF16 if bf16 else FULL
    values = {key: value for key, value in overrides.items() if value is not None}
    if "encoder_lengths" in values:
        values["encoder_lengths"] = tuple(values["encoder_lengths"])
    elif "max_source_length" in values:
        ratio = [n / base.max_source_length for n in base.encoder_lengths]
        values["encoder_lengths"] = tuple(max(1, round(values["max_source_length"] * r)) for r in ratio)
    return dataclasses.replace(base, **values)


def config_overrides(size: DemoSize) -> str:
    """The --config_overrides string for the preset."""
    lengths = ",".join(str(n) for n in size.encoder_lengths)
    return (
        f"max_position_embeddings={size.max_source_length},encoder_lengths=[{lengths}],block_size={size.block_size},"
        f"d_model={size.d_model},encoder_attention_heads={size.heads},decoder_attention_heads={size.heads},"
        f"encoder_ffn_dim={size.ffn_dim},decoder_ffn_dim={size.ffn_dim},decoder_layers={size.decoder_layers},"
        # pre-norm tolerates the high learning rate of a minutes-long run from scratch; decoder positions give
        # the decoder word order (the paper uses none)
        "dropout=0.1,normalize_before=True,decoder_position_embeddings=sinusoidal"
    )


def demo_arguments(
    size: DemoSize, model_dir: Path, *, preset: str, seed: int, n_bootstrap: int
) -> tuple[ModelArguments, DataArguments, Seq2SeqTrainingArguments]:
    """The run's arguments: train on ACLSum train, predict on test beside the Lead baseline."""
    model_args = ModelArguments(preset=preset, config_overrides=config_overrides(size))
    data_args = DataArguments(
        dataset="aclsum",
        max_source_length=size.max_source_length,
        max_target_length=size.max_target_length,
        max_train_samples=size.max_train_samples,
        max_predict_samples=size.max_predict_samples,
        lead_baseline=True,
        no_repeat_ngram_size=3,
        repetition_penalty=REPETITION_PENALTY,
        n_bootstrap=n_bootstrap,
    )
    return model_args, data_args, demo_training_arguments(size, model_dir, seed)


def demo_training_arguments(size: DemoSize, model_dir: Path, seed: int) -> Seq2SeqTrainingArguments:
    """Linear schedule with warm-up, a checkpoint every quarter of the run (the last one kept), no reports."""
    return Seq2SeqTrainingArguments(
        output_dir=str(model_dir),
        do_train=True,
        do_predict=True,
        predict_with_generate=True,
        max_steps=size.max_steps,
        per_device_train_batch_size=size.batch_size,
        per_device_eval_batch_size=8,
        learning_rate=size.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=max(1, size.max_steps // 10),
        weight_decay=0.01,
        max_grad_norm=1.0,
        logging_steps=max(1, size.max_steps // 20),
        save_strategy="steps",
        save_steps=max(1, size.max_steps // 4),
        save_total_limit=1,
        generation_max_length=size.generation_max_length,
        seed=seed,
        data_seed=seed,
        report_to="none",
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        use_cpu=not torch.cuda.is_available(),
        bf16=size.bf16,
    )
