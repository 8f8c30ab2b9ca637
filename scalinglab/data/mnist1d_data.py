"""MNIST-1D (Greydanus 2020), generated locally with the `mnist1d` package's own generator.

One generator call makes pool + dev + test together, so the three share the generator's
normalisation and are disjoint by construction (different draws); the split is by position.
The generator's options (noise, shear, padding, ...) can be changed per study: the auxiliary-data
study uses that to make a second, visibly different distribution.
"""

from __future__ import annotations

import numpy as np

from scalinglab.data.registry import Dataset, register

# The mnist1d defaults (mnist1d.data.get_dataset_args), minus the download URL.
_GENERATOR_DEFAULTS = {
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
}
DEFAULTS = {"n_train": 16000, "n_dev": 2000, "n_test": 2000, "seed": 42, **_GENERATOR_DEFAULTS}


def _pool_size(n_train, **_):
    return n_train


@register(
    "mnist1d",
    defaults=DEFAULTS,
    pool_size=_pool_size,
    doc="MNIST-1D: 10 classes of 1-D signals of length 40, generated locally",
)
def make_mnist1d(n_train, n_dev, n_test, seed, **gen) -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    for k, v in gen.items():
        setattr(args, k, v)
    total = n_train + n_dev + n_test
    # make_dataset makes num_samples // 10 per class; round up and drop the excess after shuffling.
    args.num_samples = int(np.ceil(total / 10) * 10)
    args.train_split = 1.0
    args.seed = seed
    d = make_dataset(args)
    x = d["x"].astype(np.float32)[:total]
    y = d["y"].astype(np.int64)[:total]
    a, b = n_train, n_train + n_dev
    return Dataset(
        x[:a],
        y[:a],
        x[a:b],
        y[a:b],
        x[b:],
        y[b:],
        n_classes=10,
        meta={"source": "mnist1d generator", "options": {"seed": seed, **gen}},
    )
