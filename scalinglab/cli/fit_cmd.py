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
    p.add_argument("--form", default="auto",
                   help="auto (chosen by extrapolation), pow, pow_c, m4, bnsl, bnsl2, model_size")
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
            raise bad_value(f"scalinglab fit: {path}", f"--{flag} {col}", df[col][bad].iloc[0],
                            "a numeric column")
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
    from scalinglab.errors import UserError, bad_value
    from scalinglab.fit import fit_curve

    if not 0 < args.interval < 1:
        raise bad_value("scalinglab fit", "--interval", args.interval, "a level in (0, 1)")
    if args.n_boot < 0:
        raise bad_value("scalinglab fit", "--n-boot", args.n_boot, "an integer >= 0")
    xs = _predict_at(args.predict) if args.predict else []
    df = _read(args)
    groups = [(None, df)] if args.group is None else list(df.groupby(args.group, sort=True))
    out = []
    for key, g in groups:
        where = "" if key is None else f"group {args.group}={key}: "
        try:
            res = fit_curve(g[args.x].to_numpy(), g[args.y].to_numpy(), form=args.form,
                            weights=None if args.weights is None else g[args.weights].to_numpy(),
                            y0=args.y0, n_boot=args.n_boot, interval=args.interval,
                            robust=args.robust, seed=args.seed)
        except UserError as e:
            raise UserError(f"{where}{e}") from None
        pred = res.predict(xs, interval=args.interval) if xs else None
        out.append((key, res, pred))

    if args.json:
        doc = {"groups": [{"group": None if k is None else _plain(k), "fit": r.to_dict(),
                           "predictions": p.to_dict() if p is not None else None}
                          for k, r, p in out]}
        print(json.dumps(doc, indent=2))
        return 0
    for key, res, pred in out:
        title = "curve" if key is None else f"{args.group} = {key}"
        print(f"== {title} ({res.n_points} points) ==")
        print(res.report())
        if pred is not None:
            for x, y, lo, hi in zip(pred.x, pred.y, pred.lo, pred.hi):
                print(f"  predict x = {x:.4g}: y = {y:.4g}   {args.interval:.0%} interval "
                      f"[{lo:.4g}, {hi:.4g}]")
        print()
    return 0


def _plain(v):
    """Group keys from pandas may be NumPy scalars; JSON needs Python ones."""
    return v.item() if hasattr(v, "item") else v
