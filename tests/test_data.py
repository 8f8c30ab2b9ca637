import numpy as np
import pytest

from scalinglab.data import load, nested_sizes, stratified_order
from scalinglab.train.trial import subset


def test_nested_sizes():
    assert nested_sizes(16, 8192, 2) == [16 * 2**i for i in range(10)]
    s = nested_sizes(10, 1000, 2)
    assert s[0] == 10 and s[-1] == 1000 and all(1.8 < b / a < 2.2 for a, b in zip(s, s[1:]))


def test_stratified_order_prefixes_are_balanced():
    rng = np.random.default_rng(0)
    y = rng.choice(4, size=4000, p=[0.4, 0.3, 0.2, 0.1])
    order = stratified_order(y, seed=1)
    assert sorted(order) == list(range(len(y)))
    freq = np.bincount(y) / len(y)
    for n in (20, 64, 333, 1000, 4000):
        counts = np.bincount(y[order[:n]], minlength=4)
        assert np.all(np.abs(counts - freq * n) <= 1.0 + 1e-9), (n, counts, freq * n)


@pytest.mark.parametrize(
    "name, options",
    [
        ("teacher", {"n_train": 1000, "n_dev": 200, "n_test": 200}),
        ("digits", {}),
        ("mnist1d", {"n_train": 1000, "n_dev": 200, "n_test": 200}),
    ],
)
def test_datasets_and_nested_subsets(name, options):
    ds = load(name, options)
    assert len(ds.x_train) == len(ds.y_train) and ds.x_dev.shape[1:] == ds.x_train.shape[1:]
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    # dev and test are disjoint from the pool (no identical rows)
    pool = {r.tobytes() for r in ds.x_train}
    assert not any(r.tobytes() in pool for r in ds.x_dev) and not any(r.tobytes() in pool for r in ds.x_test)
    spec = {"name": name, "options": options, "split_seed": 0}
    prev = set()
    for n in (20, 40, 80, 160):
        _, idx = subset(spec, n)
        idx = set(idx.tolist())
        assert len(idx) == n and prev <= idx  # each smaller subset inside each larger one
        prev = idx
    _, idx = subset(spec, 100)
    counts = np.bincount(ds.y_train[idx], minlength=ds.n_classes)
    expected = np.bincount(ds.y_train, minlength=ds.n_classes) / len(ds.y_train) * 100
    assert np.all(np.abs(counts - expected) <= 1.0 + 1e-9)


def test_teacher_bayes_error_is_the_planted_noise():
    ds = load("teacher", {"n_train": 20000, "n_dev": 100, "n_test": 100, "noise": 0.2, "seed": 3})
    assert ds.meta["bayes_error"] == 0.2
    # the clean teacher's labels disagree with the noisy ones at the planted rate
    from scalinglab.data.teacher import make_teacher

    assert ds.random_guess_error == pytest.approx(1 - 1 / ds.n_classes)
    ds0 = make_teacher(20000, 100, 100, 16, 32, 4, 0.0, 3)
    assert np.mean(ds0.y_train != ds.y_train) == pytest.approx(0.2, abs=0.01)
