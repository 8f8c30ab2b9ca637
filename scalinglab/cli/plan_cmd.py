"""`scalinglab plan DIR --target-error E [--max-flops F]`: data, model size, compute and hours for a
target error, read off the study's learning curve and model-size law; with a FLOP budget, the joint
law's compute-optimal allocation. See scalinglab/analysis/plan.py for how each number is made.
"""

from __future__ import annotations

import json

HELP = "data, model size, compute and hours needed for a target error (and the compute-optimal split)"


def register(p):
    p.add_argument("folder", help="study output folder (holds results.sqlite)")
    p.add_argument(
        "--target-error",
        type=float,
        required=True,
        metavar="E",
        help="target dev error: a rate in (0, 1), or bits per character for a language-model study",
    )
    p.add_argument("--max-flops", type=float, metavar="F", help="FLOP budget: compute-optimal params and data")
    p.add_argument("--study", help="study name when the folder holds several")
    p.add_argument("--form", default="auto", help="learning-curve form (default auto)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    from scalinglab.analysis.diagnose import load_trials
    from scalinglab.analysis.plan import format_plan, plan
    from scalinglab.errors import bad_value
    from scalinglab.fmt import jsonable
    from scalinglab.metric import stored_metric

    where = "scalinglab plan"
    if not args.target_error > 0:  # checked before the store is opened; the upper bound needs the data
        raise bad_value(where, "--target-error", args.target_error, "a dev error > 0, e.g. 0.05")
    if args.max_flops is not None and not args.max_flops > 0:
        raise bad_value(where, "--max-flops", args.max_flops, "a FLOP budget > 0, e.g. 1e15")
    name, config, df = load_trials(args.folder, args.study, where)
    dev = df.loc[df["status"] == "ok", "device"].mode()
    p = plan(
        df,
        config,
        args.target_error,
        max_flops=args.max_flops,
        form=args.form,
        device=str(dev.iloc[0]) if len(dev) else None,
        where=where,
        metric=stored_metric(args.folder, config),
    )
    if args.json:
        print(json.dumps(jsonable({"study": name, **p}), indent=2))
        return 0
    print(f"study {name}: {int((df['status'] == 'ok').sum())} finished trials")
    print("\n".join(format_plan(p)))
    return 0
