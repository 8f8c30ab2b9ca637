"""Bad input, convergence reporting, serialisation, predictions, regions, form selection."""

import json

import numpy as np
import pytest

from scalinglab.errors import UserError
from scalinglab.fit import CurveFit, FitError, fit_curve

X = np.geomspace(1e3, 1e6, 12)
Y = 5.0 * X**-0.35 + 0.05


@pytest.mark.parametrize(
    "x, y, kw",
    [
        ([1, 2, 3], [0.5, 0.4, 0.3], {}),  # fewer than 4 distinct x
        ([1, 1, 2, 2, 3], [0.5, 0.5, 0.4, 0.4, 0.3], {}),
        ([0, 1, 2, 3], [0.5, 0.4, 0.3, 0.2], {}),  # non-positive x
        ([-1, 1, 2, 3], [0.5, 0.4, 0.3, 0.2], {}),
        ([1, 2, 3, np.nan], [0.5, 0.4, 0.3, 0.2], {}),  # NaN
        ([1, 2, 3, 4], [0.5, 0.4, np.inf, 0.2], {}),  # inf
        ([1, 2, 3, 4], [0.5, 0.4, -0.3, 0.2], {}),  # negative error
        ([1, 2, 3, 4], [0.5, 0.4, 0.3], {}),  # length mismatch
        (["a", "b", "c", "d"], [0.5, 0.4, 0.3, 0.2], {}),  # non-numeric
        (X, Y, {"form": "nope"}),  # unknown form
        (X, Y, {"interval": 1.5}),
        (X, Y, {"weights": [1] * 5}),
        (X[:5], Y[:5], {"form": "bnsl"}),  # too few points for this form
    ],
)
def test_bad_input_raises_user_error_one_line(x, y, kw):
    with pytest.raises(UserError) as e:
        fit_curve(x, y, n_boot=10, **kw)
    assert "\n" not in str(e.value) and "allowed" in str(e.value)


def test_non_convergence_is_reported_not_hidden():
    r = fit_curve(X, Y * 1.01, form="bnsl", n_boot=5, max_nfev=1)
    assert r.converged is False
    assert "did not converge" in r.message
    assert "NOT CONVERGED" in r.report()
    assert r.to_dict()["converged"] is False
    assert issubclass(FitError, UserError)


def test_to_dict_is_plain_json_and_report_is_text():
    r = fit_curve(X, Y * np.exp(np.random.default_rng(0).normal(0, 0.02, 12)), n_boot=50)
    d = json.loads(json.dumps(r.to_dict()))  # would raise on NumPy types or NaN
    assert d["form"] in ("m4", "bnsl") and d["scores"] and d["converged"] is True
    assert set(d["regions"]) == {"small_data_end", "irreducible_start", "floor", "floor_ci"}
    assert isinstance(r, CurveFit) and "form:" in r.report()
    assert json.loads(json.dumps(r.predict([1e7], interval=0.9).to_dict()))["lo"]


def test_predict_interval_brackets_point_and_widens_with_distance():
    rng = np.random.default_rng(1)
    r = fit_curve(X, Y * np.exp(rng.normal(0, 0.02, 12)), form="pow_c", n_boot=200)
    xs = np.array([1e4, 1e6, 1e7, 1e8])
    p = r.predict(xs, interval=0.9)
    assert np.all(p.lo <= p.y) and np.all(p.y <= p.hi) and p["lo"].shape == xs.shape
    width = np.log(p.hi / p.lo)
    assert width[3] > width[2] > width[1]
    assert np.allclose(r.predict(xs), p.y)
    p50 = r.predict(xs, interval=0.5)
    assert np.all(p50.hi - p50.lo <= p.hi - p.lo)


def test_regions_pow_c_with_random_guess_level():
    r = fit_curve(X, Y, form="pow_c", y0=0.9, n_boot=20)
    a, b, g = r.params["alpha"], r.params["beta"], r.params["gamma"]
    # small-data end: the power law meets y0; irreducible start: reducible part = 10% of floor
    assert r.regions["small_data_end"] == pytest.approx(((0.9 - g) / a) ** (1 / b), rel=0.02)
    assert r.regions["irreducible_start"] == pytest.approx((0.1 * g / a) ** (1 / b), rel=0.02)
    lo, hi = r.regions["floor_ci"]
    assert lo <= r.regions["floor"] <= hi


def test_auto_reports_scores_and_picks_the_best():
    rng = np.random.default_rng(2)
    x = np.geomspace(1e3, 1e6, 16)
    r = fit_curve(x, (5.0 * x**-0.35 + 0.05) * np.exp(rng.normal(0, 0.01, 16)), n_boot=20)
    scored = {k: v for k, v in r.scores.items() if v is not None}
    assert r.form == min(scored, key=scored.get)
    assert r.calibration["source"] == "backtest" and r.calibration["kappa"] > 0


def test_few_points_fall_back_to_simple_forms():
    r = fit_curve(X[::3], Y[::3], n_boot=20)  # 4 points: m4/bnsl cannot be backtested
    assert r.form in ("pow_c", "pow")
