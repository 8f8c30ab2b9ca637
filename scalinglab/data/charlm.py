"""Character-level language modelling on the Python standard library's source (offline, deterministic).

Corpus: the top-level `*.py` files of `sysconfig.get_paths()["stdlib"]`, sorted by name (about 170
files, 4.7 MB on CPython 3.11; a different Python version gives a different corpus: meta records it).
Files are assigned by position in that order: every 10th file (index % 10 == 3) is dev, index % 10 == 7
is test, the rest train, so dev and test text comes from files disjoint from the training pool.

Vocabulary (fixed, 97 symbols): newline, the 95 printable ASCII characters, and one "other" symbol for
everything else (tabs, non-ASCII). Examples are non-overlapping windows of `context + 1` characters:
x = window[:-1], y = window[1:] (int64, (n, context)): each example predicts `context` characters.

The study metric is dev cross-entropy in bits per character (meta["metric"] = "bits", which run_trial
honours); random guessing scores log2(97) = 6.60 bits. Data sizes count examples (windows); summary.json
records `data_unit` and `chars_per_example` so sizes convert to characters (x context), and a power law
in examples has the same exponent in characters.
"""

from __future__ import annotations

import math
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

import numpy as np

from scalinglab.data.registry import Dataset, register

VOCAB = "\n" + "".join(chr(i) for i in range(32, 127))  # id 96 = other
V = len(VOCAB) + 1
DEFAULTS = {"context": 32, "n_train": 8192, "n_dev": 256, "n_test": 256}


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    """byte -> symbol id; every byte outside the vocabulary (tab, >= 128) -> other."""
    t = np.full(256, V - 1, dtype=np.int64)
    for i, c in enumerate(VOCAB):
        t[ord(c)] = i
    return t


def corpus_files() -> list[Path]:
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


def encode(text: str) -> np.ndarray:
    """Symbol ids of `text` (one per character; any non-ASCII character -> other)."""
    if not text.isascii():
        text = "".join(c if ord(c) < 128 else "\x80" for c in text)
    return _table()[np.frombuffer(text.encode("ascii" if text.isascii() else "latin-1"), dtype=np.uint8)]


def decode(ids) -> str:
    return "".join(VOCAB[i] if i < len(VOCAB) else "\ufffd" for i in np.asarray(ids).ravel())


def _split_ids(part: int) -> np.ndarray:
    """Ids of the train (0), dev (1) or test (2) files, joined by newlines."""
    files = [f for i, f in enumerate(corpus_files()) if {3: 1, 7: 2}.get(i % 10, 0) == part]
    return encode("\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files))


def _windows(ids: np.ndarray, context: int, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    w = context + 1
    have = len(ids) // w
    if n > have:
        raise ValueError(f"charlm: {what} needs {n} windows of {w} characters; the corpus part has {have}")
    win = ids[: have * w].reshape(have, w)[:n]
    return np.ascontiguousarray(win[:, :-1]), np.ascontiguousarray(win[:, 1:])


def _pool_size(n_train, context, **_):
    if context < 1:
        raise ValueError(f"context: given {context}; allowed: at least 1 character")
    return n_train


@register(
    "charlm",
    defaults=DEFAULTS,
    pool_size=_pool_size,
    doc="next-character prediction on the Python standard library's source; metric: bits/char",
)
def make_charlm(context, n_train, n_dev, n_test) -> Dataset:
    if context < 1:
        raise ValueError(f"charlm: context must be at least 1, got {context}")
    x, y = _windows(_split_ids(0), context, n_train, "n_train")
    xd, yd = _windows(_split_ids(1), context, n_dev, "n_dev")
    xt, yt = _windows(_split_ids(2), context, n_test, "n_test")
    return Dataset(
        x,
        y,
        xd,
        yd,
        xt,
        yt,
        n_classes=V,
        meta={
            "metric": "bits",
            "random_guess_error": math.log2(V),
            "data_unit": "characters",
            "chars_per_example": context,
            "vocab_size": V,
            "source": f"Python {sys.version.split()[0]} stdlib *.py, sorted; dev/test files disjoint",
        },
    )
