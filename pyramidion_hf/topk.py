"""The top-k operators' public import path (``from pyramidion_hf.topk import successive_halving_topk``).

They live in :mod:`pyramidion_hf.modeling.topk`, the remote code that travels with every saved model."""

from .modeling.topk import (
    TOPK_OPERATORS,
    TopKOutput,
    hard_topk,
    iterative_softmax_topk,
    successive_halving_topk,
)

__all__ = ["TOPK_OPERATORS", "TopKOutput", "hard_topk", "iterative_softmax_topk", "successive_halving_topk"]
