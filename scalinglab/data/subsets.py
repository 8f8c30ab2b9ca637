"""Nested, class-stratified training subsets (Hestness et al. step 1).

Every subset is a prefix of one fixed permutation of the train pool, so each smaller subset is
contained in each larger one (as scikit-learn's `learning_curve` takes `train[:n]`). The permutation
interleaves the classes so that every prefix holds them in the pool's proportions (within one example).
"""

from __future__ import annotations

import math

import numpy as np


def stratified_order(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """A permutation of `range(len(y))` whose every prefix is class-stratified.

    Each example gets the key (rank within its class + u) / class count, u ~ U(0,1) random; sorting
    by the key spreads each class evenly along the order, in proportion to its frequency.
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if y.ndim != 1:  # sequence targets (charlm: one label per position): no classes to stratify
        return rng.permutation(len(y))
    keys = np.empty(len(y), dtype=np.float64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = rng.permutation(idx)
        keys[idx] = (np.arange(len(idx)) + rng.random(len(idx))) / len(idx)
    return np.argsort(keys, kind="stable")


def nested_sizes(min_size: int, max_size: int, factor: float = 2.0) -> list[int]:
    """Sizes from `min_size` to `max_size` spaced by `factor` (the last one is `max_size` itself)."""
    n_steps = max(1, round(math.log(max_size / min_size) / math.log(factor)))
    sizes = [round(min_size * (max_size / min_size) ** (i / n_steps)) for i in range(n_steps + 1)]
    return sorted(set(sizes))
