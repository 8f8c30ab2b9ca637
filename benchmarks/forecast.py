"""Forward forecast benchmark: do a study's forecasts hold when the data is later measured?

    python benchmarks/forecast.py                         # teacher and default presets (20-40 min on 2 cores)
    python benchmarks/forecast.py --reuse runs/teacher runs/default   # score finished study folders

Each study is run to its full `sizes.max`; then, for every cut m with at least 5 points at or below it,
the learning curve is fitted exactly as summary.json fits it on the points up to m and its forecasts
are held against the points measured later at 2x, 4x and 8x m (analysis/backtest.py). With nested
subsets and a search that chooses per data size, the points up to m are those a study stopped at m
would have measured, so this is the forward check (a run stopped at m, then continued to 8m). Beside
it, the joint law's forecast with the largest model tried (summary `model_axis`, "a" question), fitted
on the candidates up to m, where the grid allows one. Prints per study and reach: checks, coverage
of the 90% interval, median relative error, median interval width over the forecast value.
Targets (issue 14): >= 85% coverage, median relative error <= 25% at 2x-4x, median width <= 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REACH = {"2x": 2, "4x": 4, "8x": 8}


def study_points(folder: Path):
    from scalinglab.analysis.diagnose import load_trials
    from scalinglab.analysis.points import best_points, candidate_scores, points_list
    from scalinglab.metric import stored_metric

    name, config, df = load_trials(folder)
    return name, points_list(best_points(df, config.get("seeds"))), candidate_scores(df), stored_metric(folder, config)


def joint_rows(cands, points, y0):
    """Forecasts of the joint law at the largest model tried (summary's model_axis), fitted on the
    candidates up to each cut, with that prefix's own small-data boundary."""
    from scalinglab.analysis.backtest import MIN_POINTS, _check
    from scalinglab.analysis.model_axis import model_axis
    from scalinglab.analysis.summary import fit_floor
    from scalinglab.fit.engine import FitError

    rows = []
    measured = {p["data_size"]: p["error"] for p in points}
    for k in range(MIN_POINTS, len(points)):
        cut, prefix = points[k - 1]["data_size"], points[:k]
        try:
            floor = fit_floor(prefix, y0=y0)
            ax = model_axis(
                cands[cands["data_size"] <= cut], prefix, floor, y0=y0, size_fit=None, factors=REACH.values()
            )
        except (FitError, ValueError):  # no fit, no forecast
            continue
        for pr in (ax or {}).get("predictions", []):
            if pr["data_size"] in measured:
                f = pr["largest_model"]
                rows.append(
                    {"factor": pr["data_size"] / cut, **_check(f["value"], f["lo"], f["hi"], measured[pr["data_size"]])}
                )
    return rows


def table(name: str, method: str, rows: list[dict]):
    for reach, f in REACH.items():
        rs = [r for r in rows if abs(r["factor"] - f) < 1e-6]
        _line(name, method, reach, rs)
        flagged = [r for r in rs if not r.get("supported", True)]
        if flagged:  # the same, without the forecasts the summary flags as unsupported (small-data region)
            _line(name, method + ", supported", reach, [r for r in rs if r.get("supported", True)])


def _line(name, method, reach, rs):
    if not rs:
        print(f"{name:<10} {method:<24} {reach:>4} {'-':>6}")
        return
    cov = np.mean([r["inside"] for r in rs])
    rel = np.median([r["rel_error"] for r in rs])
    wid = np.median([r["width_over_value"] for r in rs if r["width_over_value"] is not None])
    print(f"{name:<10} {method:<24} {reach:>4} {len(rs):>6} {100 * cov:>8.0f}% {100 * rel:>9.0f}% {wid:>8.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", nargs="+", default=["teacher", "default"], help="presets or study files")
    ap.add_argument("--reuse", nargs="+", type=Path, help="finished study folders instead of running")
    args = ap.parse_args()
    from scalinglab.analysis.backtest import backtest_points

    with tempfile.TemporaryDirectory() as tmp:
        folders = args.reuse or []
        if not args.reuse:
            for s in args.studies:
                out = Path(tmp) / Path(s).stem
                subprocess.run(
                    [sys.executable, "-m", "scalinglab.cli.main", "run", s, "--out", str(out), "--no-progress"],
                    check=True,
                )
                folders.append(out)
        print(
            f"{'study':<10} {'forecast':<24} {'reach':>4} {'checks':>6} {'inside':>9} {'median err':>10} {'width':>8}"
        )
        for folder in folders:
            name, points, cands, metric = study_points(folder)
            y0 = metric.random_guess
            rows = [r for r in backtest_points(points, y0=y0) if r["factor"] in REACH.values()]
            table(name, "learning curve", rows)
            table(name, "joint, N_max", joint_rows(cands, points, y0))


if __name__ == "__main__":
    main()
