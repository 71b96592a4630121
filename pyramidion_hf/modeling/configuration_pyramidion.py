"""PyramidionConfig: BART's hyper-parameter names plus the encoder length schedule of trainable pooling.

Defaults are the paper's Table 2 #6 (Transpooler 2k -> 512: 2+2 layers, d=512, blocks of 512). Travels as Hub
remote code: imports only the standard library, transformers and sibling files.
"""

from __future__ import annotations

import copy
from dataclasses import field
from typing import Any, ClassVar

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .pipeline_summarization import SummarizationPipeline
from .pooling import SCORERS, check_embedding_index
from .topk import TOPK_OPERATORS, WEIGHTINGS, check_temperature

ENCODER_ATTENTIONS = ("dot", "efficient", "lsh")
# "sinusoidal" is fairseq's formula, "sinusoidal_pegasus" PEGASUS' (converted checkpoints; see modeling file)
ENCODER_POSITION_EMBEDDINGS = ("sinusoidal", "sinusoidal_pegasus", "learned")
DECODER_POSITION_EMBEDDINGS = ("none", *ENCODER_POSITION_EMBEDDINGS)
# Saved folders name their summarization pipeline under the task names users type (transformers 5 removed
# "summarization" and "text2text-generation" as built-in tasks; a folder's own entries still work) and under
# PIPELINE_TASK, the name `import pyramidion_hf` registers for in-memory models. The file travels with this
# one.
PIPELINE_TASK = "long-document-summarization"
CUSTOM_PIPELINES = {
    task: {
        "impl": f"pipeline_summarization.{SummarizationPipeline.__name__}",
        "pt": ["AutoModelForSeq2SeqLM"],
        "type": "text",
    }
    for task in ("summarization", "text2text-generation", PIPELINE_TASK)
}


def _as_length(value: Any) -> Any:
    """An encoder_lengths entry as an int (512.0 read from JSON -> 512); anything else is left for
    check_consistency to refuse (a fractional length is never truncated silently)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class PyramidionConfig(PreTrainedConfig):
    r"""Configuration of a Pyramidion encoder-decoder (Vanilla, Blockwise, Transpooler, Pyramidion, PoWER or
    Funnel-like, depending on the fields below; BART's names for the rest).

    encoder_lengths (`list[int]`): number of vectors each encoder layer outputs for an input of
        `max_position_embeddings` tokens; a length below the previous one (or below `max_position_embeddings`
        for the first layer) puts a pooling layer after that encoder layer, keeping that many vectors.
    block_size (`int` or `None`): encoder self-attention runs on non-overlapping blocks of this many vectors
        (None = full attention).
    encoder_attention (`str`): "dot" (softmax attention), "efficient" (Shen et al. 2021, linear in length) or
        "lsh" (Reformer's LSH attention, Kitaev et al. 2020). Efficient and LSH heads attend over the whole
        sequence (block_size only sets the local heads' blocks).
    lsh_num_hashes, lsh_bucket_size (`int`): LSH hash rounds (default 4) and chunk length (default 64).
    local_attention_heads (`int`): how many heads of an "efficient" or "lsh" encoder attention use blockwise
        dot attention (blocks of block_size) instead (the paper's baselines: 2); must be 0 for "dot".
    scorer, topk, topk_temperature, topk_sort, topk_weighting, scorer_embedding_index: the pooling layers'
        scorer and top-k operator (see `pyramidion_hf.modeling.pooling` and `pyramidion_hf.topk`).
    funnel_upsample (`bool`): the encoder output is upsampled back to the input length (each token gets the
        pooled vector covering it) plus the hidden states just before the first pooling (Funnel-Transformer).
    encoder_position_embeddings (`str`): "sinusoidal" (fairseq's formula), "sinusoidal_pegasus" (PEGASUS'
        formula) or "learned" (`max_position_embeddings` rows); the last two come from converted checkpoints.
    decoder_position_embeddings (`str`): "none" (the paper), "sinusoidal", "sinusoidal_pegasus" or "learned"
        (up to `max_target_positions`).
    add_final_logits_bias (`bool`): the logits get BART's `final_logits_bias` (1, vocab_size) buffer added.
    normalize_before (`bool`): pre-norm layers (with a final layer norm) instead of BART's post-norm; the
        pooling layers' scorers then read a layer-normalized copy of the (unnormalized) residual stream.
    """

    model_type = "pyramidion"
    attribute_map: ClassVar[dict[str, str]] = {
        "hidden_size": "d_model",
        "num_attention_heads": "encoder_attention_heads",
    }
    # Trainer.evaluate/predict leave these out of the gathered predictions (as the cache in transformers)
    keys_to_ignore_at_inference: ClassVar[list[str]] = [
        "cache",
        "encoder_pooled_mask",
        "encoder_pooling_indices",
        "encoder_pooling_weights",
    ]

    vocab_size: int = 32000
    max_position_embeddings: int = 2048
    encoder_lengths: list[int] = field(default_factory=lambda: [2048, 512])
    block_size: int | None = 512
    d_model: int = 512
    encoder_attention_heads: int = 8
    decoder_attention_heads: int = 8
    encoder_ffn_dim: int = 2048
    decoder_ffn_dim: int = 2048
    decoder_layers: int = 2
    activation_function: str = "relu"
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    scale_embedding: bool = True
    normalize_before: bool = False
    layernorm_embedding: bool = True
    encoder_attention: str = "dot"
    lsh_num_hashes: int = 4
    lsh_bucket_size: int = 64
    local_attention_heads: int = 0
    scorer: str = "linear"
    topk: str = "successive_halving"
    topk_temperature: float = 1.0
    topk_sort: bool = True
    topk_weighting: str = "sigmoid"
    scorer_embedding_index: int = 0
    funnel_upsample: bool = False
    encoder_position_embeddings: str = "sinusoidal"
    decoder_position_embeddings: str = "sinusoidal"
    add_final_logits_bias: bool = False
    max_target_positions: int = 1024
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 2
    tie_word_embeddings: bool = True
    use_cache: bool = True
    is_encoder_decoder: bool = True
    custom_pipelines: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(CUSTOM_PIPELINES))

    def __post_init__(self, **kwargs: Any) -> None:
        for derived in ("encoder_layers", "num_hidden_layers"):
            if derived in kwargs and kwargs.pop(derived) != len(self.encoder_lengths or []):
                raise ValueError(
                    f"`{derived}` is derived from `encoder_lengths` (one entry per encoder layer); set "
                    "`encoder_lengths` instead."
                )
        kwargs.pop("pooling_layers", None)
        self.encoder_lengths = [_as_length(n) for n in self.encoder_lengths or []]
        self.check_consistency()
        super().__post_init__(**kwargs)

    @property
    def encoder_layers(self) -> int:
        """Number of encoder layers (one per `encoder_lengths` entry)."""
        return len(self.encoder_lengths)

    @property
    def encoder_input_lengths(self) -> list[int]:
        """Number of vectors each encoder layer attends over for a full-length input."""
        return [self.max_position_embeddings, *self.encoder_lengths[:-1]]

    @property
    def pooling_layers(self) -> list[int]:
        """Indices of the encoder layers followed by a pooling layer."""
        pairs = zip(self.encoder_input_lengths, self.encoder_lengths, strict=True)
        return [i for i, (n, k) in enumerate(pairs) if k < n]

    @property
    def num_hidden_layers(self) -> int:
        """Encoder depth (BART's convention); decoder depth in the view `get_text_config(decoder=True)`."""
        return self.decoder_layers if self.__dict__.get("_decoder_view") else self.encoder_layers

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> PyramidionConfig:
        """`self`, or for `decoder=True` a copy whose `num_hidden_layers` is `decoder_layers` (generate()
        sizes its decoder caches from it)."""
        if decoder and not encoder:
            view = copy.deepcopy(self)
            view.__dict__["_decoder_view"] = True
            return view
        return self

    def check_consistency(self) -> None:
        """Raise ValueError, saying what to change, for an inconsistent configuration (run at init and when a
        model is built, so that fields edited after init are checked too)."""
        self._check_schedule()
        self._check_choices()
        self._check_sparse_attention()
        if self.scorer == "embedding":
            check_embedding_index(self.scorer_embedding_index, self.d_model, "scorer_embedding_index")
        try:
            check_temperature(self.topk_temperature)
        except ValueError as error:
            raise ValueError(f"topk_{error}") from None
        if self.funnel_upsample and not self.pooling_layers:
            raise ValueError(
                "funnel_upsample=True needs a pooling layer to upsample from; make an encoder_lengths entry "
                "smaller than the one before it (e.g. [2048, 512])."
            )
        if self.decoder_position_embeddings == "learned" and self.max_target_positions < 1:
            raise ValueError(f"max_target_positions must be >= 1, got {self.max_target_positions}.")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}.")
        self._check_special_token_ids()
        if self.decoder_layers < 1:
            raise ValueError(f"decoder_layers must be >= 1, got {self.decoder_layers}.")

    def _check_schedule(self) -> None:
        """Input length, encoder_lengths (positive, non-increasing, within the input) and block_size."""
        lengths, n = self.encoder_lengths, self.max_position_embeddings
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"max_position_embeddings must be a positive int, got {n!r}.")
        if not lengths:
            raise ValueError(
                "encoder_lengths is empty: give one output length per encoder layer, e.g. [2048, 512]."
            )
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in lengths):
            raise ValueError(f"encoder_lengths must be positive integers, got {lengths}.")
        if lengths[0] > n:
            raise ValueError(
                f"encoder_lengths[0]={lengths[0]} exceeds max_position_embeddings={n}: a layer cannot output "
                f"more vectors than the input has tokens; raise max_position_embeddings to {lengths[0]} or "
                "lower the entry."
            )
        for i in range(1, len(lengths)):
            if lengths[i] > lengths[i - 1]:
                raise ValueError(
                    f"encoder_lengths must not increase: entry {i} ({lengths[i]}) > entry {i - 1} "
                    f"({lengths[i - 1]}); a pooling layer cannot output more vectors than it receives "
                    "(k > n)."
                )
        if self.block_size is not None:
            if not isinstance(self.block_size, int) or self.block_size < 1:
                raise ValueError(
                    f"block_size must be a positive int or None (full attention), got {self.block_size!r}."
                )
            if self.block_size > n or n % self.block_size:
                raise ValueError(
                    f"block_size={self.block_size} must divide max_position_embeddings={n} so that a "
                    "full-length input splits into whole blocks; pick a divisor (e.g. 512) or "
                    "block_size=None for full attention."
                )

    def _check_choices(self) -> None:
        """Head counts dividing d_model, and every named choice (scorer, top-k, attention, ...) known."""
        for name in ("encoder_attention_heads", "decoder_attention_heads"):
            heads = getattr(self, name)
            if not isinstance(heads, int) or heads < 1 or self.d_model % heads:
                raise ValueError(
                    f"d_model={self.d_model} must be divisible by {name}={heads}; change one of them."
                )
        for name, value, valid in (
            ("scorer", self.scorer, SCORERS),
            ("topk", self.topk, TOPK_OPERATORS),
            ("topk_weighting", self.topk_weighting, WEIGHTINGS),
            ("encoder_attention", self.encoder_attention, ENCODER_ATTENTIONS),
            ("encoder_position_embeddings", self.encoder_position_embeddings, ENCODER_POSITION_EMBEDDINGS),
            ("decoder_position_embeddings", self.decoder_position_embeddings, DECODER_POSITION_EMBEDDINGS),
        ):
            if value not in valid:
                raise ValueError(f"Unknown {name}={value!r}; choose one of {', '.join(valid)}.")
        if self.activation_function not in ACT2FN:
            raise ValueError(
                f"Unknown activation_function={self.activation_function!r}; use a transformers activation "
                "such as 'relu' or 'gelu'."
            )
        if self.scorer == "power" and self.encoder_attention != "dot":
            raise ValueError(
                "scorer='power' scores tokens by the attention probabilities they receive, which "
                f"encoder_attention={self.encoder_attention!r} never forms; use encoder_attention='dot' or "
                "another scorer."
            )

    def _check_special_token_ids(self) -> None:
        """pad/bos/eos/decoder_start ids (None allowed; eos may be a list) must index the vocabulary."""
        if not isinstance(self.vocab_size, int) or self.vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive int, got {self.vocab_size!r}.")
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            for token_id in value if isinstance(value, list) else [value]:
                if token_id is None or (isinstance(token_id, int) and 0 <= token_id < self.vocab_size):
                    continue
                raise ValueError(
                    f"{name}={value!r} is not a token id of the vocabulary [0, vocab_size={self.vocab_size})"
                    ": set it to your tokenizer's id (e.g. tokenizer.pad_token_id) or enlarge vocab_size."
                )

    def _check_sparse_attention(self) -> None:
        """LSH hash rounds and chunk length >= 1; local heads in [0, encoder_attention_heads], and only for
        the efficient and LSH attentions (dot attention is all local)."""
        for name in ("lsh_num_hashes", "lsh_bucket_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        heads, local = self.encoder_attention_heads, self.local_attention_heads
        if isinstance(local, bool) or not isinstance(local, int) or not 0 <= local <= heads:
            raise ValueError(
                f"local_attention_heads must be an int in [0, encoder_attention_heads={heads}], got "
                f"{local!r}."
            )
        if local and self.encoder_attention == "dot":
            raise ValueError(
                "local_attention_heads applies to encoder_attention='efficient' or 'lsh' (dot attention is "
                "blockwise in every head already): set it to 0 or choose one of those attentions."
            )


PyramidionConfig.register_for_auto_class()

__all__ = ["PyramidionConfig"]
