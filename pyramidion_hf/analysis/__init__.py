"""Looking inside a model: which tokens survive pooling (``explain``) and the selection task of the ablation."""
