"""Notebook display: `_repr_html_` (a table and an inline PNG) and `plot()` returning matplotlib Axes,
for StudyResult, CurveFit and JointFit; all without a display and without pyplot."""

import base64
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import scalinglab

PNG = b"\x89PNG\r\n\x1a\n"


def inline_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', html)]


@pytest.fixture(scope="module")
def curve():
    x = np.geomspace(100, 1e4, 8)
    return x, 0.05 + 2 * x**-0.5


@pytest.fixture(scope="module")
def fit(curve):
    return scalinglab.fit_curve(*curve, n_boot=200)


@pytest.fixture(scope="module")
def joint():
    N = np.repeat([1e5, 1e6, 1e7], 5)
    D = np.tile(np.geomspace(1e6, 1e9, 5), 3)
    return scalinglab.fit_joint(N, D, 1.7 + 400 / N**0.34 + 410 / D**0.28, n_boot=50)


def test_curve_fit_html_has_table_and_plot(fit):
    h = fit._repr_html_()
    assert "<table" in h and "CurveFit" in h and fit.form in h
    assert f"{fit.exponent:.4g}" in h and "floor" in h
    pngs = inline_pngs(h)
    assert len(pngs) == 1 and pngs[0].startswith(PNG) and len(pngs[0]) > 10_000


def test_curve_fit_plot_returns_axes_with_the_points(fit, curve):
    ax = fit.plot()
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    assert ax.get_xscale() == "log" and "data size" in ax.get_xlabel()
    # the fitted points are drawn where they are, the law through them
    drawn = [line for line in ax.lines if len(line.get_xdata()) == len(curve[0])]
    assert any(np.allclose(line.get_ydata(), curve[1]) for line in drawn)
    fitted = next(line for line in ax.lines if str(line.get_label()).startswith("fitted law"))
    assert np.allclose(fitted.get_ydata(), fit.predict(fitted.get_xdata()))


def test_plot_on_given_axes(fit):
    fig = Figure()
    ax = fig.subplots()
    assert fit.plot(ax=ax, xlabel="tokens", ylabel="loss") is ax
    assert ax.get_xlabel().startswith("tokens") and ax.get_ylabel().startswith("loss")


def test_joint_fit_html_and_plot(joint):
    h = joint._repr_html_()
    assert "<table" in h and "alpha" in h and f"{joint.params['alpha']:.4g}" in h
    assert inline_pngs(h)[0].startswith(PNG)
    ax = joint.plot()
    assert isinstance(ax, Axes)
    assert len([line for line in ax.lines if line.get_marker() == "o"]) == 3  # one per model size


def test_study_result_html_and_plot(smoke_run):
    h = smoke_run._repr_html_()
    assert "<table" in h and "smoke" in h and f"{len(smoke_run.results)} (" in h
    lc = smoke_run.learning_curve
    assert f"exponent {lc['exponent']:.4g}" in h
    assert inline_pngs(h)[0].startswith(PNG)
    ax = smoke_run.plot()
    assert isinstance(ax, Axes)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"every trial ({len(smoke_run.results)})" in labels
    assert smoke_run.fit is not None and smoke_run.fit.form == lc["form"]
    assert smoke_run.fit.exponent == pytest.approx(lc["exponent"], rel=1e-6)


def test_no_display_no_pyplot_no_backend_switch():
    """In a fresh process with no display and a backend of the user's choosing: display and plot
    work, pyplot is never imported and the backend is left as it was (the report used to force Agg)."""
    code = (
        "import sys, numpy as np, matplotlib, scalinglab\n"
        "x = np.geomspace(100, 1e4, 8); f = scalinglab.fit_curve(x, 0.05 + 2 * x**-0.5, n_boot=50)\n"
        "assert '<img' in f._repr_html_(); f.plot().figure.savefig(sys.argv[1])\n"
        "import scalinglab.report.plots\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "svg"
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"scalinglab-display-{os.getpid()}.png")
    r = subprocess.run([sys.executable, "-c", code, out], env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        assert f.read(8) == PNG
    os.unlink(out)
