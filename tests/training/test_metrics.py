"""ROUGE with bootstrap CIs, sentence splitting, Lead baseline, compute_metrics and the evaluate module."""

import socket

import numpy as np
import pytest
from rouge_score import rouge_scorer
from transformers import EvalPrediction

from pyramidion_hf.training.metrics import (
    DEFAULT_LEAD_SENTENCES,
    METRIC_MODULE_PATH,
    ROUGE_KEYS,
    build_compute_metrics,
    lead_summary,
    load_rouge_metric,
    rouge_with_ci,
    split_sentences,
)
from pyramidion_hf.training.tokenizer import train_tokenizer

PREDICTIONS = [
    "The cat sat on the mat. It was happy.",
    "Pooling keeps the best tokens. The decoder is cheaper.",
    "We train from scratch on arXiv.",
    "Nothing in common here.",
    "ROUGE scores are reported with intervals. Bootstrap gives them.",
    "Models running on long documents are slow.",
    "The encoder scores tokens and keeps the top k of them.",
    "Summaries are generated with beam search.",
]
REFERENCES = [
    "A cat was sitting on the mat. The cat was happy.",
    "Trainable pooling keeps the most informative tokens. Decoding becomes cheaper.",
    "All models are trained from scratch on the arXiv dataset.",
    "Completely different words appear there.",
    "We report ROUGE with 95% confidence intervals obtained by bootstrap.",
    "Long documents make transformers slow and memory hungry.",
    "The encoder scores its representations and selects the k best.",
    "We decode with a beam of two.",
]
SCORER = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)


def test_hand_example_value():
    scores = rouge_with_ci(["the cat sat"], ["the cat sat down"], n_bootstrap=10)
    assert scores["rouge1"] == pytest.approx(100 * 2 * 1.0 * 0.75 / 1.75)  # P=1, R=3/4
    assert scores["rouge2"] == pytest.approx(100 * 2 * 1.0 * (2 / 3) / (1 + 2 / 3))
    assert scores["rouge1_low"] == scores["rouge1"] == scores["rouge1_high"]  # one example: no spread


def test_matches_rouge_score_means_with_stemming():
    scores = rouge_with_ci(PREDICTIONS, REFERENCES, n_bootstrap=200)
    assert set(scores) == {f"{t}{s}" for t in ROUGE_KEYS for s in ("", "_low", "_high")}
    for rouge_type in ("rouge1", "rouge2", "rougeL"):
        own = [SCORER.score(r, p)[rouge_type].fmeasure for p, r in zip(PREDICTIONS, REFERENCES, strict=True)]
        assert scores[rouge_type] == pytest.approx(100 * np.mean(own), abs=1e-9)
    own_lsum = [
        SCORER.score("\n".join(split_sentences(r)), "\n".join(split_sentences(p)))["rougeLsum"].fmeasure
        for p, r in zip(PREDICTIONS, REFERENCES, strict=True)
    ]
    assert scores["rougeLsum"] == pytest.approx(100 * np.mean(own_lsum), abs=1e-9)
    # stemming on: "sitting"/"sat" differ but "cats"/"cat" match
    assert rouge_with_ci(["cats"], ["cat"], n_bootstrap=1)["rouge1"] == pytest.approx(100.0)


def test_rouge_lsum_uses_sentence_splitting():
    reference = "The model pools tokens. Decoding gets faster."
    prediction = "Decoding gets faster. The model pools tokens."
    scores = rouge_with_ci([prediction], [reference], n_bootstrap=1)
    assert scores["rougeLsum"] == pytest.approx(100.0)  # sentence-level union LCS recovers both sentences
    assert scores["rougeL"] < 60.0  # the summary-level LCS only finds one of them
    unsplit = SCORER.score(reference, prediction)["rougeLsum"].fmeasure
    assert 100 * unsplit == pytest.approx(scores["rougeL"])  # without splitting, Lsum would equal L


def test_confidence_intervals_bracket_the_mean_and_are_seeded():
    a = rouge_with_ci(PREDICTIONS, REFERENCES, n_bootstrap=300, seed=1)
    b = rouge_with_ci(PREDICTIONS, REFERENCES, n_bootstrap=300, seed=1)
    c = rouge_with_ci(PREDICTIONS, REFERENCES, n_bootstrap=300, seed=2)
    assert a == b
    assert any(a[k] != c[k] for k in a if k.endswith(("_low", "_high")))
    for rouge_type in ROUGE_KEYS:
        assert a[f"{rouge_type}_low"] < a[rouge_type] < a[f"{rouge_type}_high"]
        assert 0.0 <= a[f"{rouge_type}_low"] and a[f"{rouge_type}_high"] <= 100.0
    wide = rouge_with_ci(PREDICTIONS, REFERENCES, n_bootstrap=300, seed=1, confidence=0.99)
    assert wide["rouge1_high"] - wide["rouge1_low"] > a["rouge1_high"] - a["rouge1_low"]


def test_global_numpy_rng_is_left_untouched():
    np.random.seed(123)
    expected = np.random.rand(3)
    np.random.seed(123)
    rouge_with_ci(PREDICTIONS, REFERENCES, n_bootstrap=50, seed=7)
    assert np.array_equal(np.random.rand(3), expected)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((["a"], ["a", "b"]), {}, "pair up"),
        (([], []), {}, "empty"),
        (("abc", "abc"), {}, "not a single string"),
        ((["a"], ["a"]), {"n_bootstrap": 0}, "n_bootstrap"),
        ((["a"], ["a"]), {"confidence": 1.5}, "confidence"),
    ],
)
def test_rouge_bad_input(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rouge_with_ci(*args, **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "We use BERT (Devlin et al., 2019). It works. Results are in Fig. 3. Accuracy is 92.5% here.",
            [
                "We use BERT (Devlin et al., 2019).",
                "It works.",
                "Results are in Fig. 3.",
                "Accuracy is 92.5% here.",
            ],
        ),
        (
            "Some methods, e.g. CRFs, work. Others, i.e. neural ones, do not! Why? Because.",
            ["Some methods, e.g. CRFs, work.", "Others, i.e. neural ones, do not!", "Why?", "Because."],
        ),
        ("The U.S. Army paid. Dr. Smith agreed.", ["The U.S. Army paid.", "Dr. Smith agreed."]),
        ("A. Vaswani wrote it. We follow.", ["A. Vaswani wrote it.", "We follow."]),
        ('He said "Stop." Then (it ended.) Fine.', ['He said "Stop."', "Then (it ended.)", "Fine."]),
        ("See Sec. 4 and Eq. 2 here. Table 1 too.", ["See Sec. 4 and Eq. 2 here.", "Table 1 too."]),
        ("version 2.0 is out. 3 models follow.", ["version 2.0 is out.", "3 models follow."]),
        ("lower. case does not split", ["lower. case does not split"]),
        ("tokenized text , here . Next one .", ["tokenized text , here .", "Next one ."]),
        ("Title line\n\nBody one. Body two", ["Title line", "Body one.", "Body two"]),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_lead_summary():
    article = (
        "1 Introduction\nFirst one here. Second one.\nRelated Work\nThird. Fourth! Fifth? Sixth. Seventh."
    )
    assert lead_summary(article, 3) == "First one here. Second one. Third."
    assert lead_summary(article) == "First one here. Second one. Third. Fourth! Fifth?"
    assert DEFAULT_LEAD_SENTENCES == 5
    assert lead_summary(article, 6) == "First one here. Second one. Third. Fourth! Fifth? Sixth."
    assert lead_summary("Only one sentence.", 6) == "Only one sentence."
    with pytest.raises(ValueError, match="n_sentences"):
        lead_summary(article, 0)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(PREDICTIONS + REFERENCES, vocab_size=300, min_frequency=1)


def test_build_compute_metrics_decodes_and_scores(tokenizer):
    preds = tokenizer(PREDICTIONS[:3], padding=True).input_ids
    labels = tokenizer(REFERENCES[:3], padding=True).input_ids
    preds = np.array(preds)
    labels = np.array(labels)
    labels[labels == tokenizer.pad_token_id] = -100
    preds_with_trainer_padding = np.concatenate([preds, np.full((3, 4), -100)], axis=1)
    compute = build_compute_metrics(tokenizer, n_bootstrap=100, seed=3)
    result = compute(EvalPrediction(predictions=preds_with_trainer_padding, label_ids=labels))
    expected = rouge_with_ci(PREDICTIONS[:3], REFERENCES[:3], n_bootstrap=100, seed=3)
    assert {k: result[k] for k in expected} == pytest.approx(expected)
    lengths = [len(tokenizer(p).input_ids) for p in PREDICTIONS[:3]]
    assert result["gen_len"] == pytest.approx(np.mean(lengths))
    with pytest.raises(ValueError, match="predict_with_generate"):
        compute(EvalPrediction(predictions=np.zeros((3, 5, 7)), label_ids=labels))


def test_evaluate_module_loads_offline_by_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    import evaluate

    metric = evaluate.load(str(METRIC_MODULE_PATH))
    scores = metric.compute(predictions=PREDICTIONS, references=REFERENCES, n_bootstrap=100, seed=5)
    assert scores == rouge_with_ci(PREDICTIONS, REFERENCES, n_bootstrap=100, seed=5)
    helper = load_rouge_metric()
    assert helper.compute(predictions=["the cat sat"], references=["the cat sat down"])[
        "rouge1"
    ] == pytest.approx(100 * 2 * 0.75 / 1.75)
