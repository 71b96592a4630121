"""Everything that makes a trained model: data loading and features, the tokenizer, ROUGE metrics, and the
reusable parts of ``examples/run_summarization.py``."""
