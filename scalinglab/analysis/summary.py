"""`summary.json`: the best-fit points of a study and the laws fitted to them.

Reads only from the store (reports and re-summaries never depend on a run's memory).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from scalinglab.analysis.backtest import backtest_section, score_ledger
from scalinglab.analysis.points import best_points, points_list
from scalinglab.files import write_atomic
from scalinglab.fit.result import BARELY  # a level whose error stays >= BARELY x random guessing barely learns
from scalinglab.fmt import jsonable
from scalinglab.store import Store

PREDICT_FACTORS = (2, 4, 8)  # predictions at these multiples of the largest data size


def fit_learning_curve(points: list[dict], *, y0: float | None, form: str = "auto"):
    """The learning-curve fit behind summary.json (one function, so the law can be swapped in one line)."""
    from scalinglab.fit import fit_curve

    x = np.array([p["data_size"] for p in points], float)
    y = np.array([p["error"] for p in points], float)
    w = np.array([p["n_seeds"] for p in points], float)
    return fit_curve(x, y, form=form, weights=w, y0=y0, groups_y=[p["seed_errors"] for p in points])


def floor_of(fit) -> dict:
    """The irreducible error with its 90% interval and the regions (where the small-data region ends
    and the irreducible one starts), read from the learning curve's own fit: the floor, the regions,
    the curve drawn and its forecasts are one model (before, a second fit chose the floor, and the
    summary could forecast below its own floor)."""
    r = fit.regions
    return {
        "form": fit.form,
        "value": r["floor"],
        "ci90": r["floor_ci"],
        "small_data_end": r["small_data_end"],
        "irreducible_start": r["irreducible_start"],
        "scores": fit.scores,
    }


def fit_floor(points: list[dict], *, y0: float | None, form: str = "auto") -> dict:
    """`floor_of` the summary's learning-curve fit of `points`."""
    return floor_of(fit_learning_curve(points, y0=y0, form=form))


def fit_size_law(points: list[dict]):
    """Best-fit parameter count vs data size: s(m) = sigma * m**beta_p."""
    from scalinglab.fit import fit_model_size

    x = np.array([p["data_size"] for p in points], float)
    s = np.array([p["params"] for p in points], float)
    return fit_model_size(x, s)


def law_dict(fit, largest: int) -> dict:
    """A CurveFit as summary.json stores it: `to_dict` plus predictions at PREDICT_FACTORS x the
    largest data size with their 90% intervals (the report reads the same dict)."""
    d = fit.to_dict()
    xs = np.array([largest * f for f in PREDICT_FACTORS], float)
    pred = fit.predict(xs, interval=0.9)
    d["predictions"] = [
        {"data_size": int(x), "value": float(v), "lo": float(lo), "hi": float(hi)}
        for x, v, lo, hi in zip(xs, pred["y"], pred["lo"], pred["hi"])
    ]
    d.setdefault("ci90", d.get("ci"))
    return jsonable(d)


def failure_reasons(df, width: int = 200) -> dict[str, int]:
    """{reason: count} over the failed trials of a frame; a reason is the first line of the stored
    error (cut to `width` characters), so a traceback's tail does not make every failure distinct."""
    from collections import Counter

    errs = df.loc[df["status"] == "failed", "error"] if "error" in df else []
    reasons = Counter(
        (str(e).strip().splitlines() or ["(no reason recorded)"])[0][:width]
        if e is not None and str(e).strip() and str(e) != "nan"
        else "(no reason recorded)"
        for e in errs
    )
    return dict(reasons.most_common())


def summarize(
    store: Store,
    study_name: str,
    config: dict,
    *,
    form: str = "auto",
    extra: dict | None = None,
    fits: dict | None = None,
) -> dict:
    """summary.json's dict. fits: a dict to receive the CurveFit behind each law, keyed by where its dict
    sits in the summary ("learning_curve", "factor.adam.learning_curve", ...), for `write_fits`."""
    from scalinglab.metric import study_metric

    df = store.frame(study_name)
    aux = config.get("aux")
    if aux:  # weighting study: a candidate is a model config at one auxiliary weight w
        from scalinglab.analysis.weighting import weighted_frame, weighting_section

        df = weighted_frame(store, study_name)
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    metric = study_metric(config)
    out = {
        "study": study_name,
        "metric": metric.description,
        "trials": {"total": len(df), **{k: int(v) for k, v in counts.items()}},
        **(extra or {}),
    }
    if counts.get("failed"):  # why trials failed: each distinct reason once, most frequent first
        out["trials"]["failure_reasons"] = failure_reasons(df)
    out["random_guess_error"] = metric.random_guess
    out["metric_info"] = metric.to_dict()
    if config["data"]["name"] == "indices":  # your own data: only what the study file says about it
        if config["data"].get("options", {}).get("unit"):
            out["data_unit"] = config["data"]["options"]["unit"]
    else:
        from scalinglab.data import load

        ds = load(config["data"]["name"], config["data"].get("options", {}))  # cached on disk
        for k in ("data_unit", "chars_per_example", "vocab_size"):  # byo/charlm: sizes count examples of
            if k in ds.meta:  # chars_per_example characters
                out[k] = ds.meta[k]
        if "bayes_error" in ds.meta:
            out["bayes_error"] = ds.meta["bayes_error"]
    seeds = config.get("seeds")
    if (config.get("search") or {}).get("kind") == "capacity":  # no learning curve: parameters needed vs v
        from scalinglab.analysis.capacity import capacity_section

        out["capacity"] = capacity_section(df, config)
        return jsonable(out)
    out.update(_curve_section(df, seeds, out["random_guess_error"], form, fits, ""))
    if config["data"]["name"] != "indices":  # top-5 error beside top-1, when the trials stored it
        from scalinglab.analysis.top5 import top5_section

        top5 = top5_section(store, study_name, seeds, ds.n_classes, form)
        if top5:
            out["learning_curve_top5"], out["points_top5"] = top5["learning_curve"], top5["points"]
    # every forecast checked: from the study's own prefixes, and the earlier runs' forecasts (ledger)
    out["backtest"] = backtest_section(out["points"], y0=out["random_guess_error"], form=form)
    out["forecast_ledger"] = score_ledger(store.forecasts(study_name), out["points"])
    factor = (config.get("search") or {}).get("factor")
    if factor and len(df):
        levels = df["config"].map(lambda c: level_of(c, factor))
        out["factor"] = {"name": factor, "levels": {}}
        for lv in config["search"]["levels"]:
            key = lv if isinstance(lv, str) else json.dumps(lv)
            out["factor"]["levels"][key] = _curve_section(
                df[levels == key], seeds, out["random_guess_error"], form, fits, f"factor.{key}."
            )
        out["factor"]["comparison"] = compare_levels(out["factor"]["levels"], out["random_guess_error"], factor)
    if aux and len(df):  # best w per model size (chosen on dev), test error, error-vs-w curves
        out["weighting"] = weighting_section(df, aux.get("weights"))
    return jsonable(out)


def _curve_section(df, seeds, y0, form, fits=None, prefix="") -> dict:
    """points, learning_curve and model_size_law of a set of trials (their CurveFits into `fits`)."""
    out = {"points": points_list(best_points(df, seeds))}
    fits = {} if fits is None else fits
    if len(out["points"]) >= 4:
        largest = out["points"][-1]["data_size"]
        fits[prefix + "learning_curve"] = lc = fit_learning_curve(out["points"], y0=y0, form=form)
        out["learning_curve"] = law_dict(lc, largest)
        out["floor"] = floor_of(lc)
        known = all(p["params"] is not None for p in out["points"])  # a user trainer may not return params
        if known:
            fits[prefix + "model_size_law"] = sl = fit_size_law(out["points"])
        out["model_size_law"] = law_dict(sl, largest) if known else None
        if not prefix:  # the model axis: every candidate, not only the best (analysis/model_axis.py)
            out["model_axis"] = _model_axis(df, out, y0, sl if known else None)
    else:
        out["learning_curve"] = out["model_size_law"] = None
        out["note"] = "fewer than 4 data sizes with finished trials: no law fitted"
    return out


def _model_axis(df, section: dict, y0, size_fit) -> dict | None:
    """The joint law over every candidate; labels the floor as the grid's capacity floor when it caps."""
    from scalinglab.analysis.model_axis import model_axis
    from scalinglab.analysis.points import candidate_scores
    from scalinglab.fit.engine import FitError

    try:
        axis = model_axis(
            candidate_scores(df), section["points"], section["floor"], y0=y0, size_fit=size_fit, factors=PREDICT_FACTORS
        )
    except (FitError, ValueError) as e:
        return {"error": f"joint law not fitted: {e}"}
    if axis is not None:
        section["floor"]["kind"] = "capacity floor of the model grid" if axis["capped"] else "irreducible"
    return axis


def level_of(config_json: str, factor: str) -> str:
    """The factor level of a trial, read from its spec (not its tags: a spec is the truth)."""
    c = json.loads(config_json)
    if factor == "batchnorm":
        v = c["model"].get("batchnorm", False)
    elif factor == "depth" and c["model"].get("family") != "user":
        v = c["model"]["size"].get("depth")
    elif factor in ("activation", "init") and c["model"].get("family") != "user":
        v = c["model"].get(factor)
    else:
        v = c["train"].get(factor)
    return v if isinstance(v, str) else json.dumps(v)


COMPARE_FORM = "pow_c"  # the Hestness form: its exponent means the same thing for every level


def compare_levels(levels: dict, y0: float | None = None, factor: str | None = None) -> dict:
    """Do the levels' curves differ in exponent, or only shift (as Hestness saw for optimizers)?

    Each level is refitted with one common form (`COMPARE_FORM`): the `auto` forms may differ between
    levels, and an M4 or broken-power-law exponent is an asymptotic slope that can sit on its bound.
    Exponents differ when their 90% intervals do not overlap. The shift is the ratio of the levels'
    errors at the data sizes they share: its median, and at the largest shared size.
    """
    pts = {k: v["points"] for k, v in levels.items() if len(v.get("points") or []) >= 4}
    if len(pts) < 2:
        return {"verdict": "not enough points to compare"}
    fits = {k: fit_learning_curve(p, y0=y0, form=COMPARE_FORM) for k, p in pts.items()}
    exps = {k: {"form": COMPARE_FORM, "exponent": f.exponent, "ci": list(f.exponent_ci)} for k, f in fits.items()}
    cis = [tuple(e["ci"]) for e in exps.values()]
    overlap = max(lo for lo, _ in cis) <= min(hi for _, hi in cis)
    errs = {k: {p["data_size"]: p["error"] for p in pts[k]} for k in pts}
    keys = list(pts)
    common = sorted(set.intersection(*(set(e) for e in errs.values())))
    ratios = [errs[keys[1]][m] / errs[keys[0]][m] for m in common]
    per_level = {k: level_verdict(k, keys[0], exps, errs, factor, y0) for k in keys[1:]}
    unsure = [_level_label(k, factor) for k, v in per_level.items() if v["cannot_tell"]]
    verdict = (
        "exponents not distinguishable (90% intervals overlap): consistent with a shift of the curve"
        if overlap
        else "different exponents: the 90% intervals do not overlap"
    )
    if overlap and unsure:  # overlapping because some interval is too wide, or a level barely learns
        verdict = (
            f"exponents not distinguishable (90% intervals overlap), but for {', '.join(unsure)} that says "
            f"little (see the per-level verdicts)"
        )
    return {
        "verdict": verdict,
        "per_level": per_level,
        "exponents": exps,
        "exponents_overlap": overlap,
        f"error_ratio_{keys[1]}_over_{keys[0]}": float(np.median(ratios)) if ratios else None,
        f"error_ratio_{keys[1]}_over_{keys[0]}_at_largest": float(ratios[-1]) if ratios else None,
    }


SHIFT_TOLERANCE = 0.05  # an error ratio within 5% of 1 is "no shift" (seed noise is larger than that)
WIDE_CI = 3.0  # an exponent interval whose ends differ by more than this factor does not pin the slope
GAP_CHANGE = 1.5  # the error ratio at the largest size vs its median: beyond this factor the gap moves


def _level_label(level: str, factor: str | None) -> str:
    """'tanh' stays 'tanh'; a number or boolean level is named with its factor: '4' -> 'depth 4'."""
    try:
        plain = not isinstance(json.loads(level), str)
    except ValueError:
        plain = False
    return f"{factor} {level}" if factor and plain else level


def _wide(ci) -> bool:
    lo, hi = ci
    return not (lo < 0 and hi < 0) or abs(lo) > WIDE_CI * abs(hi)


def level_verdict(
    key: str, ref_key: str, exps: dict, errs: dict, factor: str | None = None, y0: float | None = None
) -> dict:
    """One level against the reference (the first listed): shift or exponent, in words a user can act
    on. Exponents differ when the 90% intervals do not overlap; the shift is the median error ratio
    over the data sizes both levels have. Overlapping intervals are only evidence of a shift when they
    are narrow: a level whose interval is too wide (or whose curve barely leaves random guessing, where
    the fitted slope means little) is "cannot tell", and a gap that grows or shrinks along the shared
    sizes is said even when the intervals overlap."""
    level, ref = _level_label(key, factor), _level_label(ref_key, factor)
    (alo, ahi), (rlo, rhi) = exps[key]["ci"], exps[ref_key]["ci"]
    overlap = max(alo, rlo) <= min(ahi, rhi)
    common = sorted(set(errs[key]) & set(errs[ref_key]))
    ratios = [errs[key][m] / errs[ref_key][m] for m in common if errs[ref_key][m] > 0]
    ratio = float(np.median(ratios)) if ratios else None
    last = float(ratios[-1]) if ratios else None
    a, r = exps[key]["exponent"], exps[ref_key]["exponent"]
    top = errs[key][max(errs[key])]
    barely = y0 is not None and top >= BARELY * y0
    cannot = None
    if barely:
        cannot = f"{level} barely learns (dev error {top:.3g} at its largest size; random guessing {y0:.3g})"
    elif overlap and (_wide(exps[key]["ci"]) or _wide(exps[ref_key]["ci"])):
        wide = key if _wide(exps[key]["ci"]) else ref_key
        lo, hi = exps[wide]["ci"]
        cannot = f"{_level_label(wide, factor)}'s exponent interval [{lo:.2f}, {hi:.2f}] is too wide to call it a shift"
    moving = ratio is not None and last is not None and ratio > 0 and not 1 / GAP_CHANGE <= last / ratio <= GAP_CHANGE
    if cannot:
        words = f"{level} vs {ref}: cannot tell shift from exponent: {cannot}"
        if ratio is not None:
            words += f"; its error is {ratio:.2f}x {ref}'s (median over shared sizes), {last:.2f}x at the largest"
            if ratio > 1 and last > 1:
                words += f"; keep {ref}"
    elif not overlap:
        faster = a < r  # exponents are negative: more negative falls faster with data
        ahead = (ratio or 1) <= 1  # at the sizes measured, the level's error is at most the reference's
        if faster:
            trend = "its advantage grows with more data" if ahead else f"its gap to {ref} closes with more data"
        else:
            trend = "its advantage shrinks with more data" if ahead else f"its gap to {ref} widens with more data"
        words = (
            f"{level} changes the exponent ({a:.2f} vs {r:.2f} for {ref}, 90% intervals apart): its curve "
            f"falls {'faster' if faster else 'slower'} with data, so {trend}"
        )
    elif ratio is None or (abs(ratio - 1) <= SHIFT_TOLERANCE and not moving):
        words = f"{level} vs {ref}: same exponent (intervals overlap) and no measurable shift: either will do"
    else:
        better = ratio < 1
        words = (
            f"{level} vs {ref}: same exponent (intervals overlap), the curve shifted "
            f"{'down' if better else 'up'}: {ratio:.2f}x {ref}'s error (median over shared sizes); "
            + (
                f"prefer {level}: the gain is a constant factor, not a steeper curve"
                if better
                else f"keep {ref}: its advantage is a constant factor, not a steeper curve"
            )
        )
        if moving:
            words += (
                f"; but the ratio is {last:.2f}x at the largest shared size: the gap "
                f"{'grows' if abs(math.log(last)) > abs(math.log(ratio)) else 'shrinks'} with data, more "
                f"sizes or seeds would tell a shift from a slope"
            )
    return {
        "vs": ref_key,
        "exponents_overlap": overlap,
        "error_ratio": ratio,
        "error_ratio_at_largest": last,
        "cannot_tell": cannot is not None,
        "verdict": words,
    }


def write_summary(folder: Path, summary: dict) -> Path:
    path = Path(folder) / "summary.json"
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))  # never half-written


FITS = "fits.npz"  # beside summary.json: the arrays behind its laws (CurveFit.arrays), so readers need not refit


def write_fits(folder: Path, fits: dict) -> Path:
    """Write `summarize(fits=...)`'s CurveFits' arrays to fits.npz (whole or not at all). Each law's
    `params` is stored with them, so a reader can tell arrays that belong to another summary.json."""
    path = Path(folder) / FITS
    flat = {}
    for key, fit in fits.items():
        for name, arr in fit.arrays().items():
            flat[f"{key}|{name}"] = arr
        flat[f"{key}|params"] = np.array(json.dumps(jsonable(fit.to_dict()["params"]), sort_keys=True))
    return write_atomic(path, lambda tmp: np.savez(tmp, **flat))


def read_fit(folder: Path, key: str, law: dict | None):
    """The CurveFit of summary.json's law dict `law` at `key`, rebuilt from fits.npz; None when the file
    is missing, unreadable or holds another summary's fit (the caller refits)."""
    from scalinglab.fit.result import CurveFit

    path = Path(folder) / FITS
    if not law or not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if f"{key}|params" not in z or str(z[f"{key}|params"]) != json.dumps(law.get("params"), sort_keys=True):
                return None
            arrays = {n: z[f"{key}|{n}"] for n in ("th", "th_boot", "x_scale", "x", "y")}
        return CurveFit.from_dict(law, arrays)
    except (OSError, ValueError, KeyError, TypeError):
        return None
