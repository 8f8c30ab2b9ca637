"""`fit_curve`: fit a learning curve (error vs data) with any law in the registry.

Steps: check the input; choose the form by how well each extrapolates the curve's own later part
(form="auto", `select.py`), or take the given one; fit it on all points (`engine.fit_form`);
bootstrap; calibrate the prediction intervals on the same backtest; locate the regions of the curve.
"""

from __future__ import annotations

import numpy as np

from scalinglab.errors import bad_value
from scalinglab.fit.bootstrap import bootstrap
from scalinglab.fit.engine import FitError, check_xy, fit_form, one_blas_thread
from scalinglab.fit.laws import LAWS, _m4_y0
from scalinglab.fit.result import CurveFit
from scalinglab.fit.select import AUTO_FORMS, FALLBACK_FORMS, auto_forms, backtest, choose


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
    return {
        "small_data_end": small,
        "irreducible_start": irr,
        "floor": floor if has_floor else (0.0 if law.floor_kind == "zero" else None),
        "floor_ci": floor_ci,
    }


@one_blas_thread
def fit_curve(
    x,
    y,
    *,
    form="auto",
    weights=None,
    y0=None,
    groups_y=None,
    n_boot=1000,
    interval=0.9,
    robust=False,
    seed=0,
    max_nfev=None,
) -> CurveFit:
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
    x, y, w, order = check_xy(x, y, weights)
    if not 0 < interval < 1:
        raise bad_value("fit_curve", "interval", interval, "a level in (0, 1), e.g. 0.9")
    if y0 is not None and (not np.isfinite(y0) or y0 <= 0):
        raise bad_value("fit_curve", "y0", y0, "the random-guess error, a number > 0")
    if groups_y is not None:
        if len(groups_y) != x.size:
            raise bad_value(
                "fit_curve", "groups_y", f"{len(groups_y)} groups", f"one array of per-seed values per point ({x.size})"
            )
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
            raise bad_value(
                "fit_curve", "x", f"{n_distinct} distinct values", f"more than {LAWS[form].n_free(y0)} for form {form}"
            )
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
        ci = {k: (float(np.nanquantile(ub[k], q)), float(np.nanquantile(ub[k], 1 - q))) for k in params}
    y0_used = _m4_y0(y, y0) if (y0 is not None and law.needs_y0) else y0
    if law.y0_index is not None:  # y0 is a parameter of the form: the one it used (fitted or fixed)
        y0_used = params[law.names[law.y0_index]]
    cal = bt[law.name]["calibration"]
    cal = {**cal, "sigma": core.sigma}
    return CurveFit(
        form=law.name,
        params=params,
        ci=ci,
        converged=core.converged,
        message=core.message,
        scores={k: v["score"] for k, v in bt.items()} if choosing else {},
        regions=_regions(law, core.th, th_boot, x, y0_used, interval),
        interval=interval,
        n_points=int(x.size),
        x_range=(float(x.min()), float(x.max())),
        y0=None if y0_used is None else float(y0_used),
        calibration=cal,
        _th=core.th,
        _th_boot=th_boot,
        _x_scale=core.x_scale,
        _x=x,
        _y=y,
    )


def fit_model_size(x, s, **kw) -> CurveFit:
    """Best-fit model size vs data, s(m) = sigma * m**beta_p (Hestness et al.: 0.5 < beta_p < 1)."""
    return fit_curve(x, s, form="model_size", **kw)
