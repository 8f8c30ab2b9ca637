"""From trials to learning-curve points (Hestness et al. step 4).

A candidate (one model config at one data size) scores the **median over seeds of the minimum dev
error**; the best-fit model of a data size is the candidate with the lowest score among those trained
with all seeds, ties going to the smaller model.
"""

from __future__ import annotations

import json

import pandas as pd

from scalinglab.fmt import finite


def candidate_scores(df: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate (data size x config): median/min/max over seeds of min dev error.

    A rung's trial (a partial budget of successive halving, search/halving.py) is no candidate."""
    ok = df[df["status"] == "ok"]
    if "tag_stage" in ok:
        ok = ok[ok["tag_stage"] != "rung"]
    if ok.empty:
        return pd.DataFrame(columns=["data_size", "config", "error", "n_seeds", "params"])
    g = ok.groupby(["data_size", "config"], sort=True)
    return g.agg(
        error=("min_dev_error", "median"),
        error_lo=("min_dev_error", "min"),
        error_hi=("min_dev_error", "max"),
        n_seeds=("min_dev_error", "size"),
        params=("params", "first"),
        model_size=("model_size", "first"),
        lr=("lr", "first"),
        weight_decay=("weight_decay", "first"),
        train_error=("final_train_error", "median"),
        test_error=("test_error", "median"),
        seed_errors=("min_dev_error", lambda s: [float(v) for v in s]),
    ).reset_index()


def best_points(df: pd.DataFrame, min_seeds: int | None = None) -> pd.DataFrame:
    """Per data size, the best candidate: lowest median error among candidates with the most seeds
    (at least `min_seeds` when any has that many), ties to fewer parameters."""
    cand = candidate_scores(df)
    if cand.empty:
        return cand
    rows = []
    for _, c in cand.groupby("data_size", sort=True):
        need = min(min_seeds or c["n_seeds"].max(), c["n_seeds"].max())
        rows.append(c[c["n_seeds"] >= need].sort_values(["error", "params"]).iloc[0])
    best = pd.DataFrame(rows).reset_index(drop=True)
    best["model_size"] = best["model_size"].map(lambda s: json.loads(s) if isinstance(s, str) else s)
    return best


def points_list(best: pd.DataFrame) -> list[dict]:
    return [
        {
            "data_size": int(r.data_size),
            "model_size": r.model_size,
            "params": None if r.params is None or r.params != r.params else int(r.params),
            "lr": float(r.lr),
            "weight_decay": float(r.weight_decay),
            "error": float(r.error),
            "error_lo": float(r.error_lo),
            "error_hi": float(r.error_hi),
            "n_seeds": int(r.n_seeds),
            "seed_errors": sorted(float(v) for v in r.seed_errors),
            "train_error": finite(r.train_error),
            "test_error": finite(r.test_error),
        }
        for r in best.itertuples()
    ]
