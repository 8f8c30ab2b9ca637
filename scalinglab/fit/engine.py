"""Fitting one form of the registry to a curve: input checks, a coarse grid of starts -> batched
Levenberg-Marquardt -> bounded trust-region polish (`fit_form`), and the same on prefixes of the
curve for the backtest (`fit_prefixes`). `fit/curve.py:fit_curve` chooses the form and adds the
uncertainty; `fit/select.py` backtests with the functions here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from scalinglab.errors import UserError, bad_value
from scalinglab.fit.laws import Y0_FREE_MAX, _m4_y0
from scalinglab.fit.optim import lm_batch, polish


def one_blas_thread(fn):
    """Run `fn` with BLAS on one thread. Our fits are small (a handful of parameters, tens of points),
    where BLAS threads only spin-wait for each other; on a loaded 2-core machine that made SciPy's
    L-BFGS-B 10-15x slower (the joint law of a 3-run test: 69 s, 4.9 s on one thread)."""
    from threadpoolctl import threadpool_limits

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


class FitError(UserError):
    """A fit that could not be made (no start gave a finite fit)."""


@dataclass
class _Core:
    """One form fitted to one set of points, in fit space."""

    law: object
    th: np.ndarray
    lx: np.ndarray
    ly: np.ndarray
    w: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    free: np.ndarray
    fs: float | None
    x_scale: float
    cost: float
    converged: bool
    message: str

    @property
    def resid(self):
        return self.ly - self.law.logf(self.lx, self.th)

    @property
    def sigma(self):
        """Residual sd in log space, corrected for the free parameters."""
        dof = max(self.lx.size - int(self.free.sum()), 1)
        return float(np.sqrt(np.sum(self.w * self.resid**2) / np.sum(self.w) * self.lx.size / dof))


def _as_array(v, name, where="fit_curve"):
    try:
        a = np.asarray(v, dtype=float).ravel()
    except (TypeError, ValueError):
        raise bad_value(where, name, v if np.ndim(v) == 0 else "non-numeric values", "numbers") from None
    return a


def check_xy(x, y, weights=None, where="fit_curve", min_distinct=4):
    """Validate and sort the points; raise UserError with one line on bad input."""
    x, y = _as_array(x, "x", where), _as_array(y, "y", where)
    if x.size != y.size:
        raise bad_value(where, "y", f"{y.size} values", f"as many values as x ({x.size})")
    for name, a in (("x", x), ("y", y)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise bad_value(where, name, a[bad][0], "finite numbers (no NaN or inf)")
    if (x <= 0).any():
        raise bad_value(where, "x", x[x <= 0][0], "data sizes > 0")
    if (y < 0).any():
        raise bad_value(where, "y", y[y < 0][0], "errors >= 0")
    if (y == 0).any():
        raise bad_value(where, "y", 0.0, "errors > 0 (the fit is in log space)")
    nd = np.unique(x).size
    if nd < min_distinct:
        raise bad_value(where, "x", f"{nd} distinct values", f"at least {min_distinct} distinct values")
    if weights is None:
        w = np.ones_like(x)
    else:
        w = _as_array(weights, "weights", where)
        if w.size != x.size or not np.all(np.isfinite(w)) or (w <= 0).any():
            raise bad_value(
                where,
                "weights",
                weights if w.size < 6 else f"{w.size} values",
                f"{x.size} finite numbers > 0 (seeds behind each point)",
            )
    order = np.argsort(x, kind="stable")
    return x[order], y[order], w[order], order


def _setup(law, x, y, y0):
    """Normalised axes, bounds, free mask and the grid of starts of one fit (fit space)."""
    x_scale = float(x.max())
    lx, ly = np.log(x / x_scale), np.log(y)
    if law.needs_y0 and y0 is not None:
        y0 = _m4_y0(y, y0)
    lo, hi = law.bounds(lx, y, y0)
    fixed = law.fixed(y0)
    free = np.ones(law.k, bool)
    starts = np.array(law.guess(lx, y, y0), dtype=float)
    for i, v in fixed.items():
        free[i] = False
        lo[i] = hi[i] = v
        starts[:, i] = v
    return x_scale, lx, ly, lo, hi, free, np.clip(starts, lo, hi)


def fit_form(law, x, y, w, y0=None, robust=False, max_nfev=None):
    """Fit one law to sorted, checked points; return a _Core. Raises FitError if nothing fits."""
    x_scale, lx, ly, lo, hi, free, starts = _setup(law, x, y, y0)
    # coarse stage: every start gets a few batched LM steps, the best one is polished
    th, cost = lm_batch(law, lx, ly, w, starts, lo, hi, free, iters=30)
    if not np.isfinite(cost).any():
        raise FitError(f"fit_curve: form {law.name}: no starting point gave a finite fit")
    fs = None
    if robust:  # soft-L1 scale from the plain fit's residuals (MAD, in log units)
        r = ly - law.logf(lx, th[np.argmin(cost)])
        fs = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 1e-3)
        th, cost = lm_batch(law, lx, ly, w, th, lo, hi, free, fs=fs, iters=30)
    best = th[np.argmin(cost)]
    return _polished(law, lx, ly, w, best, lo, hi, free, fs, x_scale, max_nfev)


def _polished(law, lx, ly, w, best, lo, hi, free, fs, x_scale, max_nfev=None):
    th_p, cost_p, conv, msg = polish(law, lx, ly, w, best, lo, hi, free, fs=fs, max_nfev=max_nfev)
    i = law.y0_index
    if i is not None and free[i] and th_p[i] >= hi[i] * (1 - 1e-9):
        # the ridge of a free y0 (laws._m4_bounds): say so rather than report its value as found
        msg += f"; y0 at its upper bound ({Y0_FREE_MAX:g}x the largest error): the data do not identify it"
    if not np.isfinite(cost_p):
        raise FitError(f"fit_curve: form {law.name}: the fit diverged")
    return _Core(law, th_p, lx, ly, w, lo, hi, free, fs, x_scale, cost_p, conv, msg)


def fit_prefixes(law, x, y, w, masks, y0=None):
    """fit_form (plain loss) on several subsets of one sorted curve, e.g. the backtest's prefixes.

    Same result as calling fit_form on each subset: each has its own normalisation, bounds and
    grid of starts, but the coarse Levenberg-Marquardt stage of all of them runs as one batch (the
    other points get weight 0), which saves the per-call overhead of two thirds of the steps.
    Returns one _Core per mask, or None where no start gave a finite fit.
    """
    setups, LX, LY, W, LO, HI, TH, owner = [], [], [], [], [], [], [], []
    for j, m in enumerate(masks):
        x_scale, lxm, lym, lo, hi, free, starts = _setup(law, x[m], y[m], y0)
        setups.append((x_scale, lxm, lym, lo, hi, free))
        s = len(starts)
        LX.append(np.tile(np.log(x / x_scale), (s, 1)))
        LY.append(np.tile(np.log(y), (s, 1)))
        W.append(np.tile(np.where(m, w, 0.0), (s, 1)))
        LO.append(np.tile(lo, (s, 1)))
        HI.append(np.tile(hi, (s, 1)))
        TH.append(starts)
        owner += [j] * s
    if not setups:
        return []
    cat = np.concatenate
    th, cost = lm_batch(law, cat(LX), cat(LY), cat(W), cat(TH), cat(LO), cat(HI), setups[0][5], iters=30)
    owner = np.array(owner)
    out = []
    for j, m in enumerate(masks):
        x_scale, lxm, lym, lo, hi, free = setups[j]
        c = np.where((owner == j) & np.isfinite(cost), cost, np.inf)
        if not np.isfinite(c).any():
            out.append(None)
            continue
        try:
            out.append(_polished(law, lxm, lym, w[m], th[np.argmin(c)], lo, hi, free, None, x_scale))
        except FitError:
            out.append(None)
    return out
