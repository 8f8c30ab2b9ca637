"""Parity of n input bits: the function that shallow circuits need exponentially many units for.

Inputs are n bits coded as +-1 (float32; bit 1 -> -1), the label is the parity of the number of 1
bits (0 even, 1 odd). Two ways to draw the examples:
- `cube = true` (the default): the train pool is every one of the 2**n inputs once, in a random order,
  and dev and test are the whole cube again. The question is then whether a net of a given size can
  represent and find parity, not whether it generalises from a sample (it does not need to).
- `cube = false`: n_train / n_dev / n_test inputs drawn uniformly at random (with repeats).
`noise` flips each *training* label with that probability; dev and test stay clean, so dev error
measures the function the net learned (a net that memorised every flip scores `noise` on the cube).
"""

from __future__ import annotations

import numpy as np

from scalinglab.data.registry import Dataset, register

DEFAULTS = {"n": 8, "noise": 0.0, "cube": True, "n_train": 4096, "n_dev": 1024, "n_test": 1024, "seed": 0}
MAX_CUBE_BITS = 20  # 2**20 inputs; the cube of 24 bits (16.7M) is beyond a generated set's limit


def _pool_size(n, noise, cube, n_train, **_):
    if not 1 <= n <= (MAX_CUBE_BITS if cube else 62):
        raise ValueError(
            f"n: given {n}; allowed: 1..{MAX_CUBE_BITS if cube else 62} bits" + (" with cube" if cube else "")
        )
    if not 0 <= noise < 0.5:
        raise ValueError(f"noise: given {noise}; allowed: [0, 0.5) (a flip rate; 0.5 erases the labels)")
    return 2**n if cube else n_train


def bits_of(ints: np.ndarray, n: int) -> np.ndarray:
    """(k,) integers -> (k, n) 0/1 bits, least significant first."""
    return ((ints[:, None] >> np.arange(n, dtype=np.int64)) & 1).astype(np.int64)


def parity_of(x: np.ndarray) -> np.ndarray:
    """Labels of +-1 inputs (k, n): 1 where the number of -1 entries is odd."""
    return ((x < 0).sum(axis=1) % 2).astype(np.int64)


@register("parity", defaults=DEFAULTS, pool_size=_pool_size, doc="parity of n +-1 bits (whole cube or sampled)")
def make_parity(n, noise, cube, n_train, n_dev, n_test, seed) -> Dataset:
    _pool_size(n, noise, cube, n_train)
    rng = np.random.default_rng(seed)
    if cube:
        every = np.arange(2**n, dtype=np.int64)
        ints = [rng.permutation(every), rng.permutation(every), rng.permutation(every)]
    else:
        ints = [rng.integers(0, 2**n, size=k, dtype=np.int64) for k in (n_train, n_dev, n_test)]
    xs = [(1 - 2 * bits_of(i, n)).astype(np.float32) for i in ints]
    ys = [parity_of(x) for x in xs]
    flip = rng.random(len(ys[0])) < noise  # training labels only: dev and test score the clean function
    ys[0] = np.where(flip, 1 - ys[0], ys[0])
    return Dataset(
        xs[0],
        ys[0],
        xs[1],
        ys[1],
        xs[2],
        ys[2],
        n_classes=2,
        meta={"source": f"parity of {n} bits", "label_noise": float(noise), "flipped_train": int(flip.sum())},
    )
