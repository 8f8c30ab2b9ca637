"""scikit-learn's bundled 8x8 digits (1,797 real images): a small real data set that needs no download."""

from __future__ import annotations

import numpy as np

from scalinglab.data.registry import Dataset, register
from scalinglab.data.subsets import stratified_order

DEFAULTS = {"n_dev": 300, "n_test": 300, "seed": 0}
_TOTAL = 1797


def _pool_size(n_dev, n_test, **_):
    return _TOTAL - n_dev - n_test


@register(
    "digits",
    defaults=DEFAULTS,
    pool_size=_pool_size,
    doc="scikit-learn's 8x8 handwritten digits: 1,797 real images, 10 classes",
)
def make_digits(n_dev, n_test, seed) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)  # pixel values 0..16 -> 0..1
    y = d.target.astype(np.int64)
    # Stratified order, so dev and test hold every class in proportion.
    order = stratified_order(y, seed)
    x, y = x[order], y[order]
    t, dv = n_test, n_test + n_dev
    return Dataset(
        x[dv:], y[dv:], x[t:dv], y[t:dv], x[:t], y[:t], n_classes=10, meta={"source": "sklearn.datasets.load_digits"}
    )
