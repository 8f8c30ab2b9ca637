"""The headline slope, the unsupported-forecast flag and the steepest-slope guard (fit/result.py), and
the summary's one story: its floor, regions and forecasts come from one fit."""

import numpy as np

from scalinglab.analysis.summary import fit_learning_curve, floor_of, law_dict
from scalinglab.fit import fit_curve

X = np.geomspace(1e3, 1e6, 11)


def test_slope_recovers_the_planted_power_law_exponent():
    """y = 5 x^-0.35 + 0.05 with 2% noise: the reducible error's slope over the data is -0.35."""
    rng = np.random.default_rng(0)
    y = (5.0 * X**-0.35 + 0.05) * np.exp(rng.normal(0, 0.02, X.size))
    s = fit_curve(X, y, form="pow_c").slope
    assert abs(s["value"] + 0.35) < 0.05
    assert s["ci"][0] <= -0.35 <= s["ci"][1]
    assert s["reached"] and s["to"] == X[-1]


def test_slope_is_measured_past_the_bend_not_across_the_plateau():
    """An m4 curve from the random-guess plateau (0.9) down a -0.5 power law: the headline slope starts
    where the small-data region ends and is far steeper than the secant across the whole range."""
    x = np.geomspace(30, 1e6, 16)
    law_y = 0.01 + (0.9 - 0.01) / (1 + (x / 3e3) ** 0.5)  # reducible error ~ x^-0.5 past 3e3
    fit = fit_curve(x, law_y, form="m4", y0=0.9)
    s = fit.slope
    assert s["from"] > x[0]
    whole = np.log((law_y[-1] - 0.01) / (law_y[0] - 0.01)) / np.log(x[-1] / x[0])
    assert s["value"] < whole - 0.05
    assert -0.6 < s["value"] < -0.3


def test_a_curve_still_guessing_is_flagged_and_a_measured_one_is_not():
    y0 = 0.9
    guessing = np.array([0.9, 0.89, 0.9, 0.88, 0.89, 0.87, 0.86, 0.84, 0.8, 0.7, 0.6])
    why = fit_curve(X, guessing, form="auto", y0=y0).unsupported
    assert why is not None and "past the small-data region" in why
    measured = 0.02 + 0.88 / (1 + (X / 2e3) ** 0.5)
    assert fit_curve(X, measured, form="auto", y0=y0).unsupported is None


def test_forecast_falls_no_faster_than_the_steepest_measured_segment():
    """A curve that drops sharply only at its last points: beyond the data the forecast is held at
    or above the last point continued with the steepest measured slope, and stays inside its interval."""
    x = np.geomspace(1e3, 3.2e4, 6)
    y = np.array([0.8, 0.78, 0.76, 0.72, 0.45, 0.2])
    fit = fit_curve(x, y, form="m4", y0=0.9)
    steepest = np.min(np.diff(np.log(y)) / np.diff(np.log(x)))
    at_max = fit.predict(x[-1:])[0]
    far = x[-1] * np.array([2.0, 4.0, 8.0])
    p = fit.predict(far, interval=0.9)
    bound = at_max * (far / x[-1]) ** steepest
    assert np.all(p["y"] >= bound * (1 - 1e-9))
    assert np.all((p["lo"] <= p["y"]) & (p["y"] <= p["hi"]))
    assert np.allclose(fit.predict(far), p["y"])  # the curve drawn is the curve forecast
    raw = np.exp(fit.law.logf(np.log(far / fit._x_scale), fit._th))
    assert raw[-1] < bound[-1] and np.all(p["lo"] <= raw)  # the guard bound here; the law's value stays inside


def test_summary_never_forecasts_below_its_own_floor():
    """The default MNIST-1D study's measured medians (16..8192, a real curve from `scalinglab run`):
    the floor is the learning curve's own, and no forecast lies below the floor's interval."""
    sizes = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    err = [0.816, 0.80, 0.75, 0.70, 0.62, 0.512, 0.225, 0.107, 0.0335, 0.025]
    rng = np.random.default_rng(1)
    points = [
        {"data_size": m, "error": e, "n_seeds": 3, "seed_errors": list(e * np.exp(rng.normal(0, 0.05, 3)))}
        for m, e in zip(sizes, err)
    ]
    lc = fit_learning_curve(points, y0=0.9)
    floor, d = floor_of(lc), law_dict(lc, sizes[-1])
    assert floor["value"] == lc.regions["floor"] and floor["form"] == d["form"]
    for p in d["predictions"]:
        assert p["value"] >= floor["ci90"][0]
        assert p["value"] >= floor["value"] * (1 - 1e-9)
