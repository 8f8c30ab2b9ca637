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

    Raises UserError (one line) when `folder` is not a study folder or `fmt` is unknown.
    Nothing partial is left behind: the file appears whole (written to a temp file, then renamed).
    """
    from scalinglab.errors import bad_value
    from scalinglab.report.data import gather
    from scalinglab.report.plots import make_plots

    if fmt not in FORMATS:
        raise bad_value("report", "format", fmt, ", ".join(FORMATS))
    folder = Path(folder)
    data = gather(folder, study=study)
    plots = make_plots(data, folder / "plots")
    if fmt == "html":
        from scalinglab.report.html import render

        text, path = render(data, plots), folder / "report.html"
    else:
        from scalinglab.report.markdown import render

        text, path = render(data, plots), folder / "report.md"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["FORMATS", "write_report"]
