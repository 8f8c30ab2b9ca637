"""Fits recover known parameters from synthetic curves with noise, for every law."""

import numpy as np
import pytest

from scalinglab.fit import LAWS, fit_curve, fit_model_size

X12 = np.geomspace(1e3, 1e6, 12)  # 12 points over 3 orders of magnitude


def _law_curve(form, p):
    law = LAWS[form]
    p = np.array(p, float)
    return lambda x: np.exp(law.logf(np.log(x), p))


# Truths in fit space with x_scale = 1. "hard" ones: the exponent is weakly identified by 12 points.
M4_HARD = [0.05, 0.9, 0.5, np.log(10.0), -0.4]  # y_inf, y0, a, log b, c; y 0.47 -> 0.086
# y0 known, a small a and a low floor: the curve runs from the small-data bend (0.82 near y0 = 0.9)
# through the power-law region down to 0.043, well above y_inf = 0.01
M4_IDENT = [0.01, 0.9, 0.1, np.log(33.1), -0.5]
# a slow first regime, then a break at x = 3e4 to a steeper exponent -(c0 + c1) = -0.45
BNSL_HARD = [0.02, np.log(2.0), 0.1, 0.45, np.log(3e4), np.log(0.3), 0.0]
# the same exponents with a sharp break at x = 3e3: 10 of the 12 points lie in the final regime
BNSL_IDENT = [0.01, np.log(2.0), 0.1, 0.45, np.log(3e3), np.log(0.1), 0.0]


def _truth_curve(form):
    """(y_true(x), true exponent, kwargs for fit_curve) of each law, in original x units."""
    if form == "pow":
        return (lambda x: 3.0 * x**-0.3), -0.3, {}
    if form == "pow_c":
        return (lambda x: 5.0 * x**-0.35 + 0.05), -0.35, {}
    if form in ("m4", "m4_hard"):
        p = M4_IDENT if form == "m4" else M4_HARD
        return _law_curve("m4", p), p[4], {"y0": 0.9}
    if form in ("bnsl", "bnsl_hard"):
        p = BNSL_IDENT if form == "bnsl" else BNSL_HARD
        return _law_curve("bnsl", p), -p[3], {}
    raise KeyError(form)


def crb_exponent_sd(form, p, x, noise=0.02):
    """Cramer-Rao bound on the sd of the fitted exponent: Fisher information of log y (Gaussian
    noise of sd `noise` in log space) from the Jacobian at the truth, free parameters only."""
    law = LAWS[form]
    fixed = law.fixed(p[1] if law.needs_y0 else None)
    free = [i for i in range(law.k) if i not in fixed]
    J = law.jac(np.log(x), np.array(p, float))[:, free]
    cov = np.linalg.inv(J.T @ J / noise**2)
    i = free.index({"m4": 4, "bnsl": 3}[form])
    return float(np.sqrt(cov[i, i]))


# The issue asks for 0.02 with 12 points over 3 decades and 2% noise. Whether any estimator can
# meet it depends on the truth; the Cramer-Rao bound (CRB) on the exponent's sd says which truths
# allow it (median |error| of an efficient estimator ~ 0.67 x sd):
#   pow    3 x^-0.3                          sd 0.0027
#   pow_c  5 x^-0.35 + 0.05                  sd 0.0123
#   m4     M4_IDENT  (y0 = 0.9 known)        sd 0.0173 -> held to 0.02 here
#   bnsl   BNSL_IDENT                        sd 0.0147 -> held to 0.02 here
#   m4     M4_HARD                           sd 0.0562 (expected median |error| ~ 0.038)
#   bnsl   BNSL_HARD                         sd 0.0734 (~ 0.049); 24 points: sd 0.0553
# On 20 noise draws the engine attains these bounds (RMS error of the exponent: m4 0.016 / 0.058,
# bnsl 0.017 / 0.071 for IDENT / HARD), and a profile over the exponent (1-D grid, the other
# parameters refitted) found no lower cost than the engine's fit in 10 of 10 draws: on the hard
# truths the misses are identifiability, not the optimiser. Those keep the old 0.05 and a check
# that the fit reaches a cost at or below the truth's. Median |error| over the 7 draws below (seed
# 42): pow 0.0009, pow_c 0.0095, m4 0.0091, bnsl 0.0076, m4_hard 0.024, bnsl_hard 0.036.
TOL = {"pow": 0.02, "pow_c": 0.02, "m4": 0.02, "bnsl": 0.02, "m4_hard": 0.05, "bnsl_hard": 0.05}


@pytest.mark.parametrize("form", ["pow", "pow_c", "m4", "bnsl", "m4_hard", "bnsl_hard"])
def test_exponent_recovered_12_points(form):
    f, expo, kw = _truth_curve(form)
    rng = np.random.default_rng(42)
    errs = []
    for _ in range(7):
        y = f(X12) * np.exp(rng.normal(0, 0.02, X12.size))  # 2% multiplicative noise
        r = fit_curve(X12, y, form=form.split("_hard")[0], n_boot=50, **kw)
        assert r.converged, r.message
        errs.append(abs(r.exponent - expo))
        # the optimiser finds a fit at least as good as the truth (no stop in a local minimum)
        assert np.sum(np.log(r.predict(X12) / y) ** 2) <= np.sum(np.log(f(X12) / y) ** 2) * (1 + 1e-6)
    # the median over noise draws: one unlucky draw of 12 points must not decide the test
    assert np.median(errs) < TOL[form], errs


def test_cramer_rao_bounds_of_the_truths():
    """The identifiable truths allow 0.02; the hard ones do not (documents the numbers above)."""
    assert crb_exponent_sd("m4", M4_IDENT, X12) < 0.02
    assert crb_exponent_sd("bnsl", BNSL_IDENT, X12) < 0.02
    assert crb_exponent_sd("m4", M4_HARD, X12) > 0.05
    assert crb_exponent_sd("bnsl", BNSL_HARD, X12) > 0.05


def test_hard_m4_profile_finds_no_better_exponent():
    """Profile over the exponent c (c fixed on a grid, the rest refitted) on a hard-truth draw: no
    grid value reaches a lower cost than the engine's fit, so its exponent error is not an
    optimiser failure."""
    from scalinglab.fit.engine import fit_form
    from scalinglab.fit.optim import lm_batch

    f, _, _ = _truth_curve("m4_hard")
    rng = np.random.default_rng(42)
    law = LAWS["m4"]
    for _ in range(3):  # the third draw's fit is 0.09 from the truth
        y = f(X12) * np.exp(rng.normal(0, 0.02, X12.size))
    core = fit_form(law, X12, y, np.ones(12), 0.9)
    grid = np.linspace(core.th[4] - 0.2, min(core.th[4] + 0.2, 0.0), 41)
    starts = np.vstack([law.guess(core.lx, y, 0.9), core.th[None]])
    free = core.free.copy()
    free[4] = False
    best = np.inf
    for c in grid:
        st = np.clip(starts.copy(), core.lo, core.hi)
        st[:, 4] = c
        _, cost = lm_batch(law, core.lx, core.ly, core.w, st, core.lo, core.hi, free, iters=100)
        best = min(best, cost.min())
    assert core.cost <= best * (1 + 1e-6), (core.cost, best)


@pytest.mark.parametrize("form", ["bnsl_hard"])
def test_exponent_within_002_with_more_points(form):
    f, expo, kw = _truth_curve(form)
    rng = np.random.default_rng(42)
    x = np.geomspace(1e3, 1e6, 24)
    errs = []
    for _ in range(5):
        y = f(x) * np.exp(rng.normal(0, 0.02, x.size))
        errs.append(abs(fit_curve(x, y, form="bnsl", n_boot=20, **kw).exponent - expo))
    assert np.median(errs) < 0.02, errs


def test_pow_c_params_named_and_recovered():
    rng = np.random.default_rng(0)
    y = (5.0 * X12**-0.35 + 0.05) * np.exp(rng.normal(0, 0.02, X12.size))
    r = fit_curve(X12, y, form="pow_c", n_boot=200)
    assert set(r.params) == {"alpha", "beta", "gamma"}
    assert abs(r.params["beta"] + 0.35) < 0.05
    assert abs(r.params["gamma"] - 0.05) < 0.01
    assert r.regions["floor"] == pytest.approx(r.params["gamma"])


def test_model_size_law():
    rng = np.random.default_rng(1)
    s = 30.0 * X12**0.7 * np.exp(rng.normal(0, 0.02, X12.size))
    r = fit_model_size(X12, s, n_boot=100)
    assert r.form == "model_size" and set(r.params) == {"sigma", "beta_p"}
    assert abs(r.params["beta_p"] - 0.7) < 0.02
    assert r.ci["beta_p"][0] < 0.7 < r.ci["beta_p"][1]


def test_ci_contains_truth_in_most_repeats():
    rng = np.random.default_rng(7)
    x = np.geomspace(1e3, 1e6, 16)
    hits = 0
    for i in range(20):
        y = (5.0 * x**-0.35 + 0.05) * np.exp(rng.normal(0, 0.02, x.size))
        r = fit_curve(x, y, form="pow_c", n_boot=200, seed=i)
        lo, hi = r.ci["beta"]
        hits += lo <= -0.35 <= hi
    assert hits >= 14, hits  # nominal 90%: 18 of 20 expected; 14 leaves room for chance


def test_m4_fits_y0_when_not_given():
    f, expo, _ = _truth_curve("m4_hard")
    rng = np.random.default_rng(3)
    x = np.geomspace(1e2, 1e6, 20)
    y = f(x) * np.exp(rng.normal(0, 0.01, x.size))
    r = fit_curve(x, y, form="m4", n_boot=50)
    assert r.converged
    assert r.params["y0"] > y.max()
    assert abs(r.exponent - expo) < 0.1  # y0, a and c trade off; the curve itself is pinned:
    assert np.allclose(r.predict(x), f(x), rtol=0.03)


def test_weights_and_seed_bootstrap():
    rng = np.random.default_rng(5)
    seeds = [5.0 * xi**-0.35 + 0.05 + rng.normal(0, 0.002, 3) for xi in X12]
    y = np.array([np.median(s) for s in seeds])
    r = fit_curve(X12, y, form="pow_c", weights=[3] * 12, groups_y=seeds, n_boot=100)
    assert r.converged and abs(r.exponent + 0.35) < 0.05
    assert r.ci["beta"][0] <= r.params["beta"] <= r.ci["beta"][1]


def test_robust_loss_resists_an_outlier():
    rng = np.random.default_rng(6)
    y = (5.0 * X12**-0.35 + 0.05) * np.exp(rng.normal(0, 0.01, X12.size))
    y[6] *= 1.6
    plain = fit_curve(X12, y, form="pow_c", n_boot=20)
    rob = fit_curve(X12, y, form="pow_c", n_boot=20, robust=True)
    assert abs(rob.exponent + 0.35) <= abs(plain.exponent + 0.35)


def test_m4_with_free_y0_on_a_curve_without_its_bend():
    """No y0 given and no small-data bend in the data: y0 and a lie on a ridge (only a / y0 is seen).
    The fit stops at y0's bound (10x the largest error), converges, says y0 is not identified, and
    keeps the exponent (it crawled 500 evaluations without converging under a 100x bound)."""
    rng = np.random.default_rng(0)
    y = (5.0 * X12**-0.35 + 0.05) * np.exp(rng.normal(0, 0.02, X12.size))
    r = fit_curve(X12, y, form="m4", n_boot=20)
    assert r.converged and "y0 at its upper bound" in r.message, r.message
    assert r.params["y0"] == pytest.approx(10 * y.max(), rel=1e-6)
    assert abs(r.exponent + 0.35) < 0.02
    # a given y0 is never flagged
    assert "upper bound" not in fit_curve(X12, y, form="m4", y0=0.9, n_boot=0).message
