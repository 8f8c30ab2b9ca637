"""Translation of numbers written out in words, e.g. English -> French, made by `num2words` (offline).

Hestness et al.'s NMT domain in miniature: a real, rule-governed language pair ("nine hundred and
ninety-one thousand and seventy-one" -> "neuf cent quatre-vingt-onze mille soixante et onze") whose
target is not a word-for-word copy (French's vigesimal 70-99, "et un", agreement of "cent"/"mille";
English's "and"), generated for any number below `max_number` (10^6 by default: up to 10^6 pairs).

Split: `n_dev + n_test + n_train` distinct numbers are drawn without replacement from
range(max_number) with `seed`; dev first, then test, then the training pool. No number of dev or test
is ever in training (the test checks it), so the curve measures generalisation to unseen numbers.

Tokens: words and hyphens (a hyphen is its own token, so "quatre-vingt-dix" is the three words it is
built from and their joins), commas dropped, lower case. One vocabulary for both languages (ids 0-2:
<pad>, <bos>, <eos>), sorted, made from the drawn pairs.

Arrays (int64): x (n, 2, L): row 0 the source + <eos>, padded on the *left* with <pad> (the encoder's
last state then follows the last word), row 1 <bos> + target (the decoder's teacher-forced input),
padded on the right; y (n, L): target + <eos>, padded with -100, which the cross-entropy ignores, so
the metric is a mean over real target tokens only.

Metric: dev cross-entropy in bits per target token (meta "bits"; the paper's NMT learning curve is a
per-token cross-entropy); random guessing scores log2 of the target vocabulary. Greedy decoding's
sequence and token accuracy are stored beside it (models/seq2seq.py `decode_metrics`).
"""

from __future__ import annotations

import math

import numpy as np

from scalinglab.data.registry import Dataset, register

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
IGNORE = -100  # F.cross_entropy's default ignore_index: padding positions of y
DEFAULTS = {
    "src": "en",
    "tgt": "fr",
    "n_train": 32768,
    "n_dev": 1024,
    "n_test": 1024,
    "max_number": 1_000_000,
    "seed": 0,
}


def _num2words():
    try:
        from num2words import num2words
    except ImportError:
        raise ValueError(
            "translation: needs the Python package num2words (pip install num2words, or scripts/setup.sh)"
        ) from None
    return num2words


def tokens(n: int, lang: str) -> list[str]:
    """The words of number n in language lang, hyphens as tokens, commas dropped."""
    text = _num2words()(int(n), lang=lang).lower().replace(",", " ").replace("-", " - ")
    return text.split()


def draw_numbers(n_train: int, n_dev: int, n_test: int, max_number: int, seed: int) -> dict[str, np.ndarray]:
    """Disjoint sets of numbers: {"train", "dev", "test"} (drawn without replacement)."""
    rng = np.random.default_rng(seed)
    nums = rng.choice(max_number, n_dev + n_test + n_train, replace=False)
    return {"dev": nums[:n_dev], "test": nums[n_dev : n_dev + n_test], "train": nums[n_dev + n_test :]}


def _pool_size(n_train, n_dev, n_test, max_number, src, tgt, **_):
    f = _num2words()
    for lang in (src, tgt):
        try:
            f(1, lang=lang)
        except NotImplementedError:
            raise ValueError(f"translation: language {lang!r} is not one num2words knows") from None
    if n_train + n_dev + n_test > max_number:
        raise ValueError(
            f"translation: n_train + n_dev + n_test = {n_train + n_dev + n_test:,}; allowed: at most "
            f"max_number = {max_number:,} distinct numbers"
        )
    return n_train


@register(
    "translation",
    defaults=DEFAULTS,
    pool_size=_pool_size,
    doc="numbers in words, one language -> another (num2words); dev numbers unseen; metric: bits/token",
)
def make_translation(src, tgt, n_train, n_dev, n_test, max_number, seed) -> Dataset:
    _pool_size(n_train, n_dev, n_test, max_number, src, tgt)
    parts = draw_numbers(n_train, n_dev, n_test, max_number, seed)
    pairs = {k: [(tokens(n, src), tokens(n, tgt)) for n in v] for k, v in parts.items()}
    words = sorted({w for ps in pairs.values() for s, t in ps for w in s + t})
    vocab = {w: i for i, w in enumerate(SPECIALS + tuple(words))}
    tgt_words = {w for ps in pairs.values() for _, t in ps for w in t}
    L = 1 + max(max(len(s), len(t)) for ps in pairs.values() for s, t in ps)

    def arrays(ps):
        x = np.full((len(ps), 2, L), PAD, np.int64)
        y = np.full((len(ps), L), IGNORE, np.int64)
        for i, (s, t) in enumerate(ps):
            si, ti = [vocab[w] for w in s] + [EOS], [vocab[w] for w in t]
            x[i, 0, L - len(si) :] = si
            x[i, 1, : len(ti) + 1] = [BOS, *ti]
            y[i, : len(ti) + 1] = [*ti, EOS]
        return x, y

    (x, y), (xd, yd), (xt, yt) = arrays(pairs["train"]), arrays(pairs["dev"]), arrays(pairs["test"])
    return Dataset(
        x,
        y,
        xd,
        yd,
        xt,
        yt,
        n_classes=len(vocab),
        meta={
            "metric": "bits",
            "metric_name": "bits per token",
            "random_guess_error": math.log2(len(tgt_words) + 1),  # the target's words and <eos>
            "data_unit": "sentence pairs",
            "vocab": list(vocab),
            "source": f"num2words {src} -> {tgt}, numbers < {max_number:,}; dev/test numbers not in training",
            "tokens_per_example": float((y != IGNORE).sum() / len(y)),
        },
    )
