"""The study report: what people look at after a study.

    from scalinglab.report import write_report
    write_report("runs/smoke")               # -> runs/smoke/report.html (self-contained)
    write_report("runs/smoke", fmt="md")     # -> runs/smoke/report.md + runs/smoke/plots/*.png

Reads only the store (results.sqlite) and summary.json of the folder; the figures are also saved
as DIR/plots/*.png for papers.
"""

from __future__ import annotations

from pathlib import Path

FORMATS = ("html", "md")


def write_report(folder: str | Path, fmt: str = "html", *, study: str | None = None) -> Path:
    """Write DIR/report.html (or report.md) for the study in `folder`; returns its path.

    Raises UserError (one line) when `folder` is not a study folder, `fmt` is unknown or the folder
    cannot be written. Nothing partial is left behind: the file appears whole (written to a temporary
    file of this process, then renamed; the temporary file is removed if anything fails).
    """
    folder = Path(folder)
    text = render_report(folder, fmt, study=study, plots_dir=folder / "plots")
    path = folder / f"report.{fmt}"
    _write_whole(path, text.encode("utf-8"))
    return path


def render_report(
    folder: str | Path, fmt: str = "html", *, study: str | None = None, plots_dir: Path | None = None
) -> str:
    """The report's text, writing nothing unless `plots_dir` is given (where the PNGs also go)."""
    from scalinglab.errors import bad_value
    from scalinglab.report.data import gather
    from scalinglab.report.plots import make_plots

    if fmt not in FORMATS:
        raise bad_value("report", "format", fmt, ", ".join(FORMATS))
    data = gather(Path(folder), study=study)
    plots = make_plots(data, None)
    if plots_dir is not None:
        _write_plots(Path(plots_dir), plots)
    if fmt == "html":
        from scalinglab.report.html import render
    else:
        from scalinglab.report.markdown import render
    return render(data, plots)


def _write_plots(out_dir: Path, plots: dict) -> None:
    from scalinglab.errors import UserError

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"{out_dir}: cannot write the report's plots ({e.strerror or e}); allowed: a writable "
            f"study folder (or `scalinglab report DIR --stdout`)"
        ) from None
    for name, png in plots.items():
        _write_whole(out_dir / f"{name}.png", png)


def _write_whole(path: Path, blob: bytes) -> None:
    from scalinglab.errors import UserError
    from scalinglab.files import write_atomic

    try:
        write_atomic(path, lambda tmp: tmp.write_bytes(blob))
    except OSError as e:
        raise UserError(
            f"{path}: cannot write the report ({e.strerror or e}); allowed: a writable study "
            f"folder (or `scalinglab report DIR --stdout`)"
        ) from None


__all__ = ["FORMATS", "render_report", "write_report"]
