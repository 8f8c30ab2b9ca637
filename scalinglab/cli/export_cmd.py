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
    write_atomic(path, df.to_csv(index=False), "--csv")
    print(f"wrote {len(df)} trials to {path}", file=sys.stderr)
    return 0


def write_atomic(path: Path, text: str, field: str) -> None:
    """Write `text` to `path` whole or not at all (a per-writer temporary file, renamed; removed on
    failure); an unwritable place is one line."""
    import os

    from scalinglab.errors import UserError

    if path.is_dir():
        raise UserError(f"{field}: given {str(path)!r}, a folder; allowed: a file path")
    if not path.parent.is_dir():
        raise UserError(f"{field}: given {str(path)!r}; its folder {str(path.parent)!r} does not exist; "
                        f"allowed: a file in an existing folder")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{field}: cannot write {str(path)!r} ({e.strerror or e}); allowed: a writable "
                        f"place, or --csv - for stdout") from None
