"""`scalinglab backtest DIR`: would this study's forecasts have held? Checked on its own points.

    scalinglab backtest runs/default [--plot backtest.png] [--csv backtest.csv]

From every prefix of the best-fit points (at least 5), the learning curve fitted as summary.json fits
it, forecast to each later point: inside the 90% interval? how far off? Also the forecasts earlier runs
of the study stored (the ledger) that later runs have measured. Only reads the store (it works on a
read-only folder); --plot and --csv write only the files named. See scalinglab/analysis/backtest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

HELP = "check the study's forecasts against its own later points (and earlier runs' stored forecasts)"


def register(p):
    p.add_argument("folder", help="study output folder (holds results.sqlite)")
    p.add_argument("--study", help="study name when the folder holds several")
    p.add_argument("--form", default="auto", help="learning-curve form (default auto, as the summary)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw forecast against measurement into this PNG")
    p.add_argument("--csv", metavar="FILE", help="also write every backtest forecast as CSV")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    import pandas as pd

    from scalinglab.analysis.backtest import MIN_POINTS, backtest_points, score_ledger, score_rows
    from scalinglab.analysis.diagnose import load_trials
    from scalinglab.analysis.points import best_points, points_list
    from scalinglab.cli.export_cmd import write_file
    from scalinglab.errors import UserError
    from scalinglab.fit.laws import LAWS
    from scalinglab.fmt import ErrorFormat, count, jsonable
    from scalinglab.metric import stored_metric
    from scalinglab.store import Store

    if args.form != "auto" and args.form not in LAWS:
        raise UserError(f"--form: given {args.form!r}; allowed: auto, {', '.join(LAWS)}")
    for flag, path, suffix in (("--plot", args.plot, ".png"), ("--csv", args.csv, None)):
        if path and suffix and Path(path).suffix.lower() != suffix:
            raise UserError(f"{flag}: given {path!r}; allowed: a file name ending in {suffix}")
    name, config, df = load_trials(args.folder, args.study, "scalinglab backtest")
    metric = stored_metric(args.folder, config)
    points = points_list(best_points(df, config.get("seeds")))
    if len(points) <= MIN_POINTS:
        raise UserError(
            f"scalinglab backtest: {args.folder}: study {name!r} has {len(points)} data sizes with finished "
            f"trials; allowed: more than {MIN_POINTS} (a forecast is made from at least {MIN_POINTS} points)"
        )
    rows = backtest_points(points, y0=metric.random_guess, form=args.form)
    with Store.open_existing(args.folder) as store:
        ledger = score_ledger(store.forecasts(name), points)
    score = score_rows(rows)
    if args.plot:  # everything computed first: a bad place is one line, and nothing else is written
        from scalinglab.report.plots import draw_backtest

        write_file(Path(args.plot), draw_backtest(rows, ledger, pct=metric.rate), "--plot")
    if args.csv:
        write_file(Path(args.csv), pd.DataFrame(rows).to_csv(index=False), "--csv")
    if args.json:
        print(json.dumps(jsonable({"study": name, "score": score, "rows": rows, "ledger": ledger}), indent=2))
        return 0
    f = ErrorFormat(metric.rate)
    print(
        f"study {name}: forecasts from each prefix of its {len(points)} best-fit points "
        f"(>= {MIN_POINTS}) to each later point"
    )
    print(
        f"{'from':>5} {'last size':>10} {'to':>9} {'x':>4} {'form':>6} {'forecast':>9} {'90% interval':>20} "
        f"{'measured':>9}"
    )
    for r in rows:
        print(
            f"{r['from_points']:>5} {count(r['from_data_size']):>10} {count(r['data_size']):>9} {r['factor']:>3.0f}x "
            f"{r['form']:>6} {f.err(r['forecast']):>9} {f.err_ci([r['lo'], r['hi']]):>20} {f.err(r['measured']):>9}"
            f"  {'inside' if r['inside'] else 'OUTSIDE'}"
        )
    for k, v in score.items():
        if v:
            print(
                f"{k:>5}: {v['n']} forecasts, {100 * v['coverage']:.0f}% inside the 90% interval, median relative "
                f"error {100 * v['median_rel_error']:.0f}%, median interval width "
                f"{100 * (v['median_width_over_value'] or 0):.0f}% of the forecast"
            )
    if ledger:
        print(
            f"forecasts stored by earlier runs, measured since: {sum(r['inside'] for r in ledger)} of "
            f"{len(ledger)} inside"
        )
        for r in ledger:
            print(
                f"  from {r['from_points']} points (to {count(r['from_data_size'])}) for {count(r['data_size'])}: "
                f"{f.err(r['value'])} {f.err_ci([r['lo'], r['hi']])}, measured {f.err(r['measured'])}"
                f"  {'inside' if r['inside'] else 'OUTSIDE'}"
            )
    else:
        print("no stored forecast has been measured yet (extend the study past its largest size to check one)")
    if args.plot:
        print(f"wrote {args.plot}")
    if args.csv:
        print(f"wrote {args.csv}")
    return 0
