"""ROUGE with bootstrap confidence intervals (the paper's Table 9), offline sentence splitting, Lead baseline.

Everything here is deterministic and needs no download: sentences are split by rules (no NLTK data), ROUGE is
`rouge_score` with stemming, and the 95 % intervals come from `rouge_score.scoring.BootstrapAggregator` run
under a local seed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rouge_score import rouge_scorer, scoring

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
# Lead length: on ACLSum train/val, 5 leading sentences have a median of 128 words against 121-126 for the
# abstracts (6 sentences: 153-155 words, although abstracts have a median of 6 sentences).
DEFAULT_LEAD_SENTENCES = 5

# Tokens that end with "." without ending a sentence (compared lower-case, without the final dot). "etc" is
# deliberately absent: "etc." before a capitalised word usually does end a sentence.
_ABBREVIATIONS = frozenset(
    """
    al approx apr aug ca cf ch chap col cols dec def dept dr e.g eq eqs eqn eqns esp est et feb fig figs
    i.e inc incl jan jr jul jun lit ltd mar mr mrs ms no nos nov oct p pp prof ref refs resp sec secs sect
    sep sept sr st tab tabs thm vol vols vs viz w.r.t wrt
    """.split()
)
_CANDIDATE = re.compile(r"[.!?]+[\"'”’)\]]*\s+")
_OPENERS = "\"'“‘([{"
_TRAILING_TOKEN = re.compile(r"(\S+)$")
# dotted abbreviations such as e.g, i.e, U.S (the final dot is stripped before matching)
_DOTTED = re.compile(r"^(?:[^\W\d_]\.)+[^\W\d_]$")
_HEADING_END = re.compile(r"[.!?:;][\"'”’)\]]*$")


def _is_abbreviation(token: str) -> bool:
    """Whether `token` (the text right before a ".", without it) is an abbreviation or an initial."""
    token = token.lstrip(_OPENERS).lower()
    if not token:
        return False
    if len(token) == 1 and token.isalpha():  # initials: "J. Smith", "A. Vaswani"
        return True
    return token in _ABBREVIATIONS or bool(_DOTTED.match(token))


def _split_line(line: str) -> list[str]:
    """Split one line (no newlines) into sentences."""
    sentences, start = [], 0
    for match in _CANDIDATE.finditer(line):
        end = match.end()
        if end >= len(line):
            break
        nxt = line[end:].lstrip(_OPENERS)[:1]
        if not nxt or not (nxt.isupper() or nxt.isdigit()):
            continue
        punct = match.group().rstrip()
        if punct.startswith(".") and len(punct.rstrip("\"'”’)]")) == 1:
            token = _TRAILING_TOKEN.search(line[start : match.start()])
            if token is not None and _is_abbreviation(token.group(1)):
                continue
        sentence = line[start:end].strip()
        if sentence:
            sentences.append(sentence)
        start = end
    rest = line[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences by deterministic rules; newlines are always boundaries.

    A sentence ends at ".", "!" or "?" (plus closing quotes/brackets) followed by whitespace and an upper-case
    letter or a digit, except after known abbreviations ("e.g.", "et al.", "Fig.", "Eq.", ...) and initials.
    Decimals ("3.14") never split since no whitespace follows the dot.
    """
    return [s for line in text.splitlines() for s in _split_line(line)]


def lead_summary(article: str, n_sentences: int = DEFAULT_LEAD_SENTENCES) -> str:
    """The Lead baseline: the first `n_sentences` sentences of `article`, joined by spaces.

    Heading-like lines (<= 12 words, no sentence-final punctuation, e.g. "1 Introduction") are skipped.
    The default of 5 sentences matches the median length in words of an ACLSum abstract.
    """
    if n_sentences < 1:
        raise ValueError(f"n_sentences must be >= 1, got {n_sentences}")
    picked: list[str] = []
    for line in article.splitlines():
        line = line.strip()
        if not line or (len(line.split()) <= 12 and not _HEADING_END.search(line)):
            continue
        picked.extend(_split_line(line))
        if len(picked) >= n_sentences:
            break
    return " ".join(picked[:n_sentences])


def _newline_sentences(text: str) -> str:
    return "\n".join(split_sentences(text))


def rouge_with_ci(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum F1 (stemmed, 0-100) with bootstrap confidence intervals.

    Returns keys `rouge1`, `rouge1_low`, `rouge1_high`, ... `rougeLsum_high`. The point estimate is the mean
    over examples (what `rouge_score` averaging gives); `_low`/`_high` are the (1-confidence)/2 and
    (1+confidence)/2 percentiles of `n_bootstrap` bootstrap means. Texts are split into newline-separated
    sentences first, which ROUGE-Lsum needs and the other three ignore. Deterministic given `seed`; numpy's
    global RNG is left as found.
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise ValueError("predictions and references must be lists of strings, not a single string")
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} references; they must pair up"
        )
    if len(predictions) == 0:
        raise ValueError("cannot score an empty list of predictions")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True, split_summaries=False)
    aggregator = scoring.BootstrapAggregator(confidence_interval=confidence, n_samples=n_bootstrap)
    fmeasures = {rouge_type: [] for rouge_type in ROUGE_KEYS}
    for prediction, reference in zip(predictions, references, strict=True):
        scores = scorer.score(_newline_sentences(reference), _newline_sentences(prediction))
        aggregator.add_scores(scores)
        for rouge_type in ROUGE_KEYS:
            fmeasures[rouge_type].append(scores[rouge_type].fmeasure)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        intervals = aggregator.aggregate()
    finally:
        np.random.set_state(state)
    result: dict[str, float] = {}
    for rouge_type in ROUGE_KEYS:
        result[rouge_type] = 100.0 * float(np.mean(fmeasures[rouge_type]))
        result[f"{rouge_type}_low"] = 100.0 * float(intervals[rouge_type].low.fmeasure)
        result[f"{rouge_type}_high"] = 100.0 * float(intervals[rouge_type].high.fmeasure)
    return result


def decode_ids(tokenizer: Any, ids: Any) -> list[str]:
    """Token ids (B, L), negative ids (-100: padding added by the Trainer) as pad, to stripped strings."""
    ids = np.where(np.asarray(ids) < 0, tokenizer.pad_token_id, ids)
    return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def build_compute_metrics(
    tokenizer: Any, *, references: Sequence[str] | None = None, n_bootstrap: int = 1000, seed: int = 0
) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for `Seq2SeqTrainer(predict_with_generate=True)`: ROUGE with CIs plus `gen_len`.

    Predictions and labels (B, T) may hold -100 (padding added by the Trainer); it is replaced by the pad id
    before decoding. Scores against `references` (untruncated texts in dataset order) when given, else against
    the decoded labels. `gen_len` is the mean number of non-pad tokens per prediction.
    """
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError(
            "the tokenizer has no pad token; set tokenizer.pad_token before building compute_metrics"
        )

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        predictions = np.asarray(predictions)
        if predictions.ndim != 2:
            raise ValueError(
                f"expected generated token ids of shape (batch, length), got shape {predictions.shape}; "
                "set predict_with_generate=True in Seq2SeqTrainingArguments"
            )
        predictions = np.where(predictions < 0, pad_id, predictions)
        if references is None:
            targets = decode_ids(tokenizer, eval_prediction.label_ids)
        else:
            targets = list(references)
        decoded = decode_ids(tokenizer, predictions)
        result = rouge_with_ci(decoded, targets, n_bootstrap=n_bootstrap, seed=seed)
        result["gen_len"] = float(np.mean(np.count_nonzero(predictions != pad_id, axis=1)))
        return result

    return compute_metrics


METRIC_MODULE_PATH = Path(__file__).resolve().parent / "metrics_rouge_ci"


def load_rouge_metric(**kwargs: Any) -> Any:
    """`evaluate.load` of the bundled ROUGE-with-CI module, by local path (never touches the Hub)."""
    import evaluate

    return evaluate.load(str(METRIC_MODULE_PATH), **kwargs)
