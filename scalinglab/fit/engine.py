"""`fit_curve`: fit a learning curve (error vs data) with any law in the registry.

Steps: check the input; choose the form by how well each extrapolates the curve's own later part
(form="auto"), or take the given one; fit it on all points (coarse grid of starts -> batched
Levenberg-Marquardt -> bounded trust-region polish); bootstrap; calibrate the prediction intervals
on the same backtest; locate the regions of the curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scalinglab.errors import UserError, bad_value
from scalinglab.fit.bootstrap import bootstrap
from scalinglab.fit.laws import LAWS, Y0_FREE_MAX, _m4_y0
from scalinglab.fit.optim import lm_batch, polish
from scalinglab.fit.result import CurveFit


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
        raise bad_value(where, name, v if np.ndim(v) == 0 else "non-numeric values",
                        "numbers") from None
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
            raise bad_value(where, "weights", weights if w.size < 6 else f"{w.size} values",
                            f"{x.size} finite numbers > 0 (seeds behind each point)")
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
    th, cost = lm_batch(law, cat(LX), cat(LY), cat(W), cat(TH), cat(LO), cat(HI), setups[0][5],
                        iters=30)
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


def _regions(law, th, th_boot, x, y0, interval):
    """Where the small-data region ends and the irreducible region starts; the floor and its CI.

    small_data_end: for m4, where the local slope of the excess error reaches half its power-law
      value (closed form: y - y_inf = (y0 - y_inf) / (1 + a)); for the other forms, where the fitted
      curve meets the random-guess level y0 (needs y0).
    irreducible_start: where the reducible part falls to 10% of the floor, i.e. the error is within
      10% of the irreducible error (the local log-log slope is then 1/11 of the power-law exponent).
    """
    floor = float(law.floor(th))
    has_floor = law.has_floor
    q = (1 - interval) / 2
    floor_ci = None
    if has_floor:
        fb = law.floor(th_boot)
        floor_ci = (float(np.quantile(fb, q)), float(np.quantile(fb, 1 - q)))
    # dense grid in log x, from far below to far beyond the data, on which to find crossings
    xs = float(x.max())
    grid = np.geomspace(x.min() / 1e4, x.max() * 1e8, 4000)
    with np.errstate(all="ignore"):
        yg = np.exp(law.logf(np.log(grid / xs), th))

    def first_below(level):
        idx = np.nonzero(yg <= level)[0]
        return float(grid[idx[0]]) if idx.size and idx[0] > 0 else None

    small = None
    if law.small_data_level is not None:
        small = first_below(float(law.small_data_level(th)))
    elif y0 is not None and law.floor_kind != "none":
        small = first_below(float(y0))
    irr = first_below(1.1 * floor) if has_floor and floor > 0 else None
    return {"small_data_end": small, "irreducible_start": irr,
            "floor": floor if has_floor else (0.0 if law.floor_kind == "zero" else None),
            "floor_ci": floor_ci}


def fit_curve(x, y, *, form="auto", weights=None, y0=None, groups_y=None, n_boot=1000,
              interval=0.9, robust=False, seed=0, max_nfev=None) -> CurveFit:
    """Fit a learning curve y(x) (error vs data size) with bootstrap uncertainty.

    Parameters
    ----------
    x, y : (n,) data sizes (> 0) and errors (> 0); at least 4 distinct x.
    form : "auto" (choose by extrapolation on the curve's own later points), a name in LAWS
        (pow, pow_c, m4, bnsl, bnsl2, model_size), or a list of names to choose among the same way.
    weights : (n,) number of seeds behind each point (residual variance ~ 1 / weight).
    y0 : random-guess error (e.g. 1 - 1/n_classes) when known; fixed in m4, used for regions.
    groups_y : list of n arrays of per-seed values; adds a seed-level bootstrap.
    n_boot : bootstrap refits; interval : level of CIs and of the calibrated prediction intervals.
    robust : soft-L1 loss (outliers pull less); seed : bootstrap RNG seed.
    max_nfev : evaluation cap for the final optimiser (None = SciPy's default).

    Returns
    -------
    CurveFit
    """
    from scalinglab.fit.select import AUTO_FORMS, FALLBACK_FORMS, auto_forms, backtest, choose

    x, y, w, order = check_xy(x, y, weights)
    if not 0 < interval < 1:
        raise bad_value("fit_curve", "interval", interval, "a level in (0, 1), e.g. 0.9")
    if y0 is not None and (not np.isfinite(y0) or y0 <= 0):
        raise bad_value("fit_curve", "y0", y0, "the random-guess error, a number > 0")
    if groups_y is not None:
        if len(groups_y) != x.size:
            raise bad_value("fit_curve", "groups_y", f"{len(groups_y)} groups",
                            f"one array of per-seed values per point ({x.size})")
        groups_y = [np.asarray(groups_y[i], float) for i in order]
    n_distinct = np.unique(x).size
    choosing = form == "auto" or isinstance(form, (tuple, list))  # pick the best of several forms
    if form == "auto":
        forms = [f for f in AUTO_FORMS if LAWS[f].n_free(y0) < n_distinct]
    elif isinstance(form, (tuple, list)):
        unknown = [f for f in form if f not in LAWS]
        if unknown or not form:
            raise bad_value("fit_curve", "form", form, "auto, a name or a list of names in " + ", ".join(LAWS))
        forms = [f for f in form if LAWS[f].n_free(y0) < n_distinct]
        if not forms:
            raise bad_value("fit_curve", "x", f"{n_distinct} distinct values", f"more for forms {form}")
    elif form in LAWS:
        if LAWS[form].n_free(y0) >= n_distinct:
            raise bad_value("fit_curve", "x", f"{n_distinct} distinct values",
                            f"more than {LAWS[form].n_free(y0)} for form {form}")
        forms = [form]
    else:
        raise bad_value("fit_curve", "form", form, "auto, " + ", ".join(LAWS))

    bt = backtest(x, y, w, forms, y0=y0, robust=robust, interval=interval)
    if form == "auto" and not auto_forms(bt):  # too few points for m4 / bnsl: simpler forms
        forms = [f for f in FALLBACK_FORMS if LAWS[f].n_free(y0) < n_distinct]
        bt = backtest(x, y, w, forms, y0=y0, robust=robust, interval=interval)
    ranked = choose(bt, forms) if choosing else forms
    core, errors = None, []
    for name in ranked:  # the best-scoring form that fits all the data
        try:
            core = fit_form(LAWS[name], x, y, w, y0, robust, max_nfev)
            break
        except FitError as e:
            errors.append(str(e))
    if core is None:
        raise FitError("; ".join(errors))
    law = core.law

    rng = np.random.default_rng(seed)
    th_boot = bootstrap(core, n_boot, rng, groups_y)
    if len(th_boot) == 0:
        th_boot = core.th[None, :]
    q = (1 - interval) / 2
    params = {k: float(v) for k, v in law.to_user(core.th, core.x_scale).items()}
    ub = law.to_user(th_boot, core.x_scale)
    with np.errstate(all="ignore"):
        ci = {k: (float(np.nanquantile(ub[k], q)), float(np.nanquantile(ub[k], 1 - q)))
              for k in params}
    y0_used = _m4_y0(y, y0) if (y0 is not None and law.needs_y0) else y0
    if law.y0_index is not None:  # y0 is a parameter of the form: the one it used (fitted or fixed)
        y0_used = params[law.names[law.y0_index]]
    cal = bt[law.name]["calibration"]
    cal = {**cal, "sigma": core.sigma}
    return CurveFit(
        form=law.name, params=params, ci=ci, converged=core.converged, message=core.message,
        scores={k: v["score"] for k, v in bt.items()} if choosing else {},
        regions=_regions(law, core.th, th_boot, x, y0_used, interval),
        interval=interval, n_points=int(x.size), x_range=(float(x.min()), float(x.max())),
        y0=None if y0_used is None else float(y0_used), calibration=cal,
        _th=core.th, _th_boot=th_boot, _x_scale=core.x_scale, _x=x, _y=y,
    )


def fit_model_size(x, s, **kw) -> CurveFit:
    """Best-fit model size vs data, s(m) = sigma * m**beta_p (Hestness et al.: 0.5 < beta_p < 1)."""
    return fit_curve(x, s, form="model_size", **kw)
