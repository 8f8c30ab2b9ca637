"""From trials to learning-curve points (Hestness et al. step 4).

A candidate (one model config at one data size) scores the **median over seeds of the minimum dev
error**; the best-fit model of a data size is the candidate with the lowest score, ties going to the
smaller model.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd


def candidate_scores(df: pd.DataFrame, by: tuple[str, ...] = ("data_size", "model_size")) -> pd.DataFrame:
    """One row per candidate: median/min/max over seeds of min dev error, and the seed count."""
    ok = df[df["status"] == "ok"]
    if "config_key" in ok.columns:
        by = tuple(dict.fromkeys((*by, "config_key")))
    g = ok.groupby(list(by), sort=True)
    out = g.agg(error=("min_dev_error", "median"), error_lo=("min_dev_error", "min"),
                error_hi=("min_dev_error", "max"), n_seeds=("min_dev_error", "size"),
                params=("params", "first"), train_error=("final_train_error", "median"),
                test_error=("test_error", "median"),
                seed_errors=("min_dev_error", lambda s: list(map(float, s)))).reset_index()
    return out


def best_points(df: pd.DataFrame) -> pd.DataFrame:
    """Per data size, the best candidate (lowest median error; ties to fewer parameters)."""
    cand = candidate_scores(df)
    if cand.empty:
        return cand
    cand = cand.sort_values(["data_size", "error", "params"])
    best = cand.groupby("data_size", sort=True).head(1).reset_index(drop=True)
    best["model_size"] = best["model_size"].map(lambda s: json.loads(s) if isinstance(s, str) else s)
    return best


def points_list(best: pd.DataFrame) -> list[dict]:
    return [{"data_size": int(r.data_size), "model_size": r.model_size, "params": int(r.params),
             "error": float(r.error), "error_lo": float(r.error_lo), "error_hi": float(r.error_hi),
             "n_seeds": int(r.n_seeds), "seed_errors": [float(v) for v in r.seed_errors]}
            for r in best.itertuples()]
