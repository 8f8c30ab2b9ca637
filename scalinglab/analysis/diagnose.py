"""`diagnose`: what limits a model family at the largest data size of a study (Ng, "Machine Learning
Yearning"; BACKGROUND.md section 3), with the evidence and a next step in numbers.

Verdicts, for one model size (the user's, or the best-fit size at the largest data size):
- capacity-bound: a larger size tried is clearly better at the largest data size AND this size's curve
  has flattened (its local log-log slope is less than half of the better size's, or about zero) or it
  underfits (train error high and close to dev error). For the best-fit size itself (nothing larger is
  better), capacity-bound when it is the largest size tried, still underfits and is clearly above the
  floor. Advice: the model-size law's parameters at this data size and the learning curve's error.
- at the floor: the best-fit learning curve has entered its irreducible region at the largest data size
  (error within 10% of the fitted floor, `regions.irreducible_start`), or the measured error lies inside
  the floor's interval. Advice: the floor and its interval.
- data-bound: otherwise: the curve is still in its power-law region and larger models do not help at
  this data size. Advice: what 2x data gives (learning-curve prediction with its interval).
"Clearly" means by more than NOISE relative error or the spread over seeds, whichever is larger.
Reads only from the store.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from scalinglab.errors import UserError, bad_value

NOISE = 0.03  # relative error difference below which two sizes count as equal
FLAT_RATIO = 0.5  # "flattened": local slope below this fraction of the better size's slope
FLAT_SLOPE = -0.03  # ... or shallower than this (about flat) while the better size still falls
UNDERFIT = 0.8  # "underfits": train error >= this x dev error (and above MIN_TRAIN)
MIN_TRAIN = 0.02
SLOPE_POINTS = 3  # local slope: log-log fit over the last this-many data sizes


# --- loading ---------------------------------------------------------------------------------------


def load_trials(folder, study: str | None = None, where: str = "scalinglab") -> tuple[str, dict, pd.DataFrame]:
    """(study name, study config, trials frame) of a study folder; one-line errors for a folder with no
    store, several studies and no --study, or no finished (status ok) trials."""
    from scalinglab.store import Store

    with Store.open_existing(folder) as store:
        studies = {s["name"]: s for s in store.studies()}
        if study is None:
            if len(studies) != 1:
                raise bad_value(
                    f"{where}: {folder}",
                    "--study",
                    None,
                    "one of " + ", ".join(sorted(studies)) if studies else "a folder with a study",
                )
            study = next(iter(studies))
        if study not in studies:
            raise bad_value(f"{where}: {folder}", "--study", study, ", ".join(sorted(studies)))
        config = studies[study]["config"]
        if (config.get("search") or {}).get("kind") == "capacity":  # no learning curve to diagnose or plan on
            raise UserError(
                f"{where}: {folder}: study {study!r} is a capacity study (parameters needed per depth), with "
                f"no learning curve; allowed: a grid, hestness or weighting study (see `scalinglab report`)"
            )
        if config.get("aux"):
            from scalinglab.analysis.weighting import weighted_frame

            df = weighted_frame(store, study)
        else:
            df = store.frame(study)
    n_ok = int((df["status"] == "ok").sum()) if len(df) else 0
    if n_ok == 0:
        raise UserError(
            f"{where}: {folder}: study {study!r} has no finished trials ({len(df)} in the store, "
            f"none with status ok); run it first: scalinglab run ..."
        )
    return study, config, df


def parse_model_size(text: str, sizes: list[dict], where: str = "scalinglab diagnose") -> dict:
    """'width=4' or 'width=4,depth=1' -> the one size of the study that matches it."""
    want = {}
    for part in (p for p in text.split(",") if p.strip()):
        k, sep, v = part.partition("=")
        if not sep or not v.strip().lstrip("-").isdigit():
            raise bad_value(where, "--model-size", text, "knob=value pairs, e.g. width=4 or width=4,depth=1")
        want[k.strip()] = int(v)
    from scalinglab.models.registry import size_label

    listed = ", ".join(size_label(s) for s in sizes)
    hits = [s for s in sizes if all(s.get(k) == v for k, v in want.items())]
    if not want or len(hits) == 0:
        raise bad_value(where, "--model-size", text, f"a size of this study: {listed}")
    if len(hits) > 1:
        raise bad_value(where, "--model-size", text, "one size; it matches " + ", ".join(size_label(s) for s in hits))
    return hits[0]


# --- per-size curves ----------------------------------------------------------------------------


def size_curves(df: pd.DataFrame, seeds: int | None = None) -> list[dict]:
    """Per model size (smallest first): its curve over data sizes, each point the best candidate of
    that size (over lr / weight decay / w) with the most seeds: median, min, max of min dev error."""
    from scalinglab.analysis.points import candidate_scores

    cand = candidate_scores(df)
    out = []
    for ms, c in cand.groupby("model_size", sort=False):
        pts = []
        for m, cm in c.groupby("data_size", sort=True):
            need = min(seeds or cm["n_seeds"].max(), cm["n_seeds"].max())
            r = cm[cm["n_seeds"] >= need].sort_values("error").iloc[0]
            pts.append(
                {
                    "data_size": int(m),
                    "error": float(r.error),
                    "lo": float(r.error_lo),
                    "hi": float(r.error_hi),
                    "train_error": float(r.train_error),
                    "n_seeds": int(r.n_seeds),
                }
            )
        out.append({"model_size": json.loads(ms), "params": int(c["params"].iloc[0]), "points": pts})
    out.sort(key=lambda s: s["params"])
    for s in out:
        s["slope"] = local_slope(s["points"])
    return out


def local_slope(points: list[dict], k: int = SLOPE_POINTS) -> float | None:
    """d log(error) / d log(data) over the last k data sizes (least squares); None with < 2 points."""
    p = points[-k:]
    if len(p) < 2:
        return None
    lx = np.log([q["data_size"] for q in p])
    ly = np.log([max(q["error"], 1e-9) for q in p])
    return float(np.polyfit(lx, ly, 1)[0])


def _at(curve: dict, m: int) -> dict | None:
    return next((p for p in curve["points"] if p["data_size"] == m), None)


def _tol(a: dict, b: dict) -> float:
    """Two errors differ 'clearly' by more than this."""
    return max(NOISE * max(a["error"], b["error"]), (a["hi"] - a["lo"]) / 2, (b["hi"] - b["lo"]) / 2)


# --- the diagnosis -------------------------------------------------------------------------------


def diagnose(df: pd.DataFrame, config: dict, *, model_size: str | None = None, form: str = "auto", metric=None) -> dict:
    """The diagnosis as a plain dict: verdict, subject size, evidence lines, advice line, numbers.
    metric: the study's `Metric` (`metric.stored_metric` reads it from summary.json); None: from config."""
    from scalinglab.analysis.points import best_points, points_list
    from scalinglab.analysis.summary import fit_learning_curve, fit_size_law
    from scalinglab.metric import study_metric
    from scalinglab.models.registry import size_label

    seeds = config.get("seeds")
    curves = size_curves(df, seeds)
    points = points_list(best_points(df, seeds))
    M = points[-1]["data_size"]
    y0 = (metric or study_metric(config)).random_guess
    curve = law = floor_fit = None
    if len(points) >= 4:
        curve = fit_learning_curve(points, y0=y0, form=form)
        law = fit_size_law(points) if all(p["params"] is not None for p in points) else None
        floor_fit = curve  # the floor and regions are the curve's own, as in summary.json (summary.floor_of)
    if model_size:
        subject = parse_model_size(model_size, [c["model_size"] for c in curves])
        named = True
    else:
        subject, named = points[-1]["model_size"], False
    sc = next(c for c in curves if c["model_size"] == subject)
    s_at = _at(sc, M)
    if s_at is None:
        raise UserError(
            f"scalinglab diagnose: --model-size {size_label(subject)} has no finished trial at the "
            f"largest data size {M}; sizes with one: "
            + ", ".join(size_label(c["model_size"]) for c in curves if _at(c, M))
        )
    label = size_label(subject)
    ev = []
    # 1. larger sizes at the largest data size
    bigger = [(c, _at(c, M)) for c in curves if c["params"] > sc["params"] and _at(c, M)]
    better = [(c, p) for c, p in bigger if p["error"] < s_at["error"] - _tol(p, s_at)]
    best_big = min(better, key=lambda cp: cp[1]["error"]) if better else None
    if best_big:
        c, p = best_big
        ev.append(
            f"at m={M}, {size_label(c['model_size'])} ({c['params']} params) reaches {p['error']:.4f} "
            f"[{p['lo']:.4f}, {p['hi']:.4f}] vs {s_at['error']:.4f} [{s_at['lo']:.4f}, {s_at['hi']:.4f}] "
            f"for {label} ({sc['params']} params): larger models help"
        )
    elif bigger:
        ev.append(f"at m={M}, no larger size beats {label} ({s_at['error']:.4f}) by more than the noise")
    else:
        ev.append(f"{label} is the largest size tried: nothing larger to compare with")
    # 2. does the subject's curve flatten while the better size keeps improving?
    flat = False
    if sc["slope"] is not None:
        txt = (
            f"local slope of {label}'s curve over its last {min(SLOPE_POINTS, len(sc['points']))} data sizes: "
            f"{sc['slope']:+.3f} (d log error / d log data)"
        )
        if best_big and best_big[0]["slope"] is not None:
            bs = best_big[0]["slope"]
            flat = bs < FLAT_SLOPE and (sc["slope"] > FLAT_RATIO * bs or sc["slope"] > FLAT_SLOPE)
            txt += f" vs {bs:+.3f} for {size_label(best_big[0]['model_size'])}" + (
                ": it has flattened while the larger one keeps improving" if flat else ""
            )
        ev.append(txt)
    # 3. underfitting: train error high and close to dev error
    tr, dv = s_at["train_error"], s_at["error"]
    underfit = tr >= UNDERFIT * dv and tr > MIN_TRAIN
    ev.append(
        f"{label} at m={M}: train error {tr:.4f} vs dev error {dv:.4f}"
        + (
            " (high and close: it underfits)"
            if underfit
            else " (it fits its training set better than dev: variance, not capacity)"
            if tr < 0.5 * dv
            else ""
        )
    )
    # 4. where the best-fit curve stands
    floor = floor_ci = irr = None
    if curve is not None:
        r = floor_fit.regions
        floor, floor_ci, irr = r["floor"], r["floor_ci"], r["irreducible_start"]
        fl = (
            "none"
            if floor is None
            else f"{floor:.4f}" + (f" [{floor_ci[0]:.4f}, {floor_ci[1]:.4f}]" if floor_ci else "")
        )
        where_ = (
            "in its irreducible region (within 10% of the floor)"
            if irr is not None and irr <= M
            else "still in its power-law region" + (f" (irreducible region from m ~ {irr:.3g})" if irr else "")
        )
        ev.append(
            f"best-fit learning curve ({curve.form}, {curve.n_points} points): at m={M} it is {where_}; "
            f"floor {fl}; exponent {curve.exponent:+.3f}"
        )
    else:
        ev.append(f"only {len(points)} data sizes with finished trials: no learning curve fitted (needs 4)")
    best_at_M = points[-1]
    at_floor = curve is not None and (
        (irr is not None and irr <= M) or (floor_ci is not None and best_at_M["error"] <= floor_ci[1])
    )
    above_floor = floor_ci is None or s_at["error"] > floor_ci[1] * (1 + NOISE)

    if best_big and (flat or underfit):
        verdict = "capacity-bound"
    elif not bigger and underfit and above_floor and not at_floor:
        verdict = "capacity-bound"
    elif at_floor:
        verdict = "at-the-floor"
    else:
        verdict = "data-bound"

    numbers = {"largest_data_size": M}
    if verdict == "capacity-bound":
        advice = "train a bigger model"
        if law is not None:
            ps = law.predict([M], interval=0.9)
            e = curve.predict([M], interval=0.9)
            numbers.update(
                recommended_params=float(ps.y[0]),
                recommended_params_ci=[float(ps.lo[0]), float(ps.hi[0])],
                expected_error=float(e.y[0]),
                expected_error_ci=[float(e.lo[0]), float(e.hi[0])],
            )
            near = min(curves, key=lambda c: abs(math.log(c["params"] / ps.y[0])))
            advice += (
                f": about {ps.y[0]:,.0f} parameters (model-size law at m={M}; 90% interval "
                f"[{ps.lo[0]:,.0f}, {ps.hi[0]:,.0f}]; nearest size tried: {size_label(near['model_size'])}, "
                f"{near['params']:,} params), expected error {e.y[0]:.4f} [{e.lo[0]:.4f}, {e.hi[0]:.4f}]"
            )
            if not bigger:
                advice += "; larger than any size tried, so extend the size grid"
        elif best_big:
            c, p = best_big
            advice += f": {size_label(c['model_size'])} ({c['params']:,} params) already reaches {p['error']:.4f}"
    elif verdict == "data-bound":
        advice = "collect more data"
        if curve is not None:
            e = curve.predict([2 * M], interval=0.9)
            numbers.update(error_at_2x=float(e.y[0]), error_at_2x_ci=[float(e.lo[0]), float(e.hi[0])])
            advice += f": 2x data (m={2 * M}) gives {e.y[0]:.4f} [{e.lo[0]:.4f}, {e.hi[0]:.4f}] (90% interval)"
            if law is not None:
                ps = law.predict([2 * M])
                advice += f", with about {ps[0]:,.0f} parameters (model-size law)"
    else:
        advice = (
            f"neither more data nor a bigger model helps much: the error is at the floor "
            f"{floor:.4f} [{floor_ci[0]:.4f}, {floor_ci[1]:.4f}] (90% interval) of this model family; "
            f"change the family, the features or the labels"
        )
        numbers.update(floor=floor, floor_ci=list(floor_ci))
    if floor is not None:
        numbers.setdefault("floor", floor)
        numbers.setdefault("floor_ci", list(floor_ci) if floor_ci else None)
    return {
        "verdict": verdict,
        "model_size": subject,
        "model_size_label": label,
        "named": named,
        "params": sc["params"],
        "error": s_at["error"],
        "evidence": ev,
        "advice": advice,
        "numbers": numbers,
        "curves": curves,
    }


def format_diagnosis(d: dict) -> list[str]:
    """Readable lines: verdict, evidence, advice, and the per-size curves."""
    from scalinglab.models.registry import size_label

    who = "named size" if d["named"] else "best-fit size at the largest data size"
    lines = [
        f"diagnosis for {d['model_size_label']} ({who}, {d['params']:,} params): {d['verdict'].upper()}",
        "evidence:",
    ]
    lines += [f"  - {e}" for e in d["evidence"]]
    lines.append(f"advice: {d['advice']}")
    sizes = sorted({p["data_size"] for c in d["curves"] for p in c["points"]})
    lines.append("dev error (median over seeds; per size its best config: lr, weight decay, aux weight) by data size:")
    lines.append(
        "  " + f"{'model':<18}{'params':>8} " + "".join(f"{m:>8}" for m in sizes) + f"{'slope':>8}{'train':>8}"
    )
    for c in d["curves"]:
        row = {p["data_size"]: p for p in c["points"]}
        cells = "".join(f"{row[m]['error']:>8.4f}" if m in row else f"{'-':>8}" for m in sizes)
        sl = "-" if c["slope"] is None else f"{c['slope']:+.3f}"
        tr = f"{c['points'][-1]['train_error']:.4f}"
        lines.append(f"  {size_label(c['model_size']):<18}{c['params']:>8} {cells}{sl:>8}{tr:>8}")
    if not d["named"]:
        lines.append(
            "name another size with --model-size, e.g. --model-size "
            + size_label({k: v for k, v in d["curves"][0]["model_size"].items()})
        )
    return lines
