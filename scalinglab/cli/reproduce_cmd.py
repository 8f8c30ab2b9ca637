"""`scalinglab reproduce [--quick] [--domain D ...]`: the paper's table, measured on this machine.

    scalinglab reproduce --quick            # the smoke study of every domain: a minute or two on 2 cores
    scalinglab reproduce --domain image     # one domain's full CPU-sized study (<= 15 minutes on 2 cores)

Runs (or resumes) one study per domain of Hestness et al. (2017) into OUT/<study name>/ and writes
OUT/reproduce.md and OUT/reproduce.json: per domain beta_g and beta_p with their 90% intervals, read
from the studies' summary.json, beside the paper's. See scalinglab/analysis/reproduce.py.
"""

from __future__ import annotations

import json
from pathlib import Path

HELP = "run a CPU-sized study per domain of Hestness et al. and write the paper's table beside ours"


def register(p):
    from scalinglab.analysis.reproduce import DOMAINS

    p.add_argument("--quick", action="store_true", help="the smoke study of each domain (seconds each)")
    p.add_argument(
        "--domain", action="append", metavar="D", help=f"only these domains ({', '.join(DOMAINS)}); repeatable"
    )
    p.add_argument("--out", default="runs/reproduce", help="folder of the studies and the table (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="worker processes per study (default 1)")


def run(args) -> int:
    from scalinglab import run as run_study
    from scalinglab.analysis.reproduce import DOMAINS, domain_rows, markdown
    from scalinglab.errors import UserError
    from scalinglab.files import write_atomic
    from scalinglab.fmt import jsonable

    keys = args.domain or list(DOMAINS)
    unknown = [k for k in keys if k not in DOMAINS]
    if unknown:
        raise UserError(f"--domain: given {unknown[0]!r}; allowed: {', '.join(DOMAINS)}")
    if args.workers < 1:
        raise UserError(f"--workers: given {args.workers}; allowed: 1 or more")
    out = Path(args.out)
    rows = []
    for k in keys:
        d = DOMAINS[k]
        preset = d.quick if args.quick else d.preset
        if preset is None:
            print(f"{d.name}: {d.note}")
            rows += domain_rows(k, None, None)
            continue
        folder = out / preset
        print(f"{d.name}: scalinglab run {preset} --out {folder}", flush=True)
        run_study(preset, folder, workers=args.workers)
        summary = json.loads((folder / "summary.json").read_text())
        rows += domain_rows(k, summary, str(folder))
    title = "Hestness et al. (2017), reproduced on this machine" + (" (--quick: smoke studies)" if args.quick else "")
    md = markdown(rows, title)
    write_atomic(out / "reproduce.md", lambda tmp: tmp.write_text(md))
    write_atomic(out / "reproduce.json", lambda tmp: tmp.write_text(json.dumps(jsonable(rows), indent=2)))
    print(md)
    print(f"wrote {out / 'reproduce.md'}, {out / 'reproduce.json'}")
    return 0
