"""Looking inside a model: which tokens survive pooling (``explain``); the ablation's selection task."""
