"""Train a byte-level BPE or Unigram tokenizer with BART's special tokens (ids 0-4) for Pyramidion models.

Token ids match the `PyramidionConfig` defaults (bos=0, pad=1, eos=2, decoder_start=2), sequences are wrapped
as `<s> ... </s>` like BART/RoBERTa, and decoding reproduces the input text byte for byte.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerFast

from pyramidion_hf.training.data import load_summarization_data

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"}
SPECIAL_TOKEN_IDS = {"bos": 0, "pad": 1, "eos": 2, "unk": 3, "mask": 4}
TOKENIZER_MODELS = ("bpe", "unigram")
_BYTE_ALPHABET = pre_tokenizers.ByteLevel.alphabet()
MIN_VOCAB_SIZE = len(SPECIAL_TOKENS) + len(_BYTE_ALPHABET)  # 5 special tokens + 256 byte symbols = 261


def _non_empty_texts(texts: Iterable[str]) -> Iterator[str]:
    """Yield the non-blank strings of `texts`; raise ValueError on a non-string item or when none is left."""
    if isinstance(texts, str):
        raise ValueError(
            "texts must be an iterable of strings (a corpus), not a single string: wrap it in a list"
        )
    seen = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"texts[{i}] is a {type(text).__name__}, expected str")
        if text.strip():
            seen += 1
            yield text
    if seen == 0:
        raise ValueError("cannot train a tokenizer on an empty corpus: texts holds no non-blank string")


def _first_and_rest(texts: Iterable[str]) -> Iterator[str]:
    """Check eagerly that the corpus has a non-blank text (ValueError otherwise), without materialising it."""
    stream = _non_empty_texts(texts)
    first = next(stream)  # the generator raises ValueError, not StopIteration, on an empty corpus
    return itertools.chain([first], stream)


def _check_options(vocab_size: int, model: str, min_frequency: int, model_max_length: int | None) -> None:
    """ValueError on options `train_tokenizer` cannot honour."""
    if model not in TOKENIZER_MODELS:
        raise ValueError(f"model must be one of {TOKENIZER_MODELS}, got {model!r}")
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the {len(SPECIAL_TOKENS)} special tokens and the "
            f"{len(_BYTE_ALPHABET)} byte symbols need at least {MIN_VOCAB_SIZE}; "
            f"use vocab_size >= {MIN_VOCAB_SIZE}"
        )
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    if model_max_length is not None and model_max_length < 2:
        raise ValueError(f"model_max_length must be >= 2 (room for <s> and </s>), got {model_max_length}")


def _backend_and_trainer(
    vocab_size: int, model: str, min_frequency: int, show_progress: bool = True
) -> tuple[Tokenizer, Any]:
    """An untrained BPE / Unigram `tokenizers.Tokenizer` and its trainer (with a progress bar unless
    `show_progress=False`), special tokens first (ids 0-4)."""
    specials = [
        AddedToken(SPECIAL_TOKENS[name], special=True, normalized=False, lstrip=name == "mask")
        for name in ("bos", "pad", "eos", "unk", "mask")
    ]  # <mask> eats the space before it, as in BART

    if model == "bpe":
        backend = Tokenizer(models.BPE(unk_token=None))
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=_BYTE_ALPHABET,
            show_progress=show_progress,
        )
    else:
        backend = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            unk_token=SPECIAL_TOKENS["unk"],
            initial_alphabet=_BYTE_ALPHABET,
            show_progress=show_progress,
        )
    return backend, trainer


def _wrap(backend: Tokenizer, model_max_length: int | None) -> PreTrainedTokenizerFast:
    """The trained backend, post-processed as `<s> ... </s>`, as a transformers fast tokenizer."""
    backend.post_processor = processors.RobertaProcessing(
        (SPECIAL_TOKENS["eos"], SPECIAL_TOKEN_IDS["eos"]),
        (SPECIAL_TOKENS["bos"], SPECIAL_TOKEN_IDS["bos"]),
        trim_offsets=True,
        add_prefix_space=False,
    )
    extra = {} if model_max_length is None else {"model_max_length": model_max_length}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=SPECIAL_TOKENS["bos"],
        eos_token=SPECIAL_TOKENS["eos"],
        pad_token=SPECIAL_TOKENS["pad"],
        unk_token=SPECIAL_TOKENS["unk"],
        mask_token=AddedToken(SPECIAL_TOKENS["mask"], lstrip=True, rstrip=False),
        cls_token=SPECIAL_TOKENS["bos"],
        sep_token=SPECIAL_TOKENS["eos"],
        padding_side="right",
        clean_up_tokenization_spaces=False,
        **extra,
    )


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 32000,
    model: str = "bpe",
    min_frequency: int = 2,
    model_max_length: int | None = None,
    show_progress: bool = True,
) -> PreTrainedTokenizerFast:
    """Train a byte-level tokenizer on `texts` and wrap it as a `PreTrainedTokenizerFast`.

    `model="bpe"` is BART/RoBERTa's byte-level BPE (`min_frequency` = minimum pair count for a merge);
    `model="unigram"` is a Unigram LM over the same byte alphabet (`min_frequency` does not apply). Both keep
    the 256 byte symbols in the vocabulary, so no text is ever mapped to `<unk>` and decoding is lossless.
    `vocab_size` counts the 5 special tokens and must be at least 261. `model_max_length` is stored in the
    tokenizer config (the model's `max_position_embeddings` is the natural value). `show_progress` draws the
    `tokenizers` trainer's progress bar while it trains.
    """
    _check_options(vocab_size, model, min_frequency, model_max_length)
    corpus = _first_and_rest(texts)
    backend, trainer = _backend_and_trainer(vocab_size, model, min_frequency, show_progress)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(corpus, trainer=trainer)

    for name, expected in SPECIAL_TOKEN_IDS.items():
        got = backend.token_to_id(SPECIAL_TOKENS[name])
        if got != expected:
            raise RuntimeError(f"special token {SPECIAL_TOKENS[name]!r} got id {got}, expected {expected}")
    return _wrap(backend, model_max_length)


def dataset_texts(
    dataset: str,
    split: str,
    columns: Sequence[str],
    *,
    article_column: str = "article",
    summary_column: str = "abstract",
    max_samples: int | None = None,
) -> Iterator[str]:
    """The non-empty texts of `columns` in one split of a dataset (aclsum, Hub name or local file)."""
    raw = load_summarization_data(dataset, article_column=article_column, summary_column=summary_column)
    if split not in raw:
        raise ValueError(f"{dataset} has no split {split!r}; it has {list(raw)}. Pick one with --split.")
    data = raw[split]
    missing = [c for c in columns if c not in data.column_names]
    if missing:
        raise ValueError(f"Columns {missing} not in {dataset}[{split}] (columns: {data.column_names}).")
    rows = data if max_samples is None else data.select(range(min(max_samples, len(data))))
    for row in tqdm(rows, desc=f"Reading {dataset}[{split}]", leave=False):
        for column in columns:
            if isinstance(row[column], str) and row[column].strip():
                yield row[column]


def train_tokenizer_on_dataset(
    dataset: str,
    output_dir: str | Path,
    *,
    split: str = "train",
    columns: Sequence[str] = ("article",),
    vocab_size: int = 32000,
    model: str = "bpe",
    min_frequency: int = 2,
    model_max_length: int | None = None,
    max_samples: int | None = None,
    article_column: str = "article",
    summary_column: str = "abstract",
    show_progress: bool = True,
) -> PreTrainedTokenizerFast:
    """Train on the texts of one dataset split (`dataset_texts`); saved to `output_dir` and returned."""
    texts = list(
        dataset_texts(
            dataset,
            split,
            columns,
            article_column=article_column,
            summary_column=summary_column,
            max_samples=max_samples,
        )
    )
    if not texts:
        raise ValueError(f"No text in {dataset}[{split}] columns {list(columns)} to train a tokenizer on.")
    logger.info("Training a %s tokenizer (vocab %d) on %d texts", model, vocab_size, len(texts))
    tokenizer = train_tokenizer(
        texts,
        vocab_size=vocab_size,
        model=model,
        min_frequency=min_frequency,
        model_max_length=model_max_length,
        show_progress=show_progress,
    )
    tokenizer.save_pretrained(str(output_dir))
    return tokenizer
