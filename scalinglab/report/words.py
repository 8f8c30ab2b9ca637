"""The report's text and tables as plain Python data (strings, lists of rows), shared by HTML and Markdown.

Nothing here escapes anything: the HTML template autoescapes, the Markdown writer escapes its own cells.
Every optional key of summary.json is read with .get and may be None.
"""

from __future__ import annotations

import datetime as _dt
import json
import math

from scalinglab.fit.laws import LAWS
from scalinglab.fmt import ErrorFormat, count, finite, human, interval, num, pct
from scalinglab.report.data import ReportData, size_label

HESTNESS_EXPONENTS = "-0.07 to -0.35"
HESTNESS_SIZE = "0.5 to 1"


def region_of(x: float, regions: dict) -> str | None:
    """Which region of the fitted curve a data size lies in (None when the fit has no regions)."""
    s, i = regions.get("small_data_end"), regions.get("irreducible_start")
    if s is None and i is None:
        return None
    if i is not None and x >= i:
        return "irreducible"
    if s is not None and x < s:
        return "small data"
    return "power law"


REGION_ADVICE = {
    "small data": "error is still near the random-guess plateau; the power law has not set in yet",
    "power law": "more data keeps paying at the fitted rate",
    "irreducible": "error has flattened at the floor; more data alone buys little (try a better model "
    "family or check label noise)",
}


def headline(d: ReportData, f: ErrorFormat) -> dict:
    """{'sentences': [...], 'cards': [{'label', 'value', 'sub'}], 'cautions': [...]}"""
    if d.capacity:  # kind = "capacity": the depth comparison is the headline
        return capacity_headline(d)
    lc, sl, pts = d.lc, d.size_law, d.points
    sentences, cards, cautions = [], [], []
    best = min(pts, key=lambda p: p["error"]) if pts else None
    if lc:
        # the headline exponent: the slope across the measured power-law region (Hestness' beta_g); the
        # form's asymptotic exponent (an m4 or broken power law's last slope) only beside it
        slope = lc.get("slope") or {}
        by_slope = slope.get("value") is not None
        e, eci = (slope["value"], slope.get("ci")) if by_slope else (lc.get("exponent"), lc.get("exponent_ci"))
        reg = d.regions
        fl = d.floor or {}
        floor, fci = fl.get("value"), fl.get("ci")
        s = f"Dev error falls as m^{num(e, 2)}" if e is not None else "A learning curve was fitted"
        # a broken power law's exponent is its last regime's: say from where it holds
        breaks = [v for k, v in (lc.get("params") or {}).items() if k[:1] == "d" and k[1:].isdigit()]
        law = LAWS.get(lc.get("form"))
        last_break = max(breaks) if law is not None and law.n_breaks and breaks else None
        if interval(eci):
            s += f" (90% CI {interval(eci)})"
        if by_slope:
            reached = slope.get("reached")
            where = "the power-law region measured" if reached else "its last doubling: barely past the bend"
            s += f" across m = {count(slope['from'])}..{count(slope['to'])} ({where})"
            if lc.get("exponent") is not None and abs(lc["exponent"] - e) > 0.01:
                s += f"; the {lc['form']} form's asymptotic slope is {num(lc['exponent'], 2)}"
                if last_break is not None:
                    s += f" beyond m ≈ {count(last_break)}, where the {lc['form']} fit breaks"
        elif e is not None and last_break is not None:
            s += f" beyond m ≈ {count(last_break)}, where the {lc['form']} fit breaks"
        if floor is not None:
            s += f"; the floor is {f.err(floor)} {f.err_ci(fci)}".rstrip()
        else:
            s += "; the fitted form has no floor"
        sentences.append(s + ".")
        cards.append(
            {
                "label": "learning-curve exponent",
                "value": num(e, 2),
                "sub": interval(eci) or "",
                "hint": f"Hestness et al.: {HESTNESS_EXPONENTS}",
            }
        )
        capped = fl.get("kind") == "capacity floor of the model grid"
        if floor is not None:
            cards.append(
                {
                    "label": "capacity floor of the model grid" if capped else "irreducible floor",
                    "value": f.err(floor),
                    "sub": f.err_ci(fci),
                    "hint": "left at infinite data" + (f" ({fl['form']} fit)" if fl.get("form") else ""),
                }
            )
        if d.bayes is not None and floor is not None:
            sentences.append(f"The data set's known Bayes error is {f.err(d.bayes)}.")
        if pts:
            where = region_of(pts[-1]["data_size"], reg)
            if where:
                sentences.append(
                    f"The largest subset ({count(pts[-1]['data_size'])} examples) lies in the "
                    f"{where} region: {REGION_ADVICE[where]}."
                )
        ax = d.summary.get("model_axis") or {}
        if capped and ax.get("capacity_floor"):
            cf, ir, far = ax["capacity_floor"], ax["irreducible"], (ax.get("predictions") or [{}])[-1]
            s = (
                f"The floor is the model grid's capacity floor, not an irreducible error: the largest model "
                f"tried ({human(ax['largest_model_params'])} params) was the best at the largest data sizes, "
                f"and the joint law over every candidate (E + A/N^α + B/m^β) puts the grid's floor at "
                f"{f.err(cf['value'])} {f.err_ci(cf['ci'])} and the irreducible error at {f.err(ir['value'])}."
            )
            if (far.get("grown") or {}).get("params"):
                s += (
                    f" At {count(far['data_size'])} examples the largest model tried reaches "
                    f"{f.err(far['largest_model']['value'])}; a model grown to {human(far['grown']['params'])} "
                    f"params, {f.err(far['grown']['value'])} {f.err_ci([far['grown']['lo'], far['grown']['hi']])}."
                )
            cautions.append(s + " Add larger models to the grid before trusting the floor.")
        if _loose(e, eci):
            cautions.append(
                f"The learning-curve exponent is poorly determined (90% CI {interval(eci)}): "
                "more data sizes, a wider range of them, or more seeds would pin it down; "
                "read the predictions with their intervals."
            )
        if lc.get("unsupported"):  # CurveFit.unsupported: before the bend, a forecast is a guess
            cautions.append(f"The predictions are not to be relied on: {lc['unsupported']}.")
        if lc.get("converged") is False:
            cautions.append(f"The learning-curve fit did not converge ({lc.get('message', '')}).")
        if last_break is not None and pts and last_break > max(p["data_size"] for p in pts):
            cautions.append(
                f"The asymptotic exponent is that of the fitted curve beyond its last break, at m ≈ "
                f"{count(last_break)}: past the largest subset, so no measured point shows it."
            )
        cal = lc.get("calibration") or {}
        if isinstance(cal.get("source"), str) and cal["source"].startswith("prior"):
            from scalinglab.fit.select import MIN_HELD

            n_held = int(cal.get("n_heldout") or 0)
            cautions.append(
                f"Prediction intervals use a prior guess for the extrapolation error, not a "
                f"backtest on this curve: its backtest had {n_held} held-out point"
                f"{'s' if n_held != 1 else ''} ({MIN_HELD} needed). More data sizes would "
                "calibrate them."
            )
    elif pts:
        n = len({p["data_size"] for p in pts})
        sentences.append(
            f"No law fitted: {n} data size{'s' if n != 1 else ''} with finished trials (a fit needs at least 4)."
        )
    else:
        sentences.append("No finished trials yet: nothing to fit or plot.")
    if sl and sl.get("exponent") is not None:
        sentences.append(
            f"The best model grows as m^{num(sl['exponent'], 2)} "
            f"{('(90% CI ' + interval(sl.get('exponent_ci')) + ')') if interval(sl.get('exponent_ci')) else ''}"
            f" in parameters (Hestness et al.: {HESTNESS_SIZE}).".replace("  ", " ")
        )
        if _loose(sl["exponent"], sl.get("exponent_ci")):
            cautions.append(f"The model-size exponent is poorly determined (90% CI {interval(sl.get('exponent_ci'))}).")
        cards.append(
            {
                "label": "model-size exponent",
                "value": num(sl["exponent"], 2),
                "sub": interval(sl.get("exponent_ci")),
                "hint": f"Hestness et al.: {HESTNESS_SIZE}",
            }
        )
    preds = (lc or {}).get("predictions") or []
    if preds:
        parts = [
            f"{f.err(p.get('value'))} {f.err_ci([p.get('lo'), p.get('hi')])} at {count(p['data_size'])}" for p in preds
        ]
        sentences.append("Predicted dev error with more data (90% intervals): " + "; ".join(parts) + ".")
        last = preds[-1]
        cards.append(
            {
                "label": f"predicted at {human(last['data_size'])} examples",
                "value": f.err(last.get("value")),
                "sub": f.err_ci([last.get("lo"), last.get("hi")]),
                "hint": f"{_mult(last['data_size'], pts)} the largest subset",
            }
        )
    if best:
        sentences.append(
            f"Best measured: {f.err(best['error'])} dev error with {count(best['data_size'])} "
            f"examples ({size_label(best.get('model_size'))}, {human(best.get('params') or 0)} "
            f"params; median of {best.get('n_seeds', '?')} seeds)."
        )
        cards.append(
            {
                "label": "best measured",
                "value": f.err(best["error"]),
                "sub": f"at {human(best['data_size'])} examples",
                "hint": size_label(best.get("model_size")),
            }
        )
    cautions.extend(d.notes)
    return {"sentences": sentences, "cards": cards, "cautions": cautions}


def _loose(e, ci) -> bool:
    """An estimate whose interval crosses zero, spans a factor > 3, or ends at the estimate (a bound)."""
    if e is None or not ci or None in ci:
        return False
    lo, hi = ci
    if lo <= 0 <= hi:
        return True
    at_edge = min(abs(e - lo), abs(e - hi)) <= 1e-6 * max(abs(e), 1e-12)
    return at_edge or max(abs(lo), abs(hi)) > 3 * min(abs(lo), abs(hi))


def _mult(x, pts) -> str:
    if not pts:
        return ""
    return f"{x / pts[-1]['data_size']:.0f}×"


def predictions_table(d: ReportData, f: ErrorFormat) -> dict | None:
    lc, sl = d.lc or {}, d.size_law or {}
    preds = lc.get("predictions") or []
    if not preds:
        return None
    sizes = {p["data_size"]: p for p in sl.get("predictions") or []}
    rows = []
    for p in preds:
        sp = sizes.get(p["data_size"], {})
        rows.append(
            [
                count(p["data_size"]),
                _mult(p["data_size"], d.points),
                f.err(p.get("value")),
                f.err_ci([p.get("lo"), p.get("hi")]),
                human(sp["value"]) if sp.get("value") else "n/a",
                f"[{human(sp['lo'])}, {human(sp['hi'])}]" if sp.get("lo") and sp.get("hi") else "",
            ]
        )
    return {
        "head": [
            "training examples",
            "× largest",
            "predicted dev error",
            "90% interval",
            "best model params",
            "90% interval",
        ],
        "rows": rows,
    }


def backtest_section(d: ReportData, f: ErrorFormat) -> dict | None:
    """The study's forecasts checked: from its own prefixes (backtest) and earlier runs' (ledger)."""
    bt, ledger = d.summary.get("backtest") or {}, d.summary.get("forecast_ledger") or []
    score = (bt.get("score") or {}).get("all")
    if not score and not ledger:
        return None
    out = {"sentences": [], "head": [], "rows": [], "ledger_head": [], "ledger_rows": []}
    if score:
        s = bt["score"]
        parts = [
            f"{k}: {pct(v['coverage'])} inside, median error {pct(v['median_rel_error'])} ({v['n']})"
            for k, v in s.items()
            if k != "all" and v
        ]
        w = score["median_width_over_value"]
        width = pct(w) if w is not None else "n/a"
        out["sentences"].append(
            f"Fitted from the first {bt['min_points']}, {bt['min_points'] + 1}, ... points the way the summary "
            f"is fitted, the forecasts of each later point fell inside their 90% interval "
            f"{pct(score['coverage'])} of the time ({score['n']} checks), median relative error "
            f"{pct(score['median_rel_error'])}, median interval width {width} "
            f"of the forecast. By reach: " + "; ".join(parts) + "."
        )
        out["head"] = ["from (points, last size)", "to", "× last", "form", "forecast", "90% interval", "measured", ""]
        out["rows"] = [
            [
                f"{r['from_points']}, {count(r['from_data_size'])}",
                count(r["data_size"]),
                f"{r['factor']:.0f}×",
                r["form"],
                f.err(r["forecast"]),
                f.err_ci([r["lo"], r["hi"]]),
                f.err(r["measured"]),
                "inside" if r["inside"] else "OUTSIDE",
            ]
            for r in bt["rows"]
        ]
    if ledger:
        inside = sum(r["inside"] for r in ledger)
        out["sentences"].append(
            f"Forecasts stored by earlier runs of this study, now measured: {inside} of {len(ledger)} inside "
            f"their 90% interval, median relative error "
            f"{pct(float(sorted(r['rel_error'] for r in ledger)[len(ledger) // 2]))}."
        )
        out["ledger_head"] = ["made", "from (points, last size)", "for", "forecast", "90% interval", "measured", ""]
        out["ledger_rows"] = [
            [
                _dt.datetime.fromtimestamp(r["made_at"]).strftime("%Y-%m-%d %H:%M"),
                f"{r['from_points']}, {count(r['from_data_size'])}",
                count(r["data_size"]),
                f.err(r["value"]),
                f.err_ci([r["lo"], r["hi"]]),
                f.err(r["measured"]),
                "inside" if r["inside"] else "OUTSIDE",
            ]
            for r in ledger
        ]
    return out


def laws_table(d: ReportData) -> list[dict]:
    out = []
    for title, law in (("Learning curve", d.lc), ("Model-size law", d.size_law)):
        if not law:
            continue
        rows = [
            [k, num(v, 4), interval((law.get("ci") or {}).get(k), ".4g")] for k, v in (law.get("params") or {}).items()
        ]
        rows.append(["exponent", num(law.get("exponent"), 4), interval(law.get("exponent_ci"), ".4g")])
        scores = law.get("scores") or {}
        chosen = ""
        if scores:
            chosen = "chosen by extrapolation score (held-out RMSLE, lower is better): " + ", ".join(
                f"{k} {num(v, 3)}" for k, v in sorted(scores.items(), key=lambda kv: (kv[1] is None, kv[1] or 0))
            )
        out.append(
            {
                "title": title,
                "form": law.get("form", "?"),
                "formula": law.get("formula", ""),
                "rows": rows,
                "note": chosen,
                "fit": f"{law.get('n_points', '?')} points; "
                f"{'converged' if law.get('converged', True) else 'NOT converged: ' + str(law.get('message'))}",
            }
        )
    return out


def best_table(d: ReportData, f: ErrorFormat) -> dict | None:
    """Per-subset best config and score (with train/test error when the trials have them)."""
    if not d.points:
        return None
    df = d.trials
    hp = [k for k in ("lr", "weight_decay") if any(p.get(k) is not None for p in d.points)]
    rows = []
    for p in d.points:
        tr, te = finite(p.get("train_error")), finite(p.get("test_error"))
        if (tr is None or te is None) and len(df):  # older summaries: the medians from the trials
            ms = p.get("model_size")
            ms = json.dumps(ms, sort_keys=True) if isinstance(ms, dict) else ms
            sel = df[(df["data_size"] == p["data_size"]) & (df["status"] == "ok") & (df["model_size"] == ms)]
            tr = finite(sel["final_train_error"].median()) if len(sel) and tr is None else tr
            te = finite(sel["test_error"].median()) if len(sel) and te is None else te
        rows.append(
            [count(p["data_size"]), size_label(p.get("model_size")), human(p.get("params") or 0)]
            + [num(finite(p.get(k)), 3) for k in hp]
            + [
                f.err(p["error"]),
                f"{f.err(p.get('error_lo'))} – {f.err(p.get('error_hi'))}",
                str(p.get("n_seeds", "")),
                f.err(tr),
                f.err(te),
            ]
        )
    return {
        "head": ["training examples", "best model", "params"]
        + [k.replace("_", " ") for k in hp]
        + ["dev error (median)", "seed range", "seeds", "train error", "test error"],
        "rows": rows,
    }


TRIAL_COLS = [
    ("status", "status"),
    ("data_size", "examples"),
    ("_size", "model"),
    ("params", "params"),
    ("seed", "seed"),
    ("min_dev_error", "min dev error"),
    ("best_epoch", "best epoch"),
    ("epochs", "epochs"),
    ("final_train_error", "train error"),
    ("test_error", "test error"),
    ("wall_time", "wall s"),
    ("id", "id"),
]


def trials_table(d: ReportData, f: ErrorFormat) -> dict:
    """All trials; each cell is (text, sort key) so the HTML table can sort numerically."""
    df = d.trials
    # hyperparameters only when the study varied them (a search), tags always
    hp_cols = [
        c
        for c in ("optimizer", "lr", "weight_decay", "batchnorm")
        if c in df.columns and df[c].astype(str).nunique() > 1
    ]
    tag_cols = hp_cols + [c for c in df.columns if c.startswith("tag_")]
    head = [h for _, h in TRIAL_COLS] + [c[4:] if c.startswith("tag_") else c.replace("_", " ") for c in tag_cols]
    rows = []
    for r in df.to_dict("records"):
        cells = []
        for key, _ in TRIAL_COLS:
            v = r.get(key)
            if key == "_size":
                cells.append((size_label(r.get("model_size")), r.get("params") or 0))
            elif key in ("min_dev_error", "final_train_error", "test_error"):
                v = finite(v)
                cells.append((f.err(v), v if v is not None else ""))
            elif key == "params":
                v = finite(v)
                cells.append((human(v) if v is not None else "", v if v is not None else ""))
            elif key == "wall_time":
                v = finite(v)
                cells.append((f"{v:.1f}" if v is not None else "", v if v is not None else ""))
            elif key == "id":
                cells.append((str(v or ""), str(v or "")))
            else:
                v = finite(v) if key != "status" else v
                txt = "" if v is None else (str(int(v)) if isinstance(v, float) and v == int(v) else str(v))
                cells.append((txt, v if v is not None else ""))
        for c in tag_cols:
            v = r.get(c)
            v = "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v
            cells.append((str(v), v if isinstance(v, (int, float)) else str(v)))
        rows.append(cells)
    return {"head": head, "rows": rows}


def failed_table(d: ReportData) -> dict | None:
    df = d.trials
    bad = df[df["status"] != "ok"] if len(df) else df
    if not len(bad):
        return None
    rows = [
        [
            str(r["status"]),
            count(r["data_size"]),
            size_label(r["model_size"]),
            str(r["seed"]),
            str(r.get("error") or "(no reason recorded)"),
        ]
        for r in bad.to_dict("records")
    ]
    return {"head": ["status", "examples", "model", "seed", "reason"], "rows": rows}


def environment(d: ReportData) -> list[list[str]]:
    info = dict(d.study.get("info") or {})
    rows = []
    wall = d.summary.get("wall_time_s", info.pop("wall_time_total", None))
    info.pop("wall_time_total", None)
    if wall is not None:
        rows.append(["wall time (all runs)", _duration(wall)])
    last = info.pop("last_run_wall_time", None)
    if last is not None:
        rows.append(["wall time (last run)", _duration(last)])
    for k in ("started_at", "updated_at"):
        if d.study.get(k):
            rows.append([k.replace("_", " "), _when(d.study[k])])
    if d.summary.get("device") and "device" not in info:
        rows.append(["device", str(d.summary["device"])])
    rows += [[str(k), v if isinstance(v, str) else json.dumps(v)] for k, v in info.items()]
    if d.study.get("source"):
        rows.append(["study source", str(d.study["source"])])
    return rows


def _duration(s) -> str:
    s = float(s)
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _when(t) -> str:
    try:
        return _dt.datetime.fromtimestamp(float(t)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(t)


def subtitle(d: ReportData) -> str:
    cfg = d.study.get("config") or {}
    t = d.summary.get("trials") or {}
    parts = []
    data = cfg.get("data") or {}
    if data.get("name"):
        parts.append(f"data {data['name']}")
    model = cfg.get("model") or {}
    if model.get("family"):
        parts.append(f"model {model['family']}")
    if d.points:
        parts.append(
            f"{len(d.points)} subsets, {count(d.points[0]['data_size'])}–{count(d.points[-1]['data_size'])} examples"
        )
    if t.get("total") is not None:
        extra = ", ".join(f"{t[k]} {k}" for k in ("diverged", "failed") if t.get(k))
        parts.append(f"{t['total']} trials" + (f" ({extra})" if extra else ""))
    if cfg.get("seeds"):
        parts.append(f"{cfg['seeds']} seeds each")
    return " · ".join(parts)


def factor_section(d: ReportData, f: ErrorFormat) -> dict | None:
    """Per level: exponent, floor, error at the largest size; the verdict of summary.json's comparison."""
    from scalinglab.report.data import comparison_exponent, factor_levels

    levels = factor_levels(d.summary)
    if not levels:
        return None
    fac = d.summary.get("factor") if isinstance(d.summary.get("factor"), dict) else {}
    rows = []
    for level, v in levels.items():
        v = v or {}
        pts = v.get("points") or []
        lc = comparison_exponent(d.summary, level) or v.get("learning_curve") or {}
        fl = v.get("floor") if isinstance(v.get("floor"), dict) else {}
        last = pts[-1] if pts else None
        rows.append(
            [
                str(level),
                num(lc.get("exponent"), 2),
                interval(lc.get("exponent_ci")),
                f.err(finite(fl.get("value"))) if fl else "n/a",
                f.err_ci(fl.get("ci90")) if fl else "",
                f"{f.err(last['error'])} at {count(last['data_size'])}" if last else "n/a",
            ]
        )
    comp = fac.get("comparison") or {}
    ratios = [
        f"{_ratio_label(k)}: {num(v, 3)}×" for k, v in comp.items() if k.startswith("error_ratio_") and v is not None
    ]
    per = comp.get("per_level") if isinstance(comp.get("per_level"), dict) else {}
    return {
        "name": str(fac.get("name") or "factor"),
        "verdict": str(comp.get("verdict") or ""),
        # one sentence per level against the first: shift or exponent, and what to do (summary.level_verdict)
        "verdicts": [str(v.get("verdict")) for v in per.values() if isinstance(v, dict) and v.get("verdict")],
        "ratios": ratios,
        "head": [
            "level",
            "exponent" + (f" ({lc['form']} fit)" if lc.get("form") else ""),
            "90% CI",
            "floor",
            "90% CI",
            "best at largest subset",
        ],
        "rows": rows,
    }


def _ratio_label(key: str) -> str:
    """'error_ratio_adam_over_sgd_at_largest' -> 'adam / sgd at the largest shared size'."""
    body = key[len("error_ratio_") :]
    where = " (median over shared sizes)"
    if body.endswith("_at_largest"):
        body, where = body[: -len("_at_largest")], " at the largest shared size"
    return body.replace("_over_", " / ") + where


def weighting_table(d: ReportData, f: ErrorFormat) -> dict | None:
    """Auxiliary-data weighting study: the best weight w per data size and model size."""
    w = d.summary.get("weighting")
    if not isinstance(w, dict) or not w.get("by_data_size"):
        return None
    rows, findings = [], []
    for g in w["by_data_size"]:
        for m in g.get("models") or []:
            rows.append(
                [
                    count(g.get("data_size", 0)),
                    count(g.get("aux_size", 0)),
                    str(m.get("label", "")),
                    human(m.get("params") or 0),
                    num(finite(m.get("best_weight")), 3),
                    f.err(finite(m.get("best_dev_error"))),
                    f.err(finite(m.get("test_error_at_best"))),
                    f.err(finite(m.get("test_error_w0"))),
                ]
            )
        if g.get("finding"):
            findings.append(f"{count(g.get('data_size', 0))} examples: {g['finding']}")
    return {
        "head": [
            "examples",
            "auxiliary examples",
            "model",
            "params",
            "best w",
            "dev error at best w",
            "test error at best w",
            "test error at w=0",
        ],
        "rows": rows,
        "findings": findings,
        "selection": str(w.get("selection") or ""),
    }


def capacity_headline(d: ReportData) -> dict:
    """Headline of a capacity study: the gap verdict, one card per depth (its exponential rate)."""
    from scalinglab.analysis.capacity import parity_note

    cap = d.capacity
    cards = []
    for dep, sec in sorted(cap["depths"].items(), key=lambda kv: int(kv[0])):
        e = (sec.get("fit") or {}).get("exponential") or {}
        cards.append(
            {
                "label": f"depth {dep}: growth rate r",
                "value": num(e.get("rate"), 2) if e else "n/a",
                "sub": interval(e.get("rate_ci90")) or "" if e else "too few answers",
                "hint": f"parameters needed ~ 2^(r·{cap['vary']})",
            }
        )
    note = parity_note(cap)
    return {"sentences": [str(cap.get("verdict") or "") + "."], "cards": cards, "cautions": [note] if note else []}


def capacity_table(d: ReportData) -> dict | None:
    """Per depth and value: the smallest width that reached the target, its parameters and error;
    then the fitted laws per depth."""
    cap = d.capacity
    if not cap:
        return None
    rows, laws = [], []
    for dep, sec in sorted(cap["depths"].items(), key=lambda kv: int(kv[0])):
        for r in sec.get("answers") or []:
            rows.append(
                [
                    str(dep),
                    str(r["value"]),
                    str(r["width"]) if r["reached"] else f"> {r['width']}",
                    human(r["params"] or 0) if r["reached"] else f"> {human(r['params'] or 0)}",
                    ", ".join(fmt_pct(e) for e in r["seed_errors"]),
                    " ".join(str(w) for w in r["widths_tried"]),
                ]
            )
        fit = sec.get("fit") or {}
        for name in ("exponential", "polynomial"):
            e = fit.get(name)
            if e:
                form = f"2^(r·{cap['vary']})" if name == "exponential" else f"{cap['vary']}^k"
                laws.append(
                    [
                        str(dep),
                        f"{name}: P ∝ {form}",
                        num(e["rate"], 3),
                        interval(e["rate_ci90"]),
                        num(e["log_rmse"], 3),
                        "better" if fit.get("better") == name else "",
                    ]
                )
        if fit.get("error"):
            laws.append([str(dep), "fit failed", fit["error"], "", "", ""])
    return {
        "verdict": str(cap.get("verdict") or ""),
        "head": [
            "depth",
            cap["vary"],
            "smallest width",
            "parameters",
            "min dev error per seed",
            "widths tried",
        ],
        "rows": rows,
        "law_head": ["depth", "law", "rate", "90% CI", "log RMSE", ""],
        "laws": laws,
    }


def fmt_pct(v) -> str:
    from scalinglab.fmt import pct

    return pct(v)
