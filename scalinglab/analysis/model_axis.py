"""The model axis: every candidate (data size x model size), not only the best one per subset.

The learning curve of best-fit points answers "what does more data buy?" only while the model grid has
room: when the largest model tried is the best one at the largest data sizes, that curve flattens at
the grid's capacity, and its "floor" is not an irreducible error. So the joint law

    L(N, m) = E + A / N**alpha + B / m**beta        (fit/joint.py; N parameters, m examples)

is fitted on every candidate's score (median over seeds of the minimum dev error, weighted by its
seeds) and answers two questions apart:
  (a) the error at data m with the largest model tried, L(N_max, m), which flattens at the grid's
      capacity floor E + A / N_max**alpha;
  (b) the error at data m with the model grown along the model-size law s(m), L(s(m), m) (Hestness).
      When the grid caps the curve, s(m) cannot see past the grid (the best model is always the
      largest), so the model is grown by the joint law instead: just large enough that its capacity
      term A / N**alpha stays at GROW_SHARE of the data term B / m**beta, N(m) ~ m**(beta / alpha).
The joint form has no small-data plateau, so candidates in the small-data region (below the floor
fit's `small_data_end`, or within 10% of the random-guess error) are left out. The grid caps the curve
when the best model at the largest data size is the largest tried and the capacity term A / N_max**alpha
is at least CAP_SHARE of the grid's capacity floor: then the floor a learning curve of best points
flattens to is largely the grid's, and a larger model would lower it.
"""

from __future__ import annotations

import numpy as np

from scalinglab.fmt import jsonable

MIN_MODEL_SIZES = 3  # distinct parameter counts needed to fit the N term at all
MIN_DATA_SIZES = 4
N_BOOT = 40  # bootstrap refits (each warm-started: tens of ms on a candidate table)
CAP_SHARE = 0.25
GROW_SHARE = 0.1
# alpha near 0 (a capacity term that barely falls with N): no finite model size brings it down
NO_SIZE = "no finite model size: the joint law's capacity term barely falls with N (alpha near 0)"


def model_axis(cands, points: list[dict], floor: dict | None, *, y0: float | None, size_fit, factors) -> dict | None:
    """summary.json's `model_axis` (None when the grid has too few model or data sizes to fit it).

    cands: `candidate_scores` of the study's trials; points: its best-fit points; floor: summary's floor
    dict (for the small-data boundary); size_fit: the model-size law's CurveFit (or None); factors:
    the multiples of the largest data size to predict at."""
    from scalinglab.fit import fit_joint

    c = cands[cands["params"].notna() & (cands["error"] > 0)]
    small_end = (floor or {}).get("small_data_end")
    if small_end:
        c = c[c["data_size"] >= small_end]
    if y0:
        c = c[c["error"] < 0.9 * y0]
    if c["params"].nunique() < MIN_MODEL_SIZES or c["data_size"].nunique() < MIN_DATA_SIZES or len(c) < 6:
        return None
    N, D, L = (c[k].to_numpy(float) for k in ("params", "data_size", "error"))
    fit = fit_joint(N, D, L, weights=c["n_seeds"].to_numpy(float), n_boot=N_BOOT)
    n_max, m_max = float(N.max()), float(points[-1]["data_size"])
    e, a, al = (fit._th_boot[:, i] for i in range(3))  # fit space: log E, log A, alpha (fit/joint.py)
    cap_boot = np.exp(e) + np.exp(a) / n_max**al
    q = (1 - fit.interval) / 2

    def ci(v):
        return [float(np.quantile(v, q)), float(np.quantile(v, 1 - q))]

    p = fit.params
    cap_term = p["A"] / n_max ** p["alpha"]
    at_largest = float(fit.predict(n_max, m_max))
    best_is_largest = points[-1].get("params") is not None and points[-1]["params"] >= n_max
    capped = bool(best_is_largest and cap_term >= CAP_SHARE * (p["E"] + cap_term))
    rule = "joint law" if capped or size_fit is None else "model-size law"
    preds = []
    for f in factors:
        m = m_max * f
        s = grown_params(p, m, None if capped else size_fit)
        grown = {"params": s, **_pred(fit, s, m)} if np.isfinite(s) else {"params": None, "note": NO_SIZE}
        preds.append({"data_size": int(m), "largest_model": _pred(fit, n_max, m), "grown": grown})
    return jsonable(
        {
            "form": "E + A/N^alpha + B/m^beta",
            "params": p,
            "ci": {k: list(v) for k, v in fit.ci.items()},
            "converged": fit.converged,
            "n_candidates": len(c),
            "left_out_below": small_end,
            "largest_model_params": n_max,
            "capacity_floor": {"value": float(p["E"] + cap_term), "ci": ci(cap_boot)},
            "irreducible": {"value": float(p["E"]), "ci": list(fit.ci["E"])},
            "capacity_share_of_floor": float(cap_term / (p["E"] + cap_term)),
            "capacity_share_at_largest": float(cap_term / at_largest),
            "capped": capped,
            "grown_by": rule,
            "predictions": preds,
        }
    )


def _pred(fit, n: float, m: float) -> dict:
    pr = fit.predict(np.array([n]), np.array([m]), interval=fit.interval)
    return {"value": float(pr["y"][0]), "lo": float(pr["lo"][0]), "hi": float(pr["hi"][0])}


def grown_params(p: dict, m, size_fit=None):
    """The model size at data m: the model-size law's s(m), or (size_fit None) the joint law's N(m)
    whose capacity term is GROW_SHARE of the data term. p: the joint law's parameters."""
    m = np.asarray(m, float)
    if size_fit is not None:
        return size_fit.predict(m) if m.ndim else float(size_fit.predict(m[None])[0])
    with np.errstate(over="ignore"):  # inf: see NO_SIZE
        n = (p["A"] / (GROW_SHARE * p["B"] / m ** p["beta"])) ** (1 / max(p["alpha"], 1e-9))
    return n if m.ndim else float(n)


def params_for(axis: dict, target: float, data_size: float) -> float | None:
    """Parameters the joint law needs to reach `target` at `data_size` (None if no size does:
    E + B / m**beta is already above the target)."""
    p = axis["params"]
    rest = target - p["E"] - p["B"] / data_size ** p["beta"]
    if rest <= 0:
        return None
    return float((p["A"] / rest) ** (1 / p["alpha"])) if p["alpha"] > 0 else None
