"""The `evaluate` module `metrics_rouge_ci`: `load_rouge_metric()` or `evaluate.load(str(METRIC_MODULE_PATH))`
(both in `pyramidion_hf.training.metrics`) load it by path from any directory."""
