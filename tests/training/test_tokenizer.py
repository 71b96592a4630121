"""Tokenizer training: special ids, lossless round-trips, BART-style wrapping, save/reload offline, errors."""

import pytest
from transformers import AutoTokenizer

from pyramidion_hf.modeling.configuration_pyramidion import PyramidionConfig
from pyramidion_hf.training.tokenizer import (
    MIN_VOCAB_SIZE,
    SPECIAL_TOKEN_IDS,
    SPECIAL_TOKENS,
    train_tokenizer,
)

CORPUS = [
    "Sparse transformers pool token representations with a trainable top-k operator.",
    "The Successive Halving Top-k operator keeps the best k vectors; the decoder attends to them.",
    "Long documents (8k to 64k tokens) are summarized with blockwise attention and pooling.",
    "We report ROUGE-1, ROUGE-2 and ROUGE-L with 95% bootstrap confidence intervals.",
] * 20
HARD_TEXTS = [
    "Hello world",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\nand  double  spaces",
    "Ünïcödé façade, naïve café — “quotes” and 🙂 emoji, 漢字 and עברית",
    "numbers 3.14159 and symbols <>&%$#@!~`^*{}[]|\\",
    "",
]


@pytest.fixture(scope="module", params=["bpe", "unigram"])
def tokenizer(request):
    return train_tokenizer(CORPUS, vocab_size=400, model=request.param, min_frequency=1, model_max_length=64)


def test_special_tokens_have_bart_ids_and_match_model_config(tokenizer):
    for name, token in SPECIAL_TOKENS.items():
        assert tokenizer.convert_tokens_to_ids(token) == SPECIAL_TOKEN_IDS[name]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert (tokenizer.unk_token_id, tokenizer.mask_token_id) == (3, 4)
    config = PyramidionConfig()
    assert config.bos_token_id == tokenizer.bos_token_id
    assert config.pad_token_id == tokenizer.pad_token_id
    assert config.eos_token_id == tokenizer.eos_token_id
    assert config.decoder_start_token_id == tokenizer.eos_token_id


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_round_trip_is_lossless_and_wrapped_in_bos_eos(tokenizer, text):
    ids = tokenizer(text).input_ids
    assert ids[0] == 0 and ids[-1] == 2
    assert SPECIAL_TOKEN_IDS["unk"] not in ids  # byte-level alphabet: nothing is unknown
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False).input_ids) == text


def test_vocabulary_size_and_learned_merges(tokenizer):
    assert MIN_VOCAB_SIZE < len(tokenizer) <= 400
    plain = tokenizer("the decoder attends to them", add_special_tokens=False).input_ids
    assert len(plain) < len("the decoder attends to them")  # learned pieces longer than one byte


def test_padding_truncation_and_mask_token(tokenizer):
    batch = tokenizer(["short", CORPUS[0]], padding=True, truncation=True, max_length=10)
    first, second = batch.input_ids
    assert len(first) == len(second) == 10
    assert second[-1] == 2 and second[0] == 0  # truncation keeps </s>
    n_real = sum(batch.attention_mask[0])
    assert first[n_real:] == [1] * (10 - n_real) and first[n_real - 1] == 2
    ids = tokenizer("a <mask> b").input_ids
    assert ids.count(4) == 1
    assert tokenizer.decode(ids) == "<s>a<mask> b</s>"  # <mask> absorbs the space before it, as in BART


def test_save_and_reload_offline_with_autotokenizer(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.model_max_length == 64
    assert reloaded.all_special_ids == tokenizer.all_special_ids
    for text in HARD_TEXTS:
        assert reloaded(text).input_ids == tokenizer(text).input_ids
        assert reloaded.decode(reloaded(text).input_ids, skip_special_tokens=True) == text
    assert (reloaded.bos_token, reloaded.pad_token, reloaded.eos_token) == ("<s>", "<pad>", "</s>")


def test_bpe_and_unigram_differ_and_generators_are_accepted():
    bpe = train_tokenizer((t for t in CORPUS), vocab_size=300, model="bpe", min_frequency=1)
    unigram = train_tokenizer(iter(CORPUS), vocab_size=300, model="unigram")
    text = "pooling tokens with top-k"
    assert bpe(text).input_ids != unigram(text).input_ids
    assert bpe.decode(bpe(text).input_ids, skip_special_tokens=True) == text
    assert unigram.decode(unigram(text).input_ids, skip_special_tokens=True) == text


def test_min_frequency_limits_merges():
    loose = train_tokenizer(CORPUS[:4] * 2, vocab_size=2000, min_frequency=1)
    strict = train_tokenizer(CORPUS[:4] * 2, vocab_size=2000, min_frequency=3)
    assert len(strict) < len(loose)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"texts": []}, "empty corpus"),
        ({"texts": ["", "   ", "\n"]}, "empty corpus"),
        ({"texts": "a single string"}, "not a single string"),
        ({"texts": ["ok", 3]}, "expected str"),
        ({"texts": CORPUS, "vocab_size": MIN_VOCAB_SIZE - 1}, "vocab_size >= 261"),
        ({"texts": CORPUS, "model": "wordpiece"}, "model must be one of"),
        ({"texts": CORPUS, "min_frequency": 0}, "min_frequency"),
        ({"texts": CORPUS, "model_max_length": 1}, "model_max_length"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_tokenizer(**kwargs)
