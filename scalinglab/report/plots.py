"""The report's figures (matplotlib): each function returns PNG bytes or None.

`make_plots(data, out_dir)` draws every figure whose data exists and saves them to `out_dir`
(`DIR/plots/*.png`, for papers); the HTML embeds the same bytes as base64.

Figures are `matplotlib.figure.Figure` objects, never pyplot's: no window, no backend switch, no
global figure list, so the report draws on a server, in CI and inside a notebook alike without
touching the user's own plots. `draw_learning_curve(ax, data)` draws on any axes (`fit.plot(ax)`).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from scalinglab import fmt
from scalinglab.files import write_atomic
from scalinglab.report.data import EXTRAPOLATE, ReportData, curves_by_size

DPI = 110
INK = "#1f2933"
BLUE = "#1f6feb"
ORANGE = "#d9822b"
RED = "#c23030"
GREEN = "#0f9960"
GREY = "#8a9ba8"
REGION = {"small data": "#fbe3c8", "power law": "#e3f2e6", "irreducible": "#e1e8ed"}

STYLE = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.edgecolor": "#5c7080",
    "axes.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.color": "#394b59",
    "ytick.color": "#394b59",
    "legend.frameon": False,
    "legend.fontsize": 9,
    "grid.color": "#e1e8ed",
    "grid.linewidth": 0.7,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
}


# --- formatting ------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float) -> list[float]:
    """Readable ticks on a log axis that spans less than a decade as well as several."""
    for mant in ((1,), (1, 2, 5), (1, 2, 3, 5, 7), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        t = [m * 10.0**k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1) for m in mant]
        t = [v for v in t if lo <= v <= hi]
        if len(t) >= 4:
            return t
    return t


def _log_axes(ax, ylo, yhi, *, pct: bool, xlabel: str, ylabel: str):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(ylo, yhi)
    ax.yaxis.set_major_locator(FixedLocator(_nice_ticks(ylo, yhi)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.pct(v) if pct else f"{v:.3g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.human(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="major")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _axes(figsize):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _band(fit, lo_x, hi_x, n=200):
    xs = np.geomspace(lo_x, hi_x, n)
    try:
        pr = fit.predict(xs, interval=0.9)
    except (ValueError, ArithmeticError):  # a fit whose bootstrap failed still has a point curve
        y = fit.predict(xs)
        return xs, y, None, None
    ok = np.isfinite(pr.y)
    return xs[ok], pr.y[ok], pr.lo[ok], pr.hi[ok]


def _pct_axis(data: ReportData) -> bool:
    return data.is_rate


# --- figures ---------------------------------------------------------------------------------------
def learning_curve(data: ReportData) -> bytes | None:
    if not data.points:
        return None
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes((9.6, 5.4))
        draw_learning_curve(ax, data)
        return _png(fig)


def draw_learning_curve(
    ax,
    data: ReportData,
    *,
    legend: bool = True,
    legend_cols: int = 3,
    xlabel: str | None = None,
    ylabel: str | None = None,
    points_label: str = "best model per subset (median, seed range)",
):
    """The learning curve on `ax`: every trial, the best point per subset, the fitted law with its
    90% band and extrapolation, its regions, the floor and the random-guess level. Returns `ax`."""
    pts = data.points
    df = data.trials
    ok = df[(df["status"] == "ok") & df["min_dev_error"].notna() & (df["min_dev_error"] > 0)]
    x = np.array([p["data_size"] for p in pts], float)
    y = np.array([p["error"] for p in pts], float)
    ylo = np.array([p.get("error_lo", p["error"]) for p in pts], float)
    yhi = np.array([p.get("error_hi", p["error"]) for p in pts], float)
    lc, fit = data.lc or {}, data.lc_fit
    regions = data.regions
    fl = data.floor or {}
    floor, floor_ci = fl.get("value"), fl.get("ci")
    rg, pct = data.random_guess, _pct_axis(data)

    xlo, xhi = x.min() / 1.6, x.max() * (EXTRAPOLATE * 1.5 if fit is not None else 1.6)
    # the axis follows the data; a level far below it (a floor fitted at ~0) is named, not drawn
    dmin = min(list(y) + list(ok["min_dev_error"]))
    vals = list(y) + list(ok["min_dev_error"]) + [v for v in (rg, floor, data.bayes) if v and v > dmin / 3]
    vals += [p["value"] for p in lc.get("predictions") or [] if p.get("value") and p["value"] > dmin / 5]
    ymin, ymax = min(vals), max(vals)
    band = None
    if fit is not None:
        xs, _, blo, bhi = _band(fit, x.min() / 1.4, x.max() * EXTRAPOLATE)
        if blo is not None:
            # the band may run to ~0 far out; keep the axis on the data, not the band's tail
            ymin = min(ymin, max(float(np.nanmin(blo)), ymin / 3))
            ymax = max(ymax, min(float(np.nanmax(bhi)), ymax * 1.5))
            band = (xs, blo, bhi)
    ylim = (ymin / 1.25, ymax * 1.2)
    _log_axes(
        ax,
        *ylim,
        pct=pct,
        xlabel=f"{xlabel or data.data_unit + ' m'} (log scale)",
        ylabel=f"{ylabel or data.metric_label} (log scale)",
    )
    ax.set_xlim(xlo, xhi)

    # regions of the fitted curve: small data | power law | irreducible
    s_end, i_start = regions.get("small_data_end"), regions.get("irreducible_start")
    if fit is not None and (s_end or i_start):
        a = min(max(s_end or xlo, xlo), xhi)
        b = min(max(i_start or xhi, a), xhi)
        for name, (left, r) in (("small data", (xlo, a)), ("power law", (a, b)), ("irreducible", (b, xhi))):
            if r <= left:
                continue
            ax.axvspan(left, r, color=REGION[name], alpha=0.5, lw=0, zorder=0)
            frac = math.log(r / left) / math.log(xhi / xlo)
            if frac > 0.09:
                ax.text(
                    math.sqrt(left * r),
                    0.02,
                    name,
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="#5c7080",
                    fontweight="bold",
                )

    # horizontal levels
    def hline(v, color, ls, text, va="center"):
        ax.axhline(v, color=color, ls=ls, lw=1.2, zorder=1)
        ax.text(xhi, v, " " + text, color=color, va=va, ha="left", fontsize=9, clip_on=False)

    if rg and ylim[0] < rg < ylim[1] * 1.01:
        hline(rg, RED, (0, (6, 3)), f"random guess {fmt.pct(rg) if pct else f'{rg:.3g}'}")
    if floor is not None and floor <= ylim[0]:
        ax.text(
            xhi,
            ylim[0],
            f" floor {fmt.pct(floor) if pct else f'{floor:.2g}'}\n (below the axis)",
            color=GREEN,
            va="bottom",
            ha="left",
            fontsize=9,
            clip_on=False,
        )
    if floor and floor > ylim[0]:
        lab = f"floor {fmt.pct(floor) if pct else f'{floor:.3g}'}" + (f" ({fl['form']})" if fl.get("form") else "")
        if floor_ci and None not in floor_ci:
            flo = max(floor_ci[0], ylim[0])
            ax.axhspan(flo, floor_ci[1], color=GREEN, alpha=0.08, lw=0, zorder=0)
        hline(floor, GREEN, (0, (2, 2)), lab, va="bottom")  # above the Bayes label when both are close
    if data.bayes and data.bayes > ylim[0]:
        hline(data.bayes, "#7157d9", (0, (1, 2)), f"Bayes error {fmt.pct(data.bayes) if pct else data.bayes}", va="top")

    # every trial, faint; then the per-subset best medians with the seed spread
    if len(ok):
        jit = np.exp(np.random.default_rng(0).uniform(-0.04, 0.04, len(ok)))
        ax.scatter(
            ok["data_size"].to_numpy(float) * jit,
            ok["min_dev_error"],
            s=14,
            color="#5c7080",
            alpha=0.45,
            lw=0,
            zorder=2,
            label=f"every trial ({len(ok)})",
        )
    if band is not None:
        xs, blo, bhi = band
        ax.fill_between(xs, blo, bhi, color=BLUE, alpha=0.13, lw=0, zorder=1, label="90% prediction band")
    if fit is not None:
        xin = np.geomspace(x.min(), x.max(), 100)
        xout = np.geomspace(x.max(), x.max() * EXTRAPOLATE, 60)
        ax.plot(xin, fit.predict(xin), color=BLUE, lw=2, zorder=3, label=f"fitted law ({lc.get('form', fit.form)})")
        ax.plot(
            xout,
            fit.predict(xout),
            color=BLUE,
            lw=2,
            ls=(0, (5, 3)),
            zorder=3,
            label=f"extrapolation to {EXTRAPOLATE}× data",
        )
    ax.errorbar(
        x,
        y,
        yerr=[np.clip(y - ylo, 0, None), np.clip(yhi - y, 0, None)],
        fmt="o",
        ms=6,
        color=INK,
        mfc="white",
        mew=1.8,
        capsize=3,
        lw=1.2,
        zorder=4,
        label=points_label,
    )
    for p in lc.get("predictions") or []:
        if p.get("value") and p["data_size"] == max(q["data_size"] for q in lc["predictions"]):
            v = p["value"]
            ax.plot([p["data_size"]], [v], marker="D", color=BLUE, ms=6, zorder=5)
            txt = f"{EXTRAPOLATE}× data: {fmt.pct(v) if pct else f'{v:.3g}'}"
            if p.get("lo") is not None and p.get("hi") is not None:
                txt += f"\n[{fmt.pct(p['lo'])}, {fmt.pct(p['hi'])}]" if pct else f"\n[{p['lo']:.3g}, {p['hi']:.3g}]"
            ax.annotate(
                txt,
                (p["data_size"], v),
                xytext=(-10, 10),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=9,
                color=BLUE,
                zorder=6,
                bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": "none", "alpha": 0.85},
            )
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.13), ncol=legend_cols, fontsize=8.5)
    return ax


def per_size(data: ReportData) -> bytes | None:
    curves = curves_by_size(data.trials)
    if not curves:
        return None
    pct = _pct_axis(data)
    allv = np.concatenate([c["lo"] for c in curves] + [c["hi"] for c in curves])
    allv = allv[allv > 0]
    if not len(allv):
        return None
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes((6.4, 4.6))
        _log_axes(
            ax, allv.min() / 1.15, allv.max() * 1.15, pct=pct, xlabel=f"{data.data_unit} m", ylabel=data.metric_label
        )
        cmap = matplotlib.colormaps.get_cmap("viridis")
        lp = np.log([max(c["params"], 1) for c in curves])
        span = (lp.max() - lp.min()) or 1.0
        for c, logp in zip(curves, lp):
            col = cmap(0.05 + 0.8 * (logp - lp.min()) / span)
            ax.errorbar(
                c["x"],
                c["y"],
                yerr=[np.clip(c["y"] - c["lo"], 0, None), np.clip(c["hi"] - c["y"], 0, None)],
                fmt="-o",
                ms=4,
                lw=1.6,
                capsize=2,
                color=col,
                label=f"{c['label']} ({fmt.human(c['params'])} params)",
            )
        ax.legend(loc="best", fontsize=8, ncol=1 if len(curves) <= 8 else 2)
        return _png(fig)


def model_size(data: ReportData) -> bytes | None:
    pts = [p for p in data.points if p.get("params")]
    if not pts:
        return None
    x = np.array([p["data_size"] for p in pts], float)
    s = np.array([p["params"] for p in pts], float)
    fit, law = data.size_fit, data.size_law or {}
    sizes = data.trials.loc[data.trials["params"].notna(), "params"].to_numpy(float)
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes((6.4, 4.6))
        lo_v = min(s.min(), sizes.min() if len(sizes) else s.min())
        hi_v = max(s.max(), sizes.max() if len(sizes) else s.max())
        xhi = x.max() * (EXTRAPOLATE * 1.4 if fit is not None else 1.5)
        if fit is not None:
            xs, _, blo, bhi = _band(fit, x.min(), x.max() * EXTRAPOLATE)
            if blo is not None:
                ax.fill_between(xs, blo, bhi, color=ORANGE, alpha=0.13, lw=0, label="90% band")
                lo_v, hi_v = min(lo_v, max(blo.min(), lo_v / 4)), max(hi_v, min(bhi.max(), hi_v * 4))
            xin, xout = np.geomspace(x.min(), x.max(), 60), np.geomspace(x.max(), x.max() * EXTRAPOLATE, 40)
            bp = law.get("exponent", fit.exponent)
            ax.plot(
                xin,
                fit.predict(xin),
                color=ORANGE,
                lw=2,
                label=f"fitted s ∝ m^{bp:.2f}" if bp is not None else "fitted law",
            )
            ax.plot(xout, fit.predict(xout), color=ORANGE, lw=2, ls=(0, (5, 3)))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x.min() / 1.5, xhi)
        ax.set_ylim(lo_v / 1.6, hi_v * 1.6)
        for v in np.unique(sizes):  # the sizes the search could choose from
            ax.axhline(v, color=GREY, lw=0.6, ls=":", zorder=0)
        ax.scatter(x, s, s=40, color=INK, zorder=4, label="best model per subset")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.human(v)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.human(v)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="major")
        ax.set_xlabel(f"{data.data_unit} m")
        ax.set_ylabel("parameters of the best model")
        ax.legend(loc="upper left", fontsize=8)
        return _png(fig)


def factors(data: ReportData) -> bytes | None:
    levels = {k: v for k, v in data.factors.items() if v.get("points")}
    if not levels:
        return None
    pct = _pct_axis(data)
    allx = [p["data_size"] for v in levels.values() for p in v["points"]]
    ally = [p["error"] for v in levels.values() for p in v["points"] if p["error"] > 0]
    if not ally:
        return None
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes((9.6, 5.0))
        _log_axes(
            ax, min(ally) / 1.3, max(ally) * 1.25, pct=pct, xlabel=f"{data.data_unit} m", ylabel=data.metric_label
        )
        ax.set_xlim(min(allx) / 1.5, max(allx) * 2.5)
        colors = matplotlib.colormaps.get_cmap("tab10")
        for i, (level, v) in enumerate(sorted(levels.items())):
            col = colors(i % 10)
            x = np.array([p["data_size"] for p in v["points"]], float)
            y = np.array([p["error"] for p in v["points"]], float)
            lab = str(level)
            lcd = v.get("summary") or {}
            if lcd.get("exponent") is not None:
                ci = lcd.get("exponent_ci") or [None, None]
                lab += f": m^{lcd['exponent']:.2f}"
                if None not in ci:
                    lab += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
            ax.plot(x, y, "o", color=col, ms=6, label=lab)
            if v.get("fit") is not None:
                xs, yf, blo, bhi = _band(v["fit"], x.min(), x.max() * 2)
                ax.plot(xs, yf, color=col, lw=1.8)
                if blo is not None:
                    ax.fill_between(xs, blo, bhi, color=col, alpha=0.10, lw=0)
        ax.legend(loc="best", fontsize=9, title="factor level: exponent [90% CI]", title_fontsize=9)
        return _png(fig)


def weighting(data: ReportData) -> bytes | None:
    """Auxiliary-data weighting: median dev error (bars: seed range) against the weight w of the
    auxiliary examples, one panel per target data size, one line per model size; the chosen w ringed."""
    w = data.summary.get("weighting")
    groups = [g for g in (w.get("by_data_size") or []) if g.get("models")] if isinstance(w, dict) else []
    if not groups:
        return None
    pct = _pct_axis(data)
    n = len(groups)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    colors = matplotlib.colormaps.get_cmap("viridis")
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(3.6 * cols + 0.6, 3.0 * rows + 0.4))
        axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        for ax, g in zip(axes.flat, groups):
            k = len(g["models"])
            for j, m in enumerate(g["models"]):
                col = colors(0.15 + 0.7 * j / max(1, k - 1))
                c = m["curve"]
                x = np.array([p["weight"] for p in c], float)
                y = np.array([p["dev_error"] for p in c], float)
                lo = np.array([p.get("dev_error_lo", p["dev_error"]) for p in c], float)
                hi = np.array([p.get("dev_error_hi", p["dev_error"]) for p in c], float)
                # w = 0 on a linear axis: weights are typically 0, 0.1 ... 1, a few values
                ax.errorbar(
                    x,
                    y,
                    yerr=[y - lo, hi - y],
                    fmt="o-",
                    color=col,
                    ms=4,
                    lw=1.5,
                    capsize=2,
                    label=f"{m.get('label', '')} ({fmt.human(m.get('params') or 0)})",
                )
                ax.plot([m["best_weight"]], [m["best_dev_error"]], "o", ms=11, mfc="none", mec=RED, mew=1.5)
            ax.set_title(
                f"{fmt.human(g['data_size'])} target + {fmt.human(g.get('aux_size', 0))} auxiliary", fontsize=10
            )
            ws = sorted({p["weight"] for m in g["models"] for p in m["curve"]})
            pos = [v for v in ws if v > 0]
            if pos and max(pos) / min(pos) > 20:  # weights like 0, 0.01, 0.1, 1: log spacing, 0 kept
                ax.set_xscale("symlog", linthresh=min(pos), linscale=0.5)
            ax.xaxis.set_major_locator(FixedLocator(ws))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("weight w of auxiliary examples")
            ax.grid(True)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.pct(v) if pct else f"{v:.3g}"))
        for ax in axes[:, 0]:
            ax.set_ylabel(data.metric_label)
        axes.flat[0].legend(loc="best", fontsize=8, title="model", title_fontsize=8)
        return _png(fig)


REACH_COLORS = {"<=2x": BLUE, "<=4x": ORANGE, ">4x": RED}


def _reach(factor: float) -> str:
    return "<=2x" if factor <= 2.01 else "<=4x" if factor <= 4.01 else ">4x"


def draw_backtest(rows: list[dict], ledger: list[dict], *, pct: bool) -> bytes | None:
    """Forecast against later measurement: a point per (prefix, later point) of the backtest and per
    scored ledger forecast, with its 90% interval as a bar; on the diagonal a forecast was exact."""
    if not rows and not ledger:
        return None
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes((6.4, 4.6))
        vals = [v for r in (*rows, *ledger) for v in (r["measured"], r["lo"], r["hi"]) if v > 0]
        lo, hi = min(vals) / 1.3, max(vals) * 1.3
        ax.plot([lo, hi], [lo, hi], color=GREY, lw=1, ls="--", zorder=1, label="forecast = measured")
        for reach, color in REACH_COLORS.items():
            rs = [r for r in rows if _reach(r["factor"]) == reach]
            if rs:
                m = np.array([r["measured"] for r in rs])
                f = np.array([r["forecast"] for r in rs])
                bars = np.array([[r["forecast"] - r["lo"] for r in rs], [r["hi"] - r["forecast"] for r in rs]])
                ax.errorbar(m, f, yerr=bars, fmt="o", ms=5, color=color, alpha=0.8, lw=1, label=f"backtest, {reach}")
        if ledger:
            m = np.array([r["measured"] for r in ledger])
            f = np.array([r["value"] for r in ledger])
            bars = np.array([[r["value"] - r["lo"] for r in ledger], [r["hi"] - r["value"] for r in ledger]])
            ax.errorbar(m, f, yerr=bars, fmt="s", ms=7, mfc="none", color=INK, lw=1, label="earlier run's forecast")
        _log_axes(ax, lo, hi, pct=pct, xlabel="measured later", ylabel="forecast (90% interval)")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(FixedLocator(_nice_ticks(lo, hi)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.pct(v) if pct else f"{v:.3g}"))
        ax.legend(loc="upper left", fontsize=8)
        return _png(fig)


def backtest(data: ReportData) -> bytes | None:
    bt = data.summary.get("backtest") or {}
    return draw_backtest(bt.get("rows") or [], data.summary.get("forecast_ledger") or [], pct=_pct_axis(data))


def capacity(data: ReportData) -> bytes | None:
    """Parameters needed vs the varied option (parity's n), one colour per depth, log y: the fitted
    exponential law as a line (a straight line on this axis), a lower bound (no tried width reached
    the target) as an open triangle at the widest model tried."""
    cap = data.capacity
    if not cap or not cap.get("depths"):
        return None
    colors = matplotlib.colormaps.get_cmap("tab10")
    with matplotlib.rc_context(STYLE):
        fig, ax = _axes((9.6, 5.0))
        ax.set_yscale("log")
        for i, (d, sec) in enumerate(sorted(cap["depths"].items(), key=lambda kv: int(kv[0]))):
            col = colors(i % 10)
            rows = [r for r in sec.get("answers") or [] if r.get("params")]
            hit = [r for r in rows if r["reached"]]
            miss = [r for r in rows if not r["reached"]]
            fit = sec.get("fit") or {}
            exp = fit.get("exponential") or {}
            lab = f"depth {d}"
            if exp:
                lo, hi = exp["rate_ci90"]
                lab += f": 2^({exp['rate']:.2f}·{cap['vary']}) [{lo:.2f}, {hi:.2f}]"
            ax.plot([r["value"] for r in hit], [r["params"] for r in hit], "o", color=col, ms=6, label=lab)
            if miss:
                ax.plot([r["value"] for r in miss], [r["params"] for r in miss], "^", color=col, mfc="none", ms=8)
            if exp and hit:
                xs = np.linspace(min(r["value"] for r in hit), max(r["value"] for r in hit), 50)
                ax.plot(xs, exp["sigma"] * 2.0 ** (exp["rate"] * xs), color=col, lw=1.6)
            poly = fit.get("polynomial") or {}
            if poly and hit:
                xs = np.linspace(min(r["value"] for r in hit), max(r["value"] for r in hit), 50)
                ax.plot(xs, poly["sigma"] * xs ** poly["rate"], color=col, lw=1.0, ls="--")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt.human(v)))
        ax.grid(True, which="major")
        ax.set_xlabel(f"{cap['vary']} (data option varied)")
        ax.set_ylabel(f"parameters needed for dev error <= {fmt.pct(cap['target'])}")
        ax.legend(loc="upper left", fontsize=9, title="solid: exponential fit, dashed: polynomial", title_fontsize=8)
        return _png(fig)


PLOTS = {
    "learning_curve": learning_curve,
    "model_size_curves": per_size,
    "model_size": model_size,
    "factors": factors,
    "weighting": weighting,
    "backtest": backtest,
}


def make_plots(data: ReportData, out_dir: Path | None = None) -> dict[str, bytes]:
    """Every figure whose data exists, as name -> PNG bytes; also written to out_dir/NAME.png."""
    out = {}
    # a capacity study answers one question (parameters needed per depth); it has no learning curve
    plots = {"capacity": capacity} if data.capacity else PLOTS
    for name, fn in plots.items():
        png = fn(data)
        if png:
            out[name] = png
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, png in out.items():
            write_atomic(out_dir / f"{name}.png", lambda tmp, png=png: tmp.write_bytes(png))
    return out
