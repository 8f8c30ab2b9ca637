"""`scalinglab export DIR [--csv [FILE]] [--parquet [FILE]] [--mlflow [URI]]`: one row per trial, or
the study as MLflow runs. With no flag, the CSV (as before)."""

import sys
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.files import write_atomic

HELP = "export a study's trials (one row per trial) as CSV or Parquet, or as MLflow runs"


def register(p):
    p.add_argument("folder", help="study output folder (holds results.sqlite)")
    p.add_argument(
        "--csv",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="CSV file to write (default DIR/trials.csv; '-' for stdout); the default when no other format is given",
    )
    p.add_argument(
        "--parquet",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="Parquet file to write (default DIR/trials.parquet); needs pyarrow",
    )
    p.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        default=None,
        metavar="URI",
        help="log the study (parent run) and each trial (child runs) to MLflow; default "
        "URI sqlite:///DIR/mlflow.db; exporting again adds only new trials",
    )


def require(module: str, extra: str, flag: str):
    """Import an optional dependency, or one line naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"export: {flag} needs {module}, which is not installed; pip install 'scalinglab[{extra}]'"
        ) from None


def write_parquet(df, path: Path) -> None:
    pa = require("pyarrow", "parquet", "--parquet")
    # a column of mixed types (a tag that is a number in one trial, text in another) cannot be one
    # Parquet column: it is written as text; every other column keeps its type
    df = df.copy()
    for c in df.columns[df.dtypes == "object"]:
        try:
            pa.array(df[c], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            df[c] = df[c].map(lambda v: None if v is None else str(v))
    write_atomic(path, lambda tmp: df.to_parquet(tmp, index=False, engine="pyarrow"))


def run(args) -> int:
    from scalinglab.store import load_results

    folder = Path(args.folder)
    csv = "" if args.csv is None and args.parquet is None and args.mlflow is None else args.csv
    if args.parquet is not None:
        require("pyarrow", "parquet", "--parquet")  # before anything is written
    if args.mlflow is not None:
        require("mlflow", "mlflow", "--mlflow")
    df = load_results(folder)
    if csv == "-":
        df.to_csv(sys.stdout, index=False)
    elif csv is not None:
        path = Path(csv or folder / "trials.csv")
        write_file(path, df.to_csv(index=False), "--csv")
        print(f"wrote {len(df)} trials to {path}", file=sys.stderr)
    if args.parquet is not None:
        path = Path(args.parquet or folder / "trials.parquet")
        write_parquet(df, path)
        print(f"wrote {len(df)} trials to {path}", file=sys.stderr)
    if args.mlflow is not None:
        from scalinglab.integrations.mlflow import export_study

        r = export_study(folder, args.mlflow or None)
        print(
            f"mlflow: {r['uri']} experiment {r['experiment']!r}: study run {r['parent_run_id']}, "
            f"{r['added']} trial runs added, {r['skipped']} already there",
            file=sys.stderr,
        )
    return 0


def write_file(path: Path, data: str | bytes, field: str) -> None:
    """Write `data` (text or bytes) to the file a flag named, whole or not at all (files.write_atomic);
    a folder, a missing folder or an unwritable place is one line naming the flag."""
    from scalinglab.errors import UserError

    if path.is_dir():
        raise UserError(f"{field}: given {str(path)!r}, a folder; allowed: a file path")
    if not path.parent.is_dir():
        raise UserError(
            f"{field}: given {str(path)!r}; its folder {str(path.parent)!r} does not exist; "
            f"allowed: a file in an existing folder"
        )
    try:
        if isinstance(data, bytes):
            write_atomic(path, lambda tmp: tmp.write_bytes(data))
        else:
            write_atomic(path, lambda tmp: tmp.write_text(data, encoding="utf-8"))
    except OSError as e:
        stdout = ", or --csv - for stdout" if field == "--csv" else ""
        raise UserError(
            f"{field}: cannot write {str(path)!r} ({e.strerror or e}); allowed: a writable place{stdout}"
        ) from None
