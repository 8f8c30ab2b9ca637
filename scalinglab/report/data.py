"""Everything a report shows, gathered from the store and `summary.json` only (never a run's memory).

`gather(folder)` returns a `ReportData`: the trials frame, the summary (or one rebuilt from the
trials when `summary.json` is missing), the study row (config as run, machine, versions) and the
fits rebuilt from the stored points, so plots can draw bands with `CurveFit.predict`.

Every optional piece may be absent (no fit below 4 data sizes, no model-size law, no factors, no
failed trials): consumers test for None / empty, they never index blindly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from scalinglab.analysis.summary import PREDICT_FACTORS, law_dict, read_fit
from scalinglab.errors import UserError
from scalinglab.fit.laws import LAWS
from scalinglab.fmt import finite

# what a refit may raise on odd points (FitError is a UserError); anything else is a bug and propagates
FIT_ERRORS = (UserError, ValueError, ArithmeticError, np.linalg.LinAlgError)
EXTRAPOLATE = PREDICT_FACTORS[-1]  # the learning curve is drawn (dashed) out to this multiple of the largest subset


@dataclass
class ReportData:
    folder: Path
    name: str
    trials: pd.DataFrame  # one row per trial (Store.frame)
    summary: dict  # summary.json (possibly rebuilt)
    study: dict  # {"config", "source", "info", "started_at", "updated_at"}
    points: list[dict]  # per-subset best candidates
    lc_fit: object | None = None  # CurveFit of the learning curve: from fits.npz, else refitted from points
    size_fit: object | None = None  # CurveFit of the model-size law
    factors: dict = field(default_factory=dict)  # level -> {"points", "fit"}
    notes: list[str] = field(default_factory=list)  # things the reader should know (fit failed, ...)

    @property
    def capacity(self) -> dict | None:
        """summary.json's "capacity" section (analysis/capacity.py), for a kind = "capacity" study."""
        c = self.summary.get("capacity")
        return c if isinstance(c, dict) else None

    @property
    def lc(self) -> dict | None:
        return self.summary.get("learning_curve") or None

    @property
    def size_law(self) -> dict | None:
        return self.summary.get("model_size_law") or None

    @property
    def floor(self) -> dict | None:
        """{"value", "ci"} of the irreducible error: summary.json's `floor` (the floor form that
        extrapolates best), else the learning curve's own floor; None for a form without one."""
        fl = self.summary.get("floor")
        if isinstance(fl, dict) and finite(fl.get("value")) is not None:
            return {
                "value": finite(fl["value"]),
                "ci": fl.get("ci90") or fl.get("ci"),
                "form": fl.get("form"),
                "kind": fl.get("kind"),  # "irreducible" or "capacity floor of the model grid" (model_axis)
                "irreducible_start": finite(fl.get("irreducible_start")),
                "small_data_end": finite(fl.get("small_data_end")),
            }
        lc = self.lc or {}
        reg = lc.get("regions") or {}
        law = LAWS.get(lc.get("form"))
        if law is None or not law.has_floor or finite(reg.get("floor")) is None:
            return None
        return {
            "value": finite(reg["floor"]),
            "ci": reg.get("floor_ci"),
            "form": lc.get("form"),
            "irreducible_start": finite(reg.get("irreducible_start")),
        }

    @property
    def regions(self) -> dict:
        """Both boundaries from the floor form (as the floor line), else from the learning curve."""
        reg = (self.lc or {}).get("regions") or {}
        fl = self.floor or {}
        return {
            "small_data_end": fl.get("small_data_end") or finite(reg.get("small_data_end")),
            "irreducible_start": fl.get("irreducible_start", finite(reg.get("irreducible_start"))),
        }

    @property
    def metric_info(self) -> dict:
        """summary.json's metric (scalinglab/metric.py); older summaries: read off its description."""
        mi = self.summary.get("metric_info")
        if mi:
            return mi
        m = str(self.summary.get("metric") or "error")
        label = "dev bits per character" if "bits" in m else ("dev loss" if "loss" in m else "dev error")
        return {"label": label, "rate": "bits" not in m and "loss" not in m}

    @property
    def is_rate(self) -> bool:
        """Error rates (shown as %) unless the metric is another quantity (e.g. bits per char)."""
        ys = [p["error"] for p in self.points] or [0.5]
        return bool(self.metric_info.get("rate")) and max(ys) <= 1

    @property
    def metric_label(self) -> str:
        return self.metric_info.get("label") or "dev error"

    @property
    def data_unit(self) -> str:
        cpe = self.summary.get("chars_per_example")  # charlm: an example is a window of characters
        if cpe:
            return f"training examples of {cpe} characters,"
        unit = self.summary.get("data_unit")  # your own data: [data] unit
        return f"training {unit}" if unit and not self.summary.get("vocab_size") else "training examples"

    @property
    def random_guess(self) -> float | None:
        return finite(self.summary.get("random_guess_error"))

    @property
    def bayes(self) -> float | None:
        return finite(self.summary.get("bayes_error"))


def _read_summary(folder: Path) -> dict | None:
    p = folder / "summary.json"
    if not p.exists():
        return None
    try:
        s = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{p}: not readable as JSON ({e}); rerun `scalinglab run` to rewrite it") from None
    if not isinstance(s, dict):
        raise UserError(f"{p}: given a JSON {type(s).__name__}; allowed: the object written by scalinglab run")
    return s


def _points_from_trials(df: pd.DataFrame) -> list[dict]:
    from scalinglab.analysis.points import best_points, points_list

    if df.empty or not (df["status"] == "ok").any():
        return []
    return points_list(best_points(df))


def _refit(points: list[dict], form: str, y0: float | None, notes: list[str], what: str):
    """Rebuild a learning-curve fit from stored points (same engine and seed as summary.json)."""
    from scalinglab.fit import fit_curve

    if len({p["data_size"] for p in points}) < 4:
        return None
    x = np.array([p["data_size"] for p in points], float)
    y = np.array([p["error"] for p in points], float)
    w = np.array([max(p.get("n_seeds") or 1, 1) for p in points], float)
    groups = [p.get("seed_errors") or [p["error"]] for p in points]
    try:
        return fit_curve(x, y, form=form, weights=w, y0=y0, groups_y=groups)
    except FIT_ERRORS as e:  # a report must still be written; say why the band is missing
        notes.append(f"{what}: the fit could not be rebuilt ({e})")
        return None


def _refit_size(points: list[dict], notes: list[str]):
    from scalinglab.fit import fit_model_size

    pts = [p for p in points if p.get("params")]
    if len({p["data_size"] for p in pts}) < 4:
        return None
    try:
        return fit_model_size([p["data_size"] for p in pts], [p["params"] for p in pts])
    except FIT_ERRORS as e:
        notes.append(f"model-size law: the fit could not be rebuilt ({e})")
        return None


def gather(folder: str | Path, *, study: str | None = None, refit: bool = True) -> ReportData:
    """Read a study folder. Raises UserError (one line) when it is not one."""
    from scalinglab.store import Store

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; give a study output folder (e.g. runs/smoke)")
    summary = _read_summary(folder)
    with Store.open_existing(folder) as store:
        studies = store.studies()
        names = [s["name"] for s in studies]
        name = study or (summary or {}).get("study") or (names[0] if names else None)
        if name is None:
            raise UserError(f"{folder}: the store holds no study yet; run `scalinglab run` first")
        if names and name not in names:
            raise UserError(f"{folder}: study: given {name!r}; allowed: {', '.join(names)}")
        df = store.frame(name)
    row = next((s for s in studies if s["name"] == name), {"config": {}, "source": "", "info": {}})
    notes: list[str] = []
    if summary is None or summary.get("study") != name:
        notes.append("summary.json missing: points rebuilt from the trials; random-guess level unknown")
        summary = {"study": name, "trials": {"total": len(df), **df["status"].value_counts().to_dict()}}
    points = summary.get("points")
    capacity = isinstance(summary.get("capacity"), dict)  # a capacity study has no learning curve
    if not points and not capacity:
        points = _points_from_trials(df)
    points = points or []
    points = sorted(points, key=lambda p: p["data_size"])

    data = ReportData(folder=folder, name=name, trials=df, summary=summary, study=row, points=points, notes=notes)
    if summary.get("note"):
        notes.append(str(summary["note"]))
    if refit and not capacity:
        lc = data.lc
        # the fits behind summary.json's laws (fits.npz); refitted from the points where it is missing
        if lc is not None or "learning_curve" not in summary:
            form = (lc or {}).get("form") or "auto"
            data.lc_fit = read_fit(folder, "learning_curve", lc) or _refit(
                points, form, data.random_guess, notes, "learning curve"
            )
        if data.size_law is not None or "model_size_law" not in summary:
            data.size_fit = read_fit(folder, "model_size_law", data.size_law) or _refit_size(points, notes)
        # summary.json missing: the words come from the refits (same shape as summary.json's laws)
        largest = points[-1]["data_size"] if points else None
        if "learning_curve" not in summary and data.lc_fit is not None:
            summary["learning_curve"] = law_dict(data.lc_fit, largest)
        if "model_size_law" not in summary and data.size_fit is not None:
            summary["model_size_law"] = law_dict(data.size_fit, largest)
        for level, f in factor_levels(summary).items():
            pts = sorted((f or {}).get("points") or [], key=lambda p: p["data_size"])
            lc = comparison_exponent(summary, level) or (f or {}).get("learning_curve") or {}
            form = lc.get("form") or "auto"
            data.factors[str(level)] = {
                "points": pts,
                "summary": lc,
                "fit": _refit(pts, form, data.random_guess, notes, f"factor {level}") if pts else None,
            }
    return data


def comparison_exponent(summary: dict, level) -> dict | None:
    """{form, exponent, exponent_ci} of a level in summary.json's factor comparison: every level fitted
    with one common form, so their exponents compare (each level's own `auto` form may differ)."""
    comp = (summary.get("factor") or {}).get("comparison") if isinstance(summary.get("factor"), dict) else None
    e = ((comp or {}).get("exponents") or {}).get(str(level))
    if not isinstance(e, dict) or e.get("exponent") is None:
        return None
    return {"form": e.get("form"), "exponent": e["exponent"], "exponent_ci": e.get("ci")}


def factor_levels(summary: dict) -> dict:
    """level -> {points, learning_curve, ...}: summary.json's `factor.levels` (or a plain `factors`)."""
    fac = summary.get("factor")
    if isinstance(fac, dict) and isinstance(fac.get("levels"), dict):
        return fac["levels"]
    fac = summary.get("factors")
    return fac if isinstance(fac, dict) else {}


def curves_by_size(df: pd.DataFrame) -> list[dict]:
    """Dev error vs data for every model size: per (size, data size) the best candidate's seed median.

    Returns [{"label", "params", "x", "y", "lo", "hi"}] sorted by parameter count.
    """
    from scalinglab.analysis.points import candidate_scores

    if df.empty or not (df["status"] == "ok").any():
        return []
    cand = candidate_scores(df)
    if cand.empty:
        return []
    best = (
        cand.sort_values(["model_size", "data_size", "error"]).groupby(["model_size", "data_size"], sort=True).head(1)
    )
    out = []
    for ms, g in best.groupby("model_size", sort=False):
        g = g.sort_values("data_size")
        out.append(
            {
                "label": size_label(ms),
                "params": int(g["params"].median()),
                "x": g["data_size"].to_numpy(float),
                "y": g["error"].to_numpy(float),
                "lo": g["error_lo"].to_numpy(float),
                "hi": g["error_hi"].to_numpy(float),
            }
        )
    return sorted(out, key=lambda c: c["params"])


def size_label(ms) -> str:
    """'width 128, depth 2' from the model_size JSON (or dict)."""
    if isinstance(ms, str):
        try:
            ms = json.loads(ms)
        except json.JSONDecodeError:
            return ms
    if isinstance(ms, dict):
        return ", ".join(f"{k} {v}" for k, v in ms.items())
    return str(ms)


def from_fit(fit, *, ylabel: str | None = None) -> ReportData:
    """A bare CurveFit (from `fit_curve` on any table) as the ReportData the learning-curve figure
    draws: its points as the per-subset points, no trials, the fit as the learning curve. (No
    random-guess line: a fit's y0 may be a fitted parameter, m4's, rather than a known level.)"""
    x, y = np.asarray(fit._x, float), np.asarray(fit._y, float)
    rate = fit.form != "model_size" and bool(np.all(y <= 1))
    summary = {
        "learning_curve": law_dict(fit, int(x.max())),
        "metric_info": {"label": ylabel or ("error" if rate else "y"), "rate": rate},
    }
    trials = pd.DataFrame(
        {"status": pd.Series(dtype=str), "min_dev_error": pd.Series(dtype=float), "data_size": pd.Series(dtype=float)}
    )
    points = [{"data_size": float(a), "error": float(b)} for a, b in zip(x, y)]
    return ReportData(folder=Path("."), name="fit", trials=trials, summary=summary, study={}, points=points, lc_fit=fit)
