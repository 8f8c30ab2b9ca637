"""Teacher-student task with a known Bayes error.

Inputs x ~ N(0, I_d). A fixed random teacher network (one hidden tanh layer) labels each input with
the argmax of its outputs; then with probability `noise` the label is replaced by a uniformly chosen
*other* class. The teacher's own labelling is then the Bayes classifier and its error is exactly
`noise`: the floor a study on this data should find.
"""

from __future__ import annotations

import numpy as np

from scalinglab.data.registry import Dataset, register

DEFAULTS = {
    "n_train": 16000,
    "n_dev": 4000,
    "n_test": 4000,
    "dim": 16,
    "hidden": 32,
    "n_classes": 4,
    "noise": 0.1,
    "seed": 0,
}


def _pool_size(n_train, n_classes, noise, dim, hidden, **_):
    if n_classes < 2 or dim < 1 or hidden < 1:
        raise ValueError(f"n_classes (given {n_classes}) must be >= 2, dim ({dim}) and hidden ({hidden}) >= 1")
    if not 0 <= noise < 1 - 1 / n_classes:
        raise ValueError(f"noise: given {noise}; allowed: [0, {1 - 1 / n_classes:.3f}) for {n_classes} classes")
    return n_train


@register(
    "teacher",
    defaults=DEFAULTS,
    pool_size=_pool_size,
    doc="synthetic teacher network labels with a planted label-noise rate (Bayes error known)",
)
def make_teacher(n_train, n_dev, n_test, dim, hidden, n_classes, noise, seed) -> Dataset:
    if not 0 <= noise < 1 - 1 / n_classes:
        raise ValueError(f"teacher noise must lie in [0, {1 - 1 / n_classes:.3f}), got {noise}")
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(dim, hidden)) / np.sqrt(dim)
    w2 = rng.normal(size=(hidden, n_classes)) / np.sqrt(hidden)
    total = n_train + n_dev + n_test
    x = rng.normal(size=(total, dim))
    clean = np.argmax(np.tanh(x @ w1 * 2.0) @ w2, axis=1)
    flip = rng.random(total) < noise
    other = (clean + rng.integers(1, n_classes, size=total)) % n_classes  # uniform over the other classes
    y = np.where(flip, other, clean)
    a, b = n_train, n_train + n_dev
    x = x.astype(np.float32)
    y = y.astype(np.int64)
    return Dataset(
        x[:a],
        y[:a],
        x[a:b],
        y[a:b],
        x[b:],
        y[b:],
        n_classes=n_classes,
        meta={
            "bayes_error": float(noise),
            "source": "teacher network",
            "clean_label_counts": np.bincount(clean, minlength=n_classes).tolist(),
        },
    )
