"""`scalinglab diagnose DIR [--model-size width=4]`: capacity-bound, data-bound or at the floor?

    scalinglab diagnose runs/saturation --model-size width=4

Without --model-size the subject is the best-fit size at the largest data size. Everything is computed
before anything is printed (bad input: one line, exit 2). See scalinglab/analysis/diagnose.py.
"""

from __future__ import annotations

import json

HELP = "say whether the model family is capacity-bound, data-bound or at the floor, with evidence"


def register(p):
    p.add_argument("folder", help="study output folder (holds results.sqlite)")
    p.add_argument(
        "--model-size",
        metavar="KNOB=V[,KNOB=V]",
        help="the size you use now, e.g. width=4 or channels=8,depth=3 "
        "(default: the best-fit size at the largest data size)",
    )
    p.add_argument("--study", help="study name when the folder holds several")
    p.add_argument("--form", default="auto", help="learning-curve form (default auto)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args) -> int:
    from scalinglab.analysis.diagnose import diagnose, format_diagnosis, load_trials
    from scalinglab.fmt import jsonable

    name, config, df = load_trials(args.folder, args.study, "scalinglab diagnose")
    weighting = None
    if config.get("aux"):  # a weighting study: also its best w per model size
        from scalinglab.analysis.weighting import format_weighting, weighting_section

        weighting = weighting_section(df, config["aux"].get("weights"))
    from scalinglab.metric import stored_metric

    d = diagnose(df, config, model_size=args.model_size, form=args.form, metric=stored_metric(args.folder, config))
    if args.json:
        print(json.dumps(jsonable({"study": name, **d, **({"weighting": weighting} if weighting else {})}), indent=2))
        return 0
    print(f"study {name}: {int((df['status'] == 'ok').sum())} finished trials")
    print("\n".join(format_diagnosis(d)))
    if weighting:
        print("\n".join(format_weighting(weighting)))
    return 0
