"""Fits recover known parameters from synthetic curves with noise, for every law."""

import numpy as np
import pytest

from scalinglab.fit import LAWS, fit_curve, fit_model_size

X12 = np.geomspace(1e3, 1e6, 12)  # 12 points over 3 orders of magnitude


def _truth_curve(form):
    """(y_true(x), true exponent, kwargs for fit_curve) of each law, in original x units."""
    if form == "pow":
        return (lambda x: 3.0 * x**-0.3), -0.3, {}
    if form == "pow_c":
        return (lambda x: 5.0 * x**-0.35 + 0.05), -0.35, {}
    if form == "m4":
        p = np.array([0.05, 0.9, 0.5, np.log(10.0), -0.4])  # y_inf, y0, a, log b, c (x_scale 1)
        law = LAWS["m4"]
        return (lambda x: np.exp(law.logf(np.log(x), p))), -0.4, {"y0": 0.9}
    if form == "bnsl":
        # a slow first regime, then a break at x = 3e4 to a steeper exponent -(c0 + c1) = -0.45
        p = np.array([0.02, np.log(2.0), 0.1, 0.45, np.log(3e4), np.log(0.3), 0.0])
        law = LAWS["bnsl"]
        return (lambda x: np.exp(law.logf(np.log(x), p))), -0.45, {}
    raise KeyError(form)


# The issue asks for 0.02 with 12 points and 2% noise. pow and pow_c meet it. m4 (4 free
# parameters with y0 known) and bnsl (6) do not at 12 points: their exponent trades off against
# the shape parameters (a, y_inf; the break), median errors are 0.02-0.04. They are held to 0.05
# here; bnsl reaches 0.02 with 24 points (next test). m4 does not even then: on these curves fits
# with exponents 0.03-0.07 away reach a *lower* cost than the true parameters (not an optimiser
# failure; c is weakly identified against a and y_inf).
TOL = {"pow": 0.02, "pow_c": 0.02, "m4": 0.05, "bnsl": 0.05}


@pytest.mark.parametrize("form", ["pow", "pow_c", "m4", "bnsl"])
def test_exponent_recovered_12_points(form):
    f, expo, kw = _truth_curve(form)
    rng = np.random.default_rng(42)
    errs = []
    for _ in range(5):
        y = f(X12) * np.exp(rng.normal(0, 0.02, X12.size))  # 2% multiplicative noise
        r = fit_curve(X12, y, form=form, n_boot=50, **kw)
        assert r.converged, r.message
        errs.append(abs(r.exponent - expo))
    # the median over noise draws: one unlucky draw of 12 points must not decide the test
    assert np.median(errs) < TOL[form], errs


@pytest.mark.parametrize("form", ["bnsl"])
def test_exponent_within_002_with_more_points(form):
    f, expo, kw = _truth_curve(form)
    rng = np.random.default_rng(42)
    x = np.geomspace(1e3, 1e6, 24)
    errs = []
    for _ in range(5):
        y = f(x) * np.exp(rng.normal(0, 0.02, x.size))
        errs.append(abs(fit_curve(x, y, form=form, n_boot=20, **kw).exponent - expo))
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
    f, expo, _ = _truth_curve("m4")
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
