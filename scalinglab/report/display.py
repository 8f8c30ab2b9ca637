"""Notebook display: `_repr_html_` and `plot()` of StudyResult, CurveFit and JointFit.

Each HTML is a compact table and the figure as an inline base64 PNG. The figures are the report's
own (`plots.draw_learning_curve`; a bare fit is wrapped in a `ReportData` by `data.from_fit`), drawn
with matplotlib's object API: no pyplot, no display, no backend switch. `plot(ax=None)` draws on the
caller's axes, or on a new Figure's, and returns the Axes (as scikit-learn's `LearningCurveDisplay`
draws into `ax`); in a notebook show a new one with `ax.figure`, or pass `ax` from `plt.subplots()`.
"""

from __future__ import annotations

import base64
import html

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from scalinglab import fmt
from scalinglab.report import plots
from scalinglab.report.data import from_fit

FIGSIZE = (7.2, 4.2)  # smaller than the report's: a notebook cell is narrower than a page


def _new_axes(ax):
    if ax is not None:
        return ax
    with matplotlib.rc_context(plots.STYLE):
        return Figure(figsize=FIGSIZE, layout="constrained").subplots()  # room for the legend below


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" style="max-width:100%;width:640px" src="data:image/png;base64,{b64}"/>'


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>{body}</table>"


def _ci(ci) -> str:  # " [lo, hi]" after a value, or nothing
    text = fmt.interval(ci, ".4g")
    return " " + text if text else ""


def _labels(fit, xlabel, ylabel):
    if fit.form == "model_size":
        return xlabel or "data size m", ylabel or "parameters of the best model"
    return xlabel or "data size m", ylabel


def _fig_png(draw) -> bytes:
    with matplotlib.rc_context(plots.STYLE):
        fig = Figure(figsize=FIGSIZE)
        draw(fig.subplots())
        return plots._png(fig)


# --- CurveFit --------------------------------------------------------------------------------------
def plot_fit(fit, ax=None, *, xlabel=None, ylabel=None):
    if fit._x is None:
        raise ValueError("this fit holds no data points to plot (it was not made by fit_curve)")
    xl, yl = _labels(fit, xlabel, ylabel)
    ax = _new_axes(ax)
    with matplotlib.rc_context(plots.STYLE):
        return plots.draw_learning_curve(
            ax, from_fit(fit, ylabel=yl), xlabel=xl, ylabel=yl, legend_cols=2, points_label="fitted points"
        )


def fit_rows(fit) -> list[tuple[str, str]]:
    pct = f"{fit.interval:.0%}"
    rows = [
        ("form", f"{fit.form}: {fit.law.formula}"),
        (f"exponent ({pct} CI)", fmt.num(fit.exponent, 4) + _ci(fit.exponent_ci)),
    ]
    r = fit.regions
    if r.get("floor") is not None:
        rows.append((f"floor ({pct} CI)", fmt.num(r["floor"], 4) + _ci(r.get("floor_ci"))))
    rows += [(k, fmt.num(v, 4) + _ci(fit.ci.get(k))) for k, v in fit.params.items()]
    rows += [
        ("points", f"{fit.n_points}, x in [{fmt.num(fit.x_range[0], 4)}, {fmt.num(fit.x_range[1], 4)}]"),
        ("converged", "yes" if fit.converged else f"NO: {fit.message}"),
    ]
    return rows


def fit_html(fit) -> str:
    png = _fig_png(lambda ax: plot_fit(fit, ax)) if fit._x is not None else None
    return f"<div>{_table('CurveFit', fit_rows(fit))}{_img(png, 'fitted curve')}</div>"


# --- JointFit --------------------------------------------------------------------------------------
def plot_joint(fit, ax=None):
    if fit._N is None:
        raise ValueError("this fit holds no data points to plot (it was not made by fit_joint)")
    ax = _new_axes(ax)
    with matplotlib.rc_context(plots.STYLE):
        return _draw_joint(ax, fit)


def _draw_joint(ax, fit):
    cmap = matplotlib.colormaps["viridis"]
    sizes = np.unique(fit._N)
    for i, n in enumerate(sizes):
        col = cmap(0.05 + 0.8 * i / max(1, len(sizes) - 1))
        sel = fit._N == n
        d = np.geomspace(fit._D.min(), fit._D.max() * 2, 100)
        ax.plot(fit._D[sel], fit._L[sel], "o", color=col, ms=5, label=f"N = {fmt.human(n)}")
        ax.plot(d, fit.predict(np.full_like(d, n), d), color=col, lw=1.5)
    e = fit.params["E"]
    ax.axhline(e, color=plots.GREEN, ls=(0, (2, 2)), lw=1.2, label=f"E = {e:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.human(v)))
    ax.grid(True, which="major")
    ax.set_xlabel("data D")
    ax.set_ylabel("loss L")
    ax.set_title("L = E + A/N^alpha + B/D^beta")
    ax.legend(loc="best", fontsize=8)
    return ax


def joint_html(fit) -> str:
    pct = f"{fit.interval:.0%}"
    rows = [(f"{k} ({pct} CI)", fmt.num(v, 4) + _ci(fit.ci.get(k))) for k, v in fit.params.items()]
    rows += [
        ("points", str(fit.n_points)),
        ("residual sd (log L)", fmt.num(fit.sigma, 4)),
        ("converged", "yes" if fit.converged else f"NO: {fit.message}"),
    ]
    png = _fig_png(lambda ax: plot_joint(fit, ax)) if fit._N is not None else None
    return f"<div>{_table('JointFit: L = E + A/N^alpha + B/D^beta', rows)}{_img(png, 'joint fit')}</div>"


# --- StudyResult -----------------------------------------------------------------------------------
def plot_study(result, ax=None):
    ax = _new_axes(ax)
    with matplotlib.rc_context(plots.STYLE):
        return plots.draw_learning_curve(ax, result.report_data, legend_cols=2)


def study_rows(result) -> list[tuple[str, str]]:
    s = result.summary
    t = s.get("trials") or {}
    counts = (
        f"{t.get('total', len(result.results))} ({t.get('ok', 0)} ok, {t.get('diverged', 0)} diverged, "
        f"{t.get('failed', 0)} failed)"
    )
    rows = [("study", f"{result.name} ({result.out})"), ("trials", counts)]
    lc = result.learning_curve or {}
    if lc:
        rows.append(
            (
                f"learning curve ({lc.get('form')})",
                f"exponent {fmt.num(lc.get('exponent'), 4)}{_ci(lc.get('exponent_ci'))}",
            )
        )
    fl = s.get("floor") or {}
    if fl.get("value") is not None:
        rows.append((f"floor ({fl.get('form')})", fmt.num(fl["value"], 4) + _ci(fl.get("ci90"))))
    ms = result.model_size_law or {}
    if ms:
        rows.append(("model-size law", f"s ∝ m^{fmt.num(ms.get('exponent'), 4)}{_ci(ms.get('exponent_ci'))}"))
    for p in lc.get("predictions") or []:
        rows.append(
            (f"predicted at m = {p['data_size']:,}", fmt.num(p.get("value"), 4) + _ci([p.get("lo"), p.get("hi")]))
        )
    return rows


def study_html(result) -> str:
    png = plots.learning_curve(result.report_data)  # the report's own figure, as in report.html
    return f"<div>{_table('StudyResult', study_rows(result))}{_img(png, 'learning curve')}</div>"
