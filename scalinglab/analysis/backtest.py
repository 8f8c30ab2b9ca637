"""Every forecast checked: the study's own points, and the forecasts of its earlier runs.

- `backtest_points`: from each prefix of a study's best-fit points (at least MIN_POINTS), the learning
  curve fitted exactly as summary.json fits it, forecast to every later point; whether the measurement
  fell inside the 90% interval and how far it was. This is the check a user can run on their own data
  today: it asks of the fit what the summary's forecasts promise (2x-8x beyond the last point).
- The forecast ledger: each run's summary forecasts are stored (store.add_forecasts); when a later run of
  the same study has measured those sizes (a larger `sizes.max`), `score_ledger` holds them against the
  measurement. Unlike the backtest, these forecasts were made before the data existed.
"""

from __future__ import annotations

import numpy as np

from scalinglab.fit.engine import FitError

MIN_POINTS = 5  # the fewest points a forecast is made from (the summary fits from 4, but 4 is a guess)
INTERVAL = 0.9


def _check(forecast: float, lo: float, hi: float, measured: float) -> dict:
    return {
        "inside": bool(lo <= measured <= hi),
        "rel_error": float(abs(forecast - measured) / measured),
        "width_over_value": float((hi - lo) / forecast) if forecast > 0 else None,
    }


def backtest_points(points: list[dict], *, y0: float | None, form: str = "auto") -> list[dict]:
    """One row per (prefix, later point): the forecast from the first k points to a later data size."""
    from scalinglab.analysis.summary import fit_learning_curve  # the summary's own fit

    rows = []
    for k in range(MIN_POINTS, len(points)):
        try:
            fit = fit_learning_curve(points[:k], y0=y0, form=form)
        except FitError:
            continue
        later = points[k:]
        last = points[k - 1]["data_size"]
        supported = fit.unsupported is None  # the summary flags such forecasts (CurveFit.unsupported)
        pred = fit.predict(np.array([p["data_size"] for p in later], float), interval=INTERVAL)
        for p, v, lo, hi in zip(later, pred.y, pred.lo, pred.hi):
            rows.append(
                {
                    "from_points": k,
                    "from_data_size": last,
                    "data_size": p["data_size"],
                    "factor": p["data_size"] / last,
                    "form": fit.form,
                    "supported": supported,
                    "forecast": float(v),
                    "lo": float(lo),
                    "hi": float(hi),
                    "measured": float(p["error"]),
                    **_check(float(v), float(lo), float(hi), float(p["error"])),
                }
            )
    return rows


def score_rows(rows: list[dict]) -> dict:
    """Coverage, median relative error and median relative interval width, overall and by how far the
    forecast reached (up to 2x, up to 4x, beyond)."""

    def agg(rs):
        if not rs:
            return None
        widths = [r["width_over_value"] for r in rs if r["width_over_value"] is not None]
        return {
            "n": len(rs),
            "coverage": float(np.mean([r["inside"] for r in rs])),
            "median_rel_error": float(np.median([r["rel_error"] for r in rs])),
            "median_width_over_value": float(np.median(widths)) if widths else None,
        }

    reach = {"<=2x": lambda f: f <= 2.01, "<=4x": lambda f: 2.01 < f <= 4.01, ">4x": lambda f: f > 4.01}
    out = {"all": agg(rows), **{k: agg([r for r in rows if ok(r["factor"])]) for k, ok in reach.items()}}
    # the forecasts the summary stands behind: those from prefixes past the small-data region
    out["supported"] = agg([r for r in rows if r.get("supported", True)])
    out["unsupported_checks"] = sum(not r.get("supported", True) for r in rows)
    return out


def backtest_section(points: list[dict], *, y0: float | None, form: str = "auto") -> dict | None:
    """summary.json's `backtest`: the rows and their scores (None with too few points)."""
    if len(points) <= MIN_POINTS:
        return None
    rows = backtest_points(points, y0=y0, form=form)
    return {"min_points": MIN_POINTS, "interval": INTERVAL, "rows": rows, "score": score_rows(rows)}


def ledger_entries(summary_curve: dict, points: list[dict]) -> list[dict]:
    """The forecasts of one summary's learning curve, as the ledger keeps them."""
    basis = [[p["data_size"], round(float(p["error"]), 6)] for p in points]
    return [
        {
            "data_size": int(p["data_size"]),
            "value": float(p["value"]),
            "lo": float(p["lo"]),
            "hi": float(p["hi"]),
            "form": summary_curve.get("form"),
            "basis": basis,
        }
        for p in summary_curve.get("predictions") or []
    ]


def score_ledger(forecasts: list[dict], points: list[dict]) -> list[dict]:
    """Each stored forecast whose data size has since been measured (and lies beyond the points it was
    made from), with the measurement and how it did."""
    measured = {p["data_size"]: float(p["error"]) for p in points}
    out = []
    for f in forecasts:
        m = measured.get(f["data_size"])
        made_from = max(b[0] for b in f["basis"])
        if m is None or f["data_size"] <= made_from:
            continue
        out.append(
            {
                **{k: f[k] for k in ("made_at", "data_size", "value", "lo", "hi", "form")},
                "from_data_size": made_from,
                "from_points": len(f["basis"]),
                "measured": m,
                **_check(f["value"], f["lo"], f["hi"], m),
            }
        )
    return sorted(out, key=lambda r: (r["made_at"], r["data_size"]))
