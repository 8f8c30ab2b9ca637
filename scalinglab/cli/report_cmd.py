"""`scalinglab report DIR [--format html|md] [--open]`: write the study report of a folder."""

from __future__ import annotations

import sys

HELP = "write a study's report (DIR/report.html, self-contained; or --format md) from its store"


def register(p):
    p.add_argument("folder", help="study output folder (holds results.sqlite and summary.json)")
    p.add_argument(
        "--format",
        default="html",
        choices=["html", "md"],
        help="html: one self-contained file (default); md: Markdown with PNGs in DIR/plots",
    )
    p.add_argument("--study", default=None, help="study name, when the store holds more than one")
    p.add_argument("--open", action="store_true", help="open the report in a browser when written")
    p.add_argument(
        "--stdout",
        action="store_true",
        help="print the report instead of writing it (writes nothing: works on a read-only folder)",
    )


def run(args) -> int:
    from scalinglab.report import render_report, write_report

    if args.stdout:
        sys.stdout.write(render_report(args.folder, args.format, study=args.study))
        return 0
    path = write_report(args.folder, args.format, study=args.study)
    print(f"wrote {path}", file=sys.stderr)
    if args.open:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            print(f"no browser found; open {path} yourself", file=sys.stderr)
    return 0
