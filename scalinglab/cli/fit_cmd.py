"""`scalinglab fit`: fit a learning curve to any table of runs (a CSV), per group.

    scalinglab fit runs.csv --x n_train --y val_error [--group model] [--form auto] \
        [--predict 1e6,1e7] [--interval 0.9] [--json]

Everything is read and fitted before anything is printed, so a bad group fails the whole command
with one line (exit 2) and no partial output.
"""

from __future__ import annotations

import json
from pathlib import Path

HELP = "fit a scaling law (learning curve) to a CSV of runs, with calibrated intervals"


def register(p):
    p.add_argument("csv", help="CSV file with one row per run (or per point)")
    p.add_argument("--x", required=True, metavar="COLUMN", help="data-size column (x > 0)")
    p.add_argument("--y", required=True, metavar="COLUMN", help="error/loss column (y > 0)")
    p.add_argument("--group", metavar="COLUMN", help="fit one curve per value of this column")
    p.add_argument("--weights", metavar="COLUMN", help="seeds behind each point (optional)")
    p.add_argument(
        "--form", default="auto", help="auto (chosen by extrapolation), pow, pow_c, m4, bnsl, bnsl2, model_size"
    )
    p.add_argument("--y0", type=float, help="random-guess error, e.g. 1 - 1/classes (optional)")
    p.add_argument("--predict", metavar="X1,X2", help="comma-separated data sizes to predict at")
    p.add_argument("--interval", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap refits (default 1000)")
    p.add_argument("--robust", action="store_true", help="soft-L1 loss: outliers pull less")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def _read(args):
    import pandas as pd

    from scalinglab.errors import UserError, bad_value

    path = Path(args.csv)
    if not path.is_file():
        raise bad_value("scalinglab fit", "csv", str(path), "an existing CSV file")
    try:
        df = pd.read_csv(path)
    except Exception as e:  # pandas raises many kinds; the user needs one line
        raise UserError(f"scalinglab fit: {path}: cannot read as CSV: {e}") from None
    cols = ", ".join(map(str, df.columns))
    for flag in ("x", "y", "group", "weights"):
        col = getattr(args, flag)
        if col is not None and col not in df.columns:
            raise bad_value(f"scalinglab fit: {path}", f"--{flag}", col, f"a column of the file: {cols}")
    for flag in ("x", "y", "weights"):
        col = getattr(args, flag)
        if col is None:
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() & df[col].notna()
        if bad.any():
            raise bad_value(f"scalinglab fit: {path}", f"--{flag} {col}", df[col][bad].iloc[0], "a numeric column")
        df[col] = num
    return df


def _predict_at(text):
    from scalinglab.errors import bad_value

    try:
        xs = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        xs = []
    if not xs or any(not (v > 0) or v == float("inf") for v in xs):
        raise bad_value("scalinglab fit", "--predict", text, "comma-separated data sizes > 0")
    return xs


def run(args) -> int:
    import sys

    from scalinglab.errors import UserError, bad_value
    from scalinglab.fit import fit_curve

    if not 0 < args.interval < 1:
        raise bad_value("scalinglab fit", "--interval", args.interval, "a level in (0, 1)")
    if args.n_boot < 0:
        raise bad_value("scalinglab fit", "--n-boot", args.n_boot, "an integer >= 0")
    xs = _predict_at(args.predict) if args.predict else []
    df = _read(args)
    groups = [(None, df)] if args.group is None else list(df.groupby(args.group, sort=True))
    out, warnings = [], []
    for key, g in groups:
        where = f"scalinglab fit: {args.csv}: " + ("" if key is None else f"group {args.group}={_plain(key)}: ")
        x, y, w, seeds = aggregate(g, args, where)
        warnings += [where + msg for msg in shape_warnings(x, y, args.y)]
        try:
            res = fit_curve(
                x,
                y,
                form=args.form,
                weights=w,
                groups_y=seeds,
                y0=args.y0,
                n_boot=args.n_boot,
                interval=args.interval,
                robust=args.robust,
                seed=args.seed,
            )
        except UserError as e:
            raise UserError(f"{where}{e}") from None
        pred = res.predict(xs, interval=args.interval) if xs else None
        out.append((key, res, pred))

    for msg in warnings:
        print(f"warning: {msg}", file=sys.stderr)
    if args.json:
        doc = {
            "groups": [
                {
                    "group": None if k is None else _plain(k),
                    "fit": r.to_dict(),
                    "predictions": p.to_dict() if p is not None else None,
                }
                for k, r, p in out
            ]
        }
        print(json.dumps(doc, indent=2))
        return 0
    for key, res, pred in out:
        title = "curve" if key is None else f"{args.group} = {key}"
        print(f"== {title} ({res.n_points} points) ==")
        print(res.report())
        if pred is not None:
            for x, y, lo, hi in zip(pred.x, pred.y, pred.lo, pred.hi):
                print(f"  predict x = {x:.4g}: y = {y:.4g}   {args.interval:.0%} interval [{lo:.4g}, {hi:.4g}]")
        print()
    return 0


MAX_SEED_VALUES = 64  # values kept per x for the seed-level bootstrap (quantiles: the spread, not the rows)


def aggregate(g, args, where):
    """One point per distinct x: the median y (the engine's bootstrap is median-based), the number of
    rows behind it as its weight (x the mean given weight), and up to MAX_SEED_VALUES quantiles of its
    rows' y as their spread, which the bootstrap resamples. A million rows at 20 sizes fit as 20
    points. Bad values are named by file and column (no NumPy reprs)."""
    import numpy as np

    from scalinglab.errors import bad_value

    cols = [args.x, args.y] + ([args.weights] if args.weights else [])
    d = g[cols].dropna(how="all")
    for flag, col in (("x", args.x), ("y", args.y), ("weights", args.weights)):
        if col is None:
            continue
        v = d[col].to_numpy(float)
        bad = ~np.isfinite(v)
        if bad.any():
            raise bad_value(
                where.rstrip(": "), f"--{flag} {col}", v[bad][0], "finite numbers (no empty cells, NaN or inf)"
            )
        if flag == "x" and (v <= 0).any():
            raise bad_value(where.rstrip(": "), f"--x {col}", v[v <= 0][0], "data sizes > 0")
        if flag == "y" and (v <= 0).any():
            raise bad_value(where.rstrip(": "), f"--y {col}", v[v <= 0][0], "errors > 0 (fitted in log space)")
        if flag == "weights" and (v <= 0).any():
            raise bad_value(where.rstrip(": "), f"--weights {col}", v[v <= 0][0], "numbers > 0")
    n_x = d[args.x].nunique()
    if n_x < 4:
        raise bad_value(where.rstrip(": "), f"--x {args.x}", f"{n_x} distinct values", "at least 4 distinct data sizes")
    by = d.groupby(args.x, sort=True)[args.y]
    x = np.asarray(by.median().index, float)
    y = by.median().to_numpy(float)
    n = by.size().to_numpy(float)
    w = n * (d.groupby(args.x, sort=True)[args.weights].mean().to_numpy(float) if args.weights else 1.0)
    if n.max() <= 1:  # one row per x: as given (no seed-level spread to resample)
        return x, y, w, None
    q = np.linspace(0, 1, MAX_SEED_VALUES)
    seeds = [
        v if v.size <= MAX_SEED_VALUES else np.quantile(v, q)
        for v in (np.sort(a) for a in by.apply(lambda s: s.to_numpy(float)))
    ]
    return x, y, w, seeds


def shape_warnings(x, y, ycol) -> list[str]:
    """A learning curve falls with data. Say so when this one is flat (its floor and exponent are then
    not identified) or rises (more data hurt: a bug, a wrong column, a leak?)."""
    import numpy as np

    lx, ly = np.log(x), np.log(y)
    slope = np.polyfit(lx, ly, 1)[0]
    spread = (y.max() - y.min()) / np.median(y)
    if spread < 0.02:
        return [
            f"--y {ycol} is flat (it varies by {spread:.1%} over x {x.min():g}..{x.max():g}): the fit's "
            f"floor and exponent are not meaningful"
        ]
    if slope > 0 and y[-1] > y[0]:
        return [
            f"--y {ycol} increases with x (log-log slope {slope:+.2f}): a learning curve falls with more "
            f"data; check the columns (--x, --y) and the runs"
        ]
    return []


def _plain(v):
    """Group keys from pandas may be NumPy scalars; JSON needs Python ones."""
    return v.item() if hasattr(v, "item") else v
