"""Backtest on the curve's own data: choose the form that extrapolates best, calibrate intervals.

A learning curve is used to extrapolate, so a form is judged by extrapolation, not by in-sample fit
(a flexible form always fits better in sample). We cut the curve at a few points of its log-x range,
fit each form on the smaller part, and score it by RMSLE on the larger part (the metric of
Alabdulmohsin et al. 2022). The same held-out errors calibrate the extrapolation term of the
prediction interval: kappa = how much log error one unit of extrapolation distance adds, taken at
the largest held-out need, times a safety factor.

Choices below were made on the extrapolation benchmark (benchmarks/extrapolation.py, 92 real
curves), so they are tuned to it; the numbers are in that script's docstring:
- `auto` chooses between m4 and bnsl. Both contain pow_c as a special case (a = 0; c1 = 0), and
  letting the backtest pick pow or pow_c from short prefixes chose them too often and doubled the
  median error on image classification. pow_c / pow are used only when the curve has too few
  points to backtest m4 or bnsl.
- kappa = 1.5 x the largest extrapolation slope any held-out point needed: a pooled 90% quantile
  covered only 60-70% of the benchmark's extrapolated points (backtests extrapolate from shorter
  prefixes than the final fit, and errors of one curve are correlated).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from scalinglab.fit.engine import FitError, fit_form, fit_prefixes
from scalinglab.fit.laws import LAWS

CUTS = (0.5, 0.65, 0.8)  # fractions of the log-x range used to fit
AUTO_FORMS = ("m4", "bnsl")  # what form="auto" chooses among ...
FALLBACK_FORMS = ("pow_c", "pow")  # ... unless neither can be backtested on this curve
KAPPA_SAFETY = 1.5
# kappa when the curve has too few points to backtest (fewer than 3 held-out errors): a cautious
# guess, in log-error per fitted log-x range of extrapolation.
KAPPA_PRIOR = 0.3
MIN_HELD = 3


def backtest(x, y, w, forms, *, y0=None, robust=False, interval=0.9):
    """Fit each form on prefixes of the curve and score it on the rest.

    Returns
    -------
    dict form -> {"score": mean held-out RMSLE over cuts or None, "cuts": [...],
                  "calibration": {"kappa", "n_heldout", "source"}}
    """
    lxr = np.log(x / x.min())
    z = norm.ppf(0.5 + interval / 2)
    out = {}
    for name in forms:
        law = LAWS[name]
        cuts, need = [], []
        masks, fracs = [], []
        for f in CUTS:
            m = lxr <= f * lxr[-1] + 1e-12
            if np.unique(x[m]).size <= law.n_free(y0) or m.all() or m.sum() < 4:
                continue
            masks.append(m)
            fracs.append(f)
        if robust:  # the soft-L1 stage is per fit
            cores = []
            for m in masks:
                try:
                    cores.append(fit_form(law, x[m], y[m], w[m], y0, robust))
                except FitError:
                    cores.append(None)
        else:
            cores = fit_prefixes(law, x, y, w, masks, y0)
        for f, m, core in zip(fracs, masks, cores):
            if core is None:
                continue
            xf = x[m]
            with np.errstate(all="ignore"):
                err = law.logf(np.log(x[~m] / core.x_scale), core.th) - np.log(y[~m])
            if not np.all(np.isfinite(err)):
                continue
            width = max(math.log(xf.max() / xf.min()), 1e-12)
            d = np.log(x[~m] / xf.max()) / width
            cuts.append({"cut": f, "n_fit": int(m.sum()), "rmsle": float(np.sqrt(np.mean(err**2)))})
            # extrapolation slope each held-out point needs to be covered, beyond noise
            need.append(np.sqrt(np.maximum(err**2 - (z * core.sigma) ** 2, 0)) / np.maximum(d, 1e-3))
        score = float(np.mean([c["rmsle"] for c in cuts])) if cuts else None
        need = np.concatenate(need) if need else np.array([])
        if need.size >= MIN_HELD:
            kappa, source = KAPPA_SAFETY * float(need.max()), "backtest"
        else:
            kappa, source = KAPPA_PRIOR, "prior (too few points to backtest)"
        out[name] = {
            "score": score,
            "cuts": cuts,
            "calibration": {"kappa": kappa, "n_heldout": int(need.size), "source": source},
        }
    return out


def choose(bt, forms):
    """Forms ordered best first: by backtest score; forms that could not be scored go last."""
    order = {f: i for i, f in enumerate(forms)}
    return sorted(forms, key=lambda f: (bt[f]["score"] is None, bt[f]["score"] or 0.0, order[f]))


def auto_forms(bt_flexible):
    """True when at least one of AUTO_FORMS could be scored, i.e. no fallback is needed."""
    return any(v["score"] is not None for v in bt_flexible.values())
