"""`[data] kind = "indices"`: the user owns the data, scalinglab owns the nested subsets.

The training pool is `pool_size` examples that only the user's trainer can read; a trial gets the
indices of its subset: a prefix of one fixed permutation of `range(pool_size)`, the same for every
data size and seed (so each subset contains the smaller ones, as with the built-in data). With
`stratify = "labels.npy"` (one integer label per pool example) the permutation is class-stratified
like the built-in data's (`subsets.stratified_order`); otherwise it is a seeded random permutation.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from scalinglab.data.subsets import stratified_order
from scalinglab.errors import UserError

NAME = "indices"
OPTIONS = ("pool_size", "stratify", "unit")  # unit: what one example is called ("sentences")


def check_options(options: dict, where: str) -> None:
    """One-line errors for the options of an indices data table (study load time)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(
            f"{where}: data.{unknown[0]}: given {options[unknown[0]]!r}; allowed keys for kind "
            f'"indices": {", ".join(OPTIONS)}'
        )
    n = options.get("pool_size")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise UserError(
            f"{where}: data.pool_size: given {n!r}; allowed: the number of examples in your "
            f"training pool, a positive integer"
        )
    if "unit" in options and (not isinstance(options["unit"], str) or not options["unit"].strip()):
        raise UserError(f'{where}: data.unit: given {options["unit"]!r}; allowed: a name such as "sentences"')
    if "stratify" in options:
        p = options["stratify"]
        if not isinstance(p, str) or not Path(p).is_file():
            raise UserError(
                f"{where}: data.stratify: given {p!r}; allowed: a .npy file of one integer "
                f"label per pool example (no such file)"
            )
        try:
            y = np.load(p, allow_pickle=False)
        except Exception as e:
            raise UserError(
                f"{where}: data.stratify: given {p!r}; allowed: a .npy file of integer labels ({type(e).__name__}: {e})"
            ) from None
        if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
            raise UserError(
                f"{where}: data.stratify: given {p!r} holding {y.dtype} of shape {y.shape}; "
                f"allowed: {n} integer labels (one per pool example, pool_size = {n})"
            )


@lru_cache(maxsize=4)
def _order(options_json: str, split_seed: int) -> np.ndarray:
    o = json.loads(options_json)
    if o.get("stratify"):
        return stratified_order(np.load(o["stratify"], allow_pickle=False), split_seed)
    return np.random.default_rng(split_seed).permutation(int(o["pool_size"]))


def nested_indices(spec_data: dict, n: int) -> np.ndarray:
    """The first n indices of the study's fixed permutation of its pool (int64, read-only)."""
    opts = spec_data.get("options", {})
    order = _order(
        json.dumps({k: opts[k] for k in ("pool_size", "stratify") if k in opts}, sort_keys=True),
        int(spec_data.get("split_seed", 0)),
    )
    out = order[:n]
    out.flags.writeable = False
    return out
