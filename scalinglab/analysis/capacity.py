"""A capacity study's answer (search/capacity.py): parameters needed vs the varied option, per depth.

Per (value v, depth): the smallest tried width whose median over seeds of the min dev error is at
most the target, and its parameter count; a (v, depth) where no tried width reached it is a lower
bound (more than the widest tried), listed but not fitted. For each depth with >= 3 answers two laws
of parameters-needed P vs v are fitted with the fitting engine (fit/, bootstrap 90% intervals):
- exponential: P = sigma * 2**(r v), fitted as a power law in 2**v; r = doublings of P per unit of v
  (per added bit for parity);
- polynomial: P = sigma * v**k.
Which describes the points better is the lower RMSE in log space (both have 2 parameters); within a
factor 1.5 of each other the points cannot tell them apart, and the summary says so.
"""

from __future__ import annotations

import json

import numpy as np

from scalinglab.fmt import jsonable

MIN_FIT = 4  # the engine fits from 4 distinct values: answers a depth needs before its laws are fitted
TELL_APART = 1.5  # the worse law's log-RMSE must exceed the better one's by this factor


def answers(df, config: dict) -> dict:
    """{depth: [{value, width, params, error, seed_errors, reached, widths_tried}]} from the trials."""
    s = config["search"]
    vary, target = s["vary"], float(s.get("target", 0.01))
    knob = "channels" if config["model"]["family"] == "cnn1d" else "width"
    rungs: dict[tuple, dict] = {}
    for row in df.itertuples():
        c = json.loads(row.config)
        v, size = int(c["data"]["options"][vary]), c["model"]["size"]
        ok = row.status == "ok" and row.min_dev_error == row.min_dev_error  # not NaN
        err = float(row.min_dev_error) if ok else 1.0
        r = rungs.setdefault((v, int(size["depth"]), int(size[knob])), {"errors": [], "params": None})
        r["errors"].append(err)
        if row.params == row.params and row.params is not None:
            r["params"] = int(row.params)
    out: dict[int, list] = {}
    for v, d in sorted({(v, d) for v, d, _ in rungs}):
        tried = sorted((w, rungs[(v, d, w)]) for vv, dd, w in rungs if (vv, dd) == (v, d))
        hit = next(((w, r) for w, r in tried if float(np.median(r["errors"])) <= target), None)
        w, r = hit or tried[-1]
        out.setdefault(d, []).append(
            {
                "value": v,
                "width": w,
                "params": r["params"],
                "error": float(np.median(r["errors"])),
                "seed_errors": sorted(r["errors"]),
                "reached": hit is not None,
                "widths_tried": [t[0] for t in tried],
            }
        )
    return out


def _law(x, p, name: str) -> dict:
    from scalinglab.fit import fit_curve

    f = fit_curve(x, p, form="model_size")
    resid = np.log(p) - np.log(f.predict(x))
    return {
        "law": name,
        "rate": float(f.exponent),
        "rate_ci90": [float(c) for c in f.exponent_ci],
        "sigma": float(f.to_dict()["params"]["sigma"]),
        "log_rmse": float(np.sqrt(np.mean(resid**2))),
    }


def fit_depth(rows: list[dict]) -> dict | None:
    """The exponential and polynomial laws of one depth's reached answers (None: too few)."""
    pts = [r for r in rows if r["reached"] and r["params"]]
    if len(pts) < MIN_FIT:
        return None
    v = np.array([r["value"] for r in pts], float)
    p = np.array([r["params"] for r in pts], float)
    try:
        exp, poly = _law(2.0**v, p, "exponential"), _law(v, p, "polynomial")
    except Exception as e:  # the engine's FitError or a degenerate set of points: say so, do not crash
        return {"error": f"{type(e).__name__}: {e}"}
    lo, hi = sorted((exp["log_rmse"], poly["log_rmse"]))
    better = "exponential" if exp["log_rmse"] < poly["log_rmse"] else "polynomial"
    told = hi > TELL_APART * max(lo, 1e-9)
    return {"exponential": exp, "polynomial": poly, "better": better if told else None, "n_points": len(pts)}


def capacity_section(df, config: dict) -> dict:
    """summary.json's "capacity": answers and laws per depth, and the verdict on the depth gap."""
    s = config["search"]
    by_depth = answers(df, config) if len(df) else {}
    depths = {str(d): {"answers": rows, "fit": fit_depth(rows)} for d, rows in sorted(by_depth.items())}
    out = {"vary": s["vary"], "target": float(s.get("target", 0.01)), "depths": depths}
    out["verdict"] = gap_verdict(out)
    return jsonable(out)


def _fmt_rate(e: dict) -> str:
    lo, hi = e["rate_ci90"]
    return f"{e['rate']:.3g} [{lo:.3g}, {hi:.3g}]"


def gap_verdict(sec: dict) -> str:
    """The shallowest vs the deepest depth, in words: does the shallow net's need grow faster?"""
    vary, ds = sec["vary"], sorted(sec["depths"], key=int)
    if len(ds) < 2:
        return "one depth only: no depth comparison"
    a, b = sec["depths"][ds[0]], sec["depths"][ds[-1]]
    fa, fb = a["fit"], b["fit"]
    missed = {d: [r["value"] for r in sec["depths"][d]["answers"] if not r["reached"]] for d in (ds[0], ds[-1])}
    miss = "; ".join(
        f"depth {d} did not reach the target at {vary} = {', '.join(map(str, v))} within the widths tried "
        f"(more parameters than the widest: a lower bound, not fitted)"
        for d, v in missed.items()
        if v
    )
    failed = [f"depth {d}: fit failed ({f['error']})" for d, f in ((ds[0], fa), (ds[-1], fb)) if f and "error" in f]
    if failed:
        return "; ".join(failed + ([miss] if miss else []))
    if not fa or not fb:
        few = f"too few answers to fit both depths (need {MIN_FIT} reached values each)"
        return few + (f"; {miss}" if miss else "")
    ea, eb = fa["exponential"], fb["exponential"]
    apart = ea["rate_ci90"][0] > eb["rate_ci90"][1] or eb["rate_ci90"][0] > ea["rate_ci90"][1]
    words = (
        f"exponential fit P ∝ 2^(r·{vary}) of the parameters needed: r = {_fmt_rate(ea)} at depth {ds[0]}, "
        f"{_fmt_rate(eb)} at depth {ds[-1]} (90% intervals); "
    )
    if apart and ea["rate"] > eb["rate"]:
        words += f"the shallow net's need grows faster: an exponential gap that widens with {vary}"
    elif apart:
        words += f"the deep net's need grows faster here: no shallow-net disadvantage in this range of {vary}"
    else:
        words += f"the r intervals overlap: no exponential gap is measurable in this range of {vary}"
    for d, f in ((ds[0], fa), (ds[-1], fb)):
        fits = f"{f['better']} fits better" if f["better"] else "exponential and polynomial fit about equally well"
        words += f"; depth {d}: polynomial k = {_fmt_rate(f['polynomial'])} ({vary}^k), {fits}"
    pa, pb = fa["polynomial"], fb["polynomial"]
    if pa["rate_ci90"][0] > pb["rate_ci90"][1]:  # a polynomial gap: a higher power of v, not an exponential
        words += f"; as polynomials the shallow net's need grows as a higher power of {vary} (k intervals apart)"
    elif pb["rate_ci90"][0] > pa["rate_ci90"][1]:
        words += f"; as polynomials the deep net's need grows as a higher power of {vary} (k intervals apart)"
    common = {r["value"]: r["params"] for r in a["answers"] if r["reached"]}
    both = [(v, common[v], r["params"]) for r in b["answers"] if r["reached"] and (v := r["value"]) in common]
    if both:
        v, pa, pb = both[-1]
        words += f"; at {vary} = {v} depth {ds[0]} needs {pa:,} parameters, depth {ds[-1]} {pb:,} ({pa / pb:.2g}x)"
    return words + (f"; {miss}" if miss else "")


def parity_note(sec: dict) -> str:
    """What the numbers can and cannot say (the report prints it under the plot)."""
    return (
        "A one-hidden-layer ReLU net can represent parity of n bits with about n units (a piecewise "
        "linear function of the bit sum), so representation alone predicts polynomial growth at depth 1; "
        "the exponential lower bounds are for depth-2 AND/OR circuits. What a capacity study measures is "
        "the smallest width that gradient descent finds a solution with, at the study's epoch budget."
        if sec.get("vary") == "n"
        else ""
    )
