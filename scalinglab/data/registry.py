"""Registry of data sets. Each entry makes train pool / dev / test arrays from plain options.

A data set is registered with a function `make(**options) -> Dataset`, a function
`pool_size(**options) -> int` (so a study's size range is checked before anything is generated or
written) and the options it accepts with their defaults (so unknown options are refused by name).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError
from scalinglab.files import write_atomic


@dataclasses.dataclass
class Dataset:
    """Arrays of one data set. x_*: float32 (n, ...) ; y_*: int64 (n,) class labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_dev: np.ndarray
    y_dev: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    # Known facts about the data, e.g. {"bayes_error": 0.1} for a planted label-noise rate.
    meta: dict = dataclasses.field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def random_guess_error(self) -> float:
        """Error of guessing: 1 - 1/K for an error rate; a data set on another metric sets it in meta
        (charlm: log2 of the vocabulary size, the bits per character of a uniform guess)."""
        return float(self.meta.get("random_guess_error", 1.0 - 1.0 / self.n_classes))

    @property
    def metric(self) -> str:
        """ "error" (error rate, the default) or "bits" (cross-entropy in bits per predicted symbol)."""
        return self.meta.get("metric", "error")


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    name: str
    make: Callable[..., Dataset]
    pool_size: Callable[..., int]
    defaults: dict
    doc: str
    # options -> a short string that changes when the data behind the options change (user files:
    # size + mtime); part of the cache key, so an edited file is never served from a stale cache.
    fingerprint: Callable[..., str] | None = None


DATASETS: dict[str, DatasetEntry] = {}


def register(
    name: str,
    *,
    defaults: dict,
    pool_size: Callable[..., int],
    doc: str = "",
    fingerprint: Callable[..., str] | None = None,
):
    """Decorator: register `make(**options)` under `name`. Registering a name twice is an error."""

    def deco(make):
        if name in DATASETS:
            raise ValueError(f"data set {name!r} is registered twice")
        DATASETS[name] = DatasetEntry(name, make, pool_size, dict(defaults), doc, fingerprint)
        return make

    return deco


def _entry(name: str, where: str = "study") -> DatasetEntry:
    if name not in DATASETS:
        raise UserError(f"{where}: data.name: given {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def resolve_options(name: str, options: dict, where: str = "study") -> dict:
    """Defaults merged with the given options; unknown options are refused by name."""
    entry = _entry(name, where)
    unknown = sorted(set(options) - set(entry.defaults))
    if unknown:
        raise UserError(
            f"{where}: data.options.{unknown[0]}: given {options[unknown[0]]!r}; allowed options for "
            f"{name!r}: {', '.join(sorted(entry.defaults)) or '(none)'}"
        )
    for k, v in options.items():
        _check_option(name, k, v, entry.defaults[k], where)
    return {**entry.defaults, **options}


MAX_EXAMPLES = 10_000_000  # a generated set's n_train / n_dev / n_test (1e10 hung generating data)


def _check_option(name: str, key: str, v, default, where: str) -> None:
    """A given option has its default's type: n_train = "abc", -5 or 1e10 is refused by name."""
    from scalinglab.errors import bad_value

    field = f"data.options.{key}"
    is_int = isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, bool):
        if not isinstance(v, bool):
            raise bad_value(where, field, v, "true or false")
    elif isinstance(default, int):
        if key.startswith("n_") and not (is_int and 1 <= v <= MAX_EXAMPLES):
            raise bad_value(where, field, v, f"a whole number of examples, 1 to {MAX_EXAMPLES:,}")
        if not is_int or v < 0:
            raise bad_value(where, field, v, "an integer >= 0")
    elif isinstance(default, float):
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
            raise bad_value(where, field, v, "a finite number")
    elif isinstance(default, (str, list, tuple)) and not isinstance(v, type(default)):
        raise bad_value(where, field, v, f"a {type(default).__name__} like {default!r}")


def pool_size(name: str, options: dict, where: str = "study") -> int:
    """The train pool's size; a data set's pool_size may raise ValueError for options that cannot
    work together (teacher noise above the guessing rate), reported as one line here."""
    from scalinglab.errors import UserError

    try:
        return int(_entry(name, where).pool_size(**resolve_options(name, options, where)))
    except ValueError as e:
        raise UserError(f"{where}: data.options: {e}") from None


# Generated arrays are cached per process (a study loads the same data for every trial) and on disk
# (generation of MNIST-1D takes seconds), keyed by name and options.
_MEMO: dict[str, Dataset] = {}


def cache_dir() -> Path:
    return Path(os.environ.get("SCALINGLAB_CACHE", Path.home() / ".cache" / "scalinglab"))


def _key(name: str, options: dict) -> str:
    fp = DATASETS[name].fingerprint
    blob = json.dumps(
        {"name": name, "options": options, **({"fingerprint": fp(**options)} if fp else {})}, sort_keys=True
    )
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def load(name: str, options: dict | None = None, *, where: str = "study") -> Dataset:
    options = resolve_options(name, options or {}, where)
    key = _key(name, options)
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir() / f"{key}.npz"
    ds = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                ds = Dataset(
                    **{k: z[k] for k in ("x_train", "y_train", "x_dev", "y_dev", "x_test", "y_test")},
                    n_classes=int(z["n_classes"]),
                    meta=meta,
                )
        except Exception:  # a torn cache file from a killed run: regenerate
            ds = None
    if ds is None:
        ds = DATASETS[name].make(**options)
        arrays = {k: getattr(ds, k) for k in ("x_train", "y_train", "x_dev", "y_dev", "x_test", "y_test")}
        try:  # the disk cache only saves time: a read-only or full cache folder is not an error
            path.parent.mkdir(parents=True, exist_ok=True)
            # whole or not at all: concurrent workers never read a half-written file
            write_atomic(path, lambda tmp: np.savez(tmp, **arrays, n_classes=ds.n_classes, meta=json.dumps(ds.meta)))
        except OSError:
            pass  # (write_atomic leaves no temporary file behind)
    _MEMO[key] = ds
    return ds
