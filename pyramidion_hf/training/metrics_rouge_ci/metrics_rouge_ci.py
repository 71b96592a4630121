"""`evaluate` metric module: ROUGE-1/2/L/Lsum F1 (0-100) with 95 % bootstrap confidence intervals, offline.

Load it by path, which never touches the Hub and works from any directory:
`pyramidion_hf.training.metrics.load_rouge_metric()`, or
`evaluate.load(str(pyramidion_hf.training.metrics.METRIC_MODULE_PATH))` (the installed folder of this file).
It wraps `pyramidion_hf.training.metrics.rouge_with_ci`.
"""

import datasets
import evaluate

from pyramidion_hf.training.metrics import rouge_with_ci

_CITATION = """\
@inproceedings{lin-2004-rouge,
  title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
  author = "Lin, Chin-Yew",
  booktitle = "Text Summarization Branches Out",
  year = "2004",
  publisher = "Association for Computational Linguistics",
}
"""

_DESCRIPTION = """\
ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum F1 (rouge_score, Porter stemming) on a 0-100 scale, each with a
bootstrap confidence interval of the mean (rouge_score's BootstrapAggregator, seeded locally). Sentences are
split by deterministic rules before scoring (ROUGE-Lsum needs them; no NLTK data is required).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated summaries (str).
    references: list of reference summaries (str), one per prediction.
    n_bootstrap: number of bootstrap resamples (default 1000).
    seed: seed of the bootstrap (default 0); numpy's global RNG is restored afterwards.
    confidence: width of the interval (default 0.95).
Returns:
    dict with rouge1, rouge1_low, rouge1_high, rouge2, ..., rougeLsum_high (floats, 0-100); the point value is
    the mean over examples.
Examples:
    >>> from pyramidion_hf.training.metrics import METRIC_MODULE_PATH
    >>> metric = evaluate.load(str(METRIC_MODULE_PATH))
    >>> scores = metric.compute(predictions=["the cat sat"], references=["the cat sat down"])
    >>> round(scores["rouge1"], 1)
    85.7
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MetricsRougeCi(evaluate.Metric):
    """ROUGE with bootstrap confidence intervals (see the module docstring)."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            reference_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
        )

    def _compute(
        self, predictions, references, n_bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95
    ) -> dict[str, float]:
        return rouge_with_ci(
            list(predictions), list(references), n_bootstrap=n_bootstrap, seed=seed, confidence=confidence
        )
