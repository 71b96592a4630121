"""The `evaluate` module `metrics_rouge_ci` (load it by path: `evaluate.load(<this folder>)`)."""
