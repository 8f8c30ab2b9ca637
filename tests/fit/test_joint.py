"""Joint law L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022)."""

import json

import numpy as np
import pytest

from scalinglab.errors import UserError
from scalinglab.fit import JointFit, fit_joint

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def _data(noise=0.005, seed=0):
    rng = np.random.default_rng(seed)
    N, D = np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e8, 1e11, 6))
    N, D = N.ravel(), D.ravel()
    L = TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]
    return N, D, L * np.exp(rng.normal(0, noise, L.size))


@pytest.fixture(scope="module")
def fit():
    return fit_joint(*_data(), n_boot=40)


def test_recovers_chinchilla_like_params(fit):
    p = fit.params
    assert fit.converged, fit.message
    assert abs(p["alpha"] - 0.34) < 0.03 and abs(p["beta"] - 0.28) < 0.03
    assert abs(p["E"] - 1.69) < 0.05
    assert 406.4 / 1.6 < p["A"] < 406.4 * 1.6 and 410.7 / 1.6 < p["B"] < 410.7 * 1.6
    for k in ("alpha", "beta", "E"):
        assert fit.ci[k][0] <= p[k] <= fit.ci[k][1]


def test_predict_and_compute_optimal(fit):
    assert isinstance(fit, JointFit)
    pr = fit.predict(1e9, 1e10, interval=0.9)
    assert pr["lo"] <= pr["y"] <= pr["hi"]
    opt = fit.compute_optimal([1e21, 1e22])
    assert np.allclose(6 * opt["N_opt"] * opt["D_opt"], [1e21, 1e22])
    # at the optimum, moving along the budget line does not lower the loss
    n, d = opt["N_opt"][0], opt["D_opt"][0]
    for f in (0.8, 1.25):
        assert fit.predict(n * f, d / f) >= fit.predict(n, d) - 1e-12
    json.dumps(fit.to_dict())


def test_non_convergence_reported():
    r = fit_joint(*_data(), n_boot=0, maxiter=2)
    assert r.converged is False and "did not converge" in r.message


def test_bad_input():
    N, D, L = _data()
    with pytest.raises(UserError):
        fit_joint(N, D, -L)
    with pytest.raises(UserError):
        fit_joint(N[:3], D[:3], L[:3])
