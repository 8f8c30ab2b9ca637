"""`scalinglab export DIR --csv [FILE]`: one row per trial."""

import sys
from pathlib import Path

HELP = "export a study's trials (one row per trial) as CSV"


def register(p):
    p.add_argument("folder", help="study output folder (holds results.sqlite)")
    p.add_argument("--csv", nargs="?", const="", default="", metavar="FILE",
                   help="CSV file to write (default DIR/trials.csv; '-' for stdout)")


def run(args) -> int:
    from scalinglab.store import load_results

    df = load_results(args.folder)
    if args.csv == "-":
        df.to_csv(sys.stdout, index=False)
        return 0
    path = Path(args.csv or Path(args.folder) / "trials.csv")
    df.to_csv(path, index=False)
    print(f"wrote {len(df)} trials to {path}", file=sys.stderr)
    return 0
