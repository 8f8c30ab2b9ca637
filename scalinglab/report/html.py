"""The HTML report: one self-contained file (CSS, JS and PNGs inline; opens with no network).

Jinja2 with autoescape on: every string from the user (study name, labels, config, error messages)
is rendered as text, so a study called `<script>alert(1)</script>` shows those characters.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from pathlib import Path

import jinja2

from scalinglab.fmt import ErrorFormat
from scalinglab.report import words
from scalinglab.report.data import EXTRAPOLATE, ReportData

TEMPLATES = Path(__file__).parent / "templates"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def context(d: ReportData, plots: dict[str, bytes]) -> dict:
    """Everything the template shows; shared with tests (plain data, nothing escaped yet)."""
    from scalinglab import __version__

    f = ErrorFormat(d.is_rate)
    cfg = d.study.get("config") or {}
    return {
        "name": d.name,
        "description": cfg.get("description") or "",
        "subtitle": words.subtitle(d),
        "head": words.headline(d, f),
        "preds": words.predictions_table(d, f),
        "laws": words.laws_table(d),
        "backtest": words.backtest_section(d, f),
        "factor": words.factor_section(d, f),
        "weighting": words.weighting_table(d, f),
        "capacity": words.capacity_table(d),
        "best": words.best_table(d, f),
        "failed": words.failed_table(d),
        "trials": words.trials_table(d, f),
        "config_json": json.dumps(cfg, indent=2, sort_keys=False, default=str),
        "env": words.environment(d),
        "extrapolate": EXTRAPOLATE,
        "version": __version__,
        "written": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "folder": str(d.folder),
        "plots": {k: base64.b64encode(v).decode("ascii") for k, v in plots.items()},
    }


def render(d: ReportData, plots: dict[str, bytes]) -> str:
    return _env().get_template("report.html.j2").render(**context(d, plots))
