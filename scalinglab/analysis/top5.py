"""The top-5 learning curve (Hestness et al. 2017 report ImageNet top-1 and top-5 exponents, -0.309 and
-0.488): the best-fit trials of each data size are chosen on top-1 error as everywhere else; their
`min_dev_top5_error` (in the result JSON, train/trial.py) gives the points, fitted by the same
`fit_learning_curve`. Only for studies whose trials stored top-5 error.
"""

from __future__ import annotations

import json

import numpy as np


def top5_points(df, best) -> list[dict]:
    """One point per best-fit candidate (rows of `best_points`): the median over its seeds' top-5
    errors. df: the study's frame with its result JSON (`store.frame(study, with_json=True)`)."""
    ok = df[df["status"] == "ok"]
    top5 = ok["result"].map(lambda r: json.loads(r).get("min_dev_top5_error"))
    out = []
    for b in best.itertuples():
        vals = top5[(ok["data_size"] == b.data_size) & (ok["config"] == b.config)].dropna()
        if len(vals):
            seed_errors = sorted(float(v) for v in vals)
            out.append(
                {
                    "data_size": int(b.data_size),
                    "error": float(np.median(seed_errors)),
                    "n_seeds": len(seed_errors),
                    "seed_errors": seed_errors,
                }
            )
    return out


def top5_section(store, study: str, seeds, n_classes: int, form: str) -> dict | None:
    """{"points", "learning_curve"} of the top-5 error, or None when no trial stored it. Random
    guessing misses the top 5 with probability 1 - 5/K."""
    from scalinglab.analysis.points import best_points
    from scalinglab.analysis.summary import fit_learning_curve, law_dict

    df = store.frame(study, with_json=True)
    if not len(df):
        return None
    pts = top5_points(df, best_points(df, seeds))
    if not pts:
        return None
    out = {"random_guess_error": 1 - 5 / n_classes, "points": pts, "learning_curve": None}
    if len(pts) >= 4:
        lc = fit_learning_curve(pts, y0=out["random_guess_error"], form=form)
        out["learning_curve"] = law_dict(lc, pts[-1]["data_size"])
    return out
