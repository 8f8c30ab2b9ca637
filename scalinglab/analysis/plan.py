"""`plan`: what it takes to reach a target error, read off a study's fitted laws.

1. Data: invert the best-fit learning curve, error(m) = E, on a dense log grid. The interval inverts the
   prediction band: the optimistic end is where the band's lower edge reaches E, the pessimistic end
   where its upper edge does (None when it never does within 1e9 x the largest data size).
2. Model: the model-size law s(m) = sigma * m**beta_p at that data size (with its interval).
3. Compute = per-example training FLOPs x data x epochs, where
   - per-example FLOPs scale with parameters: the best-fit model at the largest data size has
     `train_flops_per_example` F_ref for P_ref parameters, so F(P) = F_ref * P / P_ref (exact for MLPs,
     whose FLOPs are 6 per parameter per example; about right for CNNs of one shape);
   - epochs = examples processed / data size of that model's trials at the largest data size (passes
     until early stopping); larger data sets usually need fewer, so this tends to overestimate;
   - hours at the throughput measured in this study: sum of train FLOPs / sum of wall time over all
     finished trials (on the study's device).
4. Floor: a target at or below the fitted floor cannot be reached with this model family, at any data
   size; inside the floor's interval it may not be.
5. Capacity: when the model grid caps the curve (analysis/model_axis.py: the largest model tried is
   the best at the largest data size and its capacity term is a large share of the error), the floor
   above is the grid's; the joint law over every candidate, with the model grown along the model-size
   law, says at what data size and model size the target is reached.
6. With a FLOP budget: the joint law L(N, D) = E + A/N**alpha + B/D**beta fitted on (params, data size,
   min dev error) of every finished trial, and its compute-optimal (N, D). `compute_optimal` assumes C = 6 N D,
   so the budget is first converted: C_6ND = C * 6 / (FLOPs per parameter per example x epochs).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scalinglab.errors import UserError, bad_value

HORIZON = 1e9  # search for the data size up to this multiple of the largest data size
JOINT_BOOT = 30  # bootstrap refits of the joint law (tens of ms each, on one BLAS thread)


def invert_curve(curve, target: float, m_max: float, interval: float = 0.9) -> dict:
    """Data size where the curve (and the edges of its prediction band) first reach `target`."""
    xs = np.geomspace(1.0, m_max * HORIZON, 6000)
    pred = curve.predict(xs, interval=interval)

    def first(y):
        idx = np.nonzero(np.asarray(y) <= target)[0]
        return float(xs[idx[0]]) if idx.size else None

    return {
        "data_size": first(pred.y),
        "data_size_lo": first(pred.lo),
        "data_size_hi": first(pred.hi),
        "interval": interval,
    }


def _ref_trials(df: pd.DataFrame, point: dict) -> pd.DataFrame:
    ok = df[(df["status"] == "ok") & (df["data_size"] == point["data_size"])]
    same = ok[(ok["params"] == point["params"]) & (ok["lr"] == point["lr"])]
    return same if len(same) else ok


def compute_model(df: pd.DataFrame, point: dict) -> dict:
    """FLOPs per parameter per example, epochs and throughput measured in the study."""
    ref = _ref_trials(df, point)
    fpe = float(ref["train_flops_per_example"].median())
    seen = ref["train_flops"] / ref["train_flops_per_example"]  # examples processed
    epochs = float((seen / ref["data_size"]).median())
    ok = df[(df["status"] == "ok") & (df["wall_time"] > 0)]
    thr = float(ok["train_flops"].sum() / ok["wall_time"].sum()) if len(ok) else None
    return {
        "ref_params": int(point["params"]),
        "ref_flops_per_example": fpe,
        "flops_per_param_per_example": fpe / point["params"],
        "epochs": epochs,
        "throughput_flops_per_s": thr,
        "ref_data_size": int(point["data_size"]),
    }


def plan(
    df: pd.DataFrame,
    config: dict,
    target: float,
    *,
    max_flops: float | None = None,
    form: str = "auto",
    device: str | None = None,
    where: str = "scalinglab plan",
    metric=None,
) -> dict:
    """The plan as a plain dict (see the module docstring). metric: the study's `Metric`
    (`metric.stored_metric` reads it from summary.json); None: from config."""
    from scalinglab.analysis.points import best_points, points_list
    from scalinglab.analysis.summary import fit_learning_curve, fit_size_law
    from scalinglab.metric import study_metric

    y0 = (metric or study_metric(config)).random_guess
    # The metric's own range: an error rate below random guessing (< 1), or bits per character below
    # log2 of the vocabulary for a language model.
    top = max(y0, 1.0) if y0 is not None else math.inf  # a user metric without a random-guess level
    if not (isinstance(target, (int, float)) and 0 < target < top and math.isfinite(target)):
        allowed = (
            "a value > 0 of the study's metric"
            if y0 is None
            else "an error rate in (0, 1), e.g. 0.05"
            if y0 < 1
            else f"a dev loss in (0, {y0:.3g}) bits"
        )
        raise bad_value(where, "--target-error", target, allowed)
    if max_flops is not None and not (math.isfinite(max_flops) and max_flops > 0):
        raise bad_value(where, "--max-flops", max_flops, "a FLOP budget > 0, e.g. 1e15")
    points = points_list(best_points(df, config.get("seeds")))
    if len(points) < 4:
        raise UserError(
            f"{where}: {len(points)} data sizes with finished trials; allowed: at least 4 to fit "
            f"a learning curve (let the study finish)"
        )
    if any(p["params"] is None for p in points):
        raise UserError(
            f'{where}: the trainer returned no "params" for the best models; allowed: a study whose '
            f"trainer returns params (and flops), which the model-size and compute plan need"
        )
    curve = fit_learning_curve(points, y0=y0, form=form)
    law = fit_size_law(points)
    M = points[-1]["data_size"]
    r = curve.regions  # the curve's own floor, as in summary.json (summary.floor_of)
    floor, floor_ci = r["floor"], r["floor_ci"]
    out = {
        "target_error": target,
        "largest_data_size": M,
        "best_error_measured": points[-1]["error"],
        "learning_curve": {"form": curve.form, "params": curve.params},
        "floor": floor,
        "floor_ci": floor_ci,
    }
    cm = compute_model(df, points[-1])
    out["compute_model"] = cm
    largest_tried = int(df.loc[df["status"] == "ok", "params"].max())
    if points[-1]["params"] >= largest_tried:  # the size law cannot see past the grid
        out["note"] = (
            f"the best-fit size at the largest data size is the largest size tried ({largest_tried:,} "
            f"params): the model-size law is bounded by the size grid; extend it to trust the model size"
        )
    fl_txt = "" if floor is None else f"{floor:.4g}" + (f" [{floor_ci[0]:.4g}, {floor_ci[1]:.4g}]" if floor_ci else "")
    # Certain only below the floor's whole interval: with a floor of 1.4% [0, 2.2%], a 1% target is
    # improbable, not impossible.
    if floor is not None and (target < floor_ci[0] if floor_ci else target <= floor):
        out["reachable"] = False
        out["verdict"] = (
            f"cannot be reached with this model family: the target {target:.4g} is at or below "
            f"the estimated floor {floor:.4g}" + (f" [{floor_ci[0]:.4g}, {floor_ci[1]:.4g}]" if floor_ci else "")
        )
    else:
        inv = invert_curve(curve, target, M)
        out.update(inv)
        if inv["data_size"] is None:
            out["reachable"] = False
            out["verdict"] = f"not reached within {HORIZON:.0e} x the largest data size by the fitted curve"
            if floor is not None and target <= floor:
                out["verdict"] += f"; the target is below the estimated floor {fl_txt}"
        else:
            out["reachable"] = True
            m = inv["data_size"]
            out["verdict"] = "reachable" + (" (already at the data sizes measured)" if m <= M else "")
            if floor is not None and target <= floor:
                out["reachable"] = False
                out["verdict"] = (
                    f"probably not reachable with this model family: the target is below the "
                    f"estimated floor {fl_txt}, although inside its interval; the fitted "
                    f"{curve.form} curve alone would reach it at the data size below"
                )
            elif floor_ci is not None and target <= floor_ci[1]:
                out["verdict"] += (
                    f"; but the target lies inside the floor's interval [{floor_ci[0]:.4g}, "
                    f"{floor_ci[1]:.4g}]: it may not be reachable with this family"
                )
            ms = [v for v in (inv["data_size_lo"], m, inv["data_size_hi"]) if v is not None]
            ps = law.predict(ms, interval=0.9)
            k = ms.index(m)
            out["params"] = float(ps.y[k])
            out["params_ci"] = [float(ps.lo[k]), float(ps.hi[k])]
            out["flops"] = _flops(cm, out["params"], m)
            out["flops_range"] = [
                _flops(cm, float(ps.y[0]), ms[0]),
                _flops(cm, float(ps.y[-1]), ms[-1]) if inv["data_size_hi"] else None,
            ]
            if cm["throughput_flops_per_s"]:
                out["hours"] = out["flops"] / cm["throughput_flops_per_s"] / 3600
    capacity = _capacity(df, points, r, y0, law, target, M)
    if capacity:  # the grid caps the curve: its floor is the grid's, and a bigger model is the answer
        out["capacity"] = capacity
        out["reachable_with_bigger_model"] = capacity.get("grown_data_size") is not None
        if not out["reachable"]:
            out["verdict"] = "not with the model sizes tried: " + capacity["verdict"]
        else:
            out["verdict"] += "; " + capacity["verdict"]
    # the joint fit takes tens of seconds (grid of starts + bootstrap): only when a budget is asked for
    out["joint"] = _joint(df, cm, max_flops, target) if max_flops is not None else None
    out["device"] = device
    return out


def _capacity(df, points, regions, y0, size_law, target: float, M: float) -> dict | None:
    """When the model grid caps the learning curve (analysis/model_axis.py): the grid's capacity floor
    and, along the model-size law, the data size and parameters at which the joint law reaches the
    target, with the smallest model that reaches it there."""
    from scalinglab.analysis.model_axis import GROW_SHARE, grown_params, model_axis, params_for
    from scalinglab.analysis.points import candidate_scores
    from scalinglab.fit.engine import FitError

    try:
        axis = model_axis(candidate_scores(df), points, regions, y0=y0, size_fit=size_law, factors=())
    except (FitError, ValueError, UserError):
        return None
    if not axis or not axis["capped"]:
        return None
    p, cf = axis["params"], axis["capacity_floor"]
    out = {
        "capacity_floor": cf["value"],
        "capacity_floor_ci": cf["ci"],
        "largest_model_params": axis["largest_model_params"],
        "irreducible": axis["irreducible"]["value"],
        "irreducible_ci": axis["irreducible"]["ci"],
    }
    what = (
        f"the model grid caps the curve: with the largest model tried ({axis['largest_model_params']:,.0f} params) "
        f"the error flattens at {cf['value']:.4g} [{cf['ci'][0]:.4g}, {cf['ci'][1]:.4g}] (joint law over every "
        f"candidate), the grid's capacity floor, not an irreducible error ({p['E']:.4g})"
    )
    if target <= p["E"]:
        out["verdict"] = what + "; the target is below the joint law's irreducible error too"
        return out
    ms = np.geomspace(M, M * HORIZON, 4000)
    grown = grown_params(p, ms)  # the model-size law is bounded by the grid here: the joint law grows it
    loss = p["E"] + p["A"] / grown ** p["alpha"] + p["B"] / ms ** p["beta"]
    idx = np.nonzero(loss <= target)[0]
    if idx.size:
        m = float(ms[idx[0]])
        need = params_for(axis, target, m)
        out.update(grown_data_size=m, grown_params=float(grown[idx[0]]), min_params=need)
        out["verdict"] = (
            what + f"; add larger models: grown with the data (capacity term at {GROW_SHARE:.0%} of the data term) "
            f"the target is reached at about "
            f"{m:,.0f} examples with {grown[idx[0]]:,.0f} params (at least {need:,.0f} params at that data size)"
        )
    else:
        out["verdict"] = what + "; even with the model grown with the data, the joint law does not reach the target"
    return out


def _flops(cm: dict, params: float, data: float) -> float:
    return cm["flops_per_param_per_example"] * params * data * cm["epochs"]


def _joint(df: pd.DataFrame, cm: dict, max_flops: float | None, target: float) -> dict | None:
    """The joint law on every finished trial; the compute-optimal allocation of `max_flops`."""
    from scalinglab.fit import fit_joint

    ok = df[(df["status"] == "ok") & (df["min_dev_error"] > 0)]
    try:
        jf = fit_joint(
            ok["params"].to_numpy(float),
            ok["data_size"].to_numpy(float),
            ok["min_dev_error"].to_numpy(float),
            n_boot=JOINT_BOOT,
        )
    except UserError as e:
        return {"error": str(e)}
    out = {"fit": jf.to_dict()}
    if max_flops is not None:
        # compute_optimal assumes C = 6 N D; ours is k N D epochs (k FLOPs per parameter per example)
        c6 = max_flops * 6 / (cm["flops_per_param_per_example"] * cm["epochs"])
        o = jf.compute_optimal(c6)
        n, d = float(o["N_opt"]), float(o["D_opt"])
        pr = jf.predict(n, d, interval=0.9)
        out["budget"] = {
            "max_flops": max_flops,
            "c_6nd": c6,
            "params": n,
            "data_size": d,
            "params_ci": [float(o["N_opt_ci"][0]), float(o["N_opt_ci"][1])],
            "data_size_ci": [float(o["D_opt_ci"][0]), float(o["D_opt_ci"][1])],
            "error": float(pr["y"]),
            "error_ci": [float(pr["lo"]), float(pr["hi"])],
            "meets_target": bool(float(pr["y"]) <= target),
        }
        if cm["throughput_flops_per_s"]:
            out["budget"]["hours"] = max_flops / cm["throughput_flops_per_s"] / 3600
    return out


def _n(v):
    return "n/a" if v is None else f"{v:,.0f}" if v < 1e7 else f"{v:.3g}"


def format_plan(p: dict) -> list[str]:
    cm = p["compute_model"]
    fl = (
        "none"
        if p["floor"] is None
        else f"{p['floor']:.4g}" + (f" [{p['floor_ci'][0]:.4g}, {p['floor_ci'][1]:.4g}]" if p["floor_ci"] else "")
    )
    lines = [
        f"target dev error {p['target_error']:.4g}: {p['verdict']}",
        f"  learning curve: {p['learning_curve']['form']}, floor {fl}; best measured {p['best_error_measured']:.4g} "
        f"at m={p['largest_data_size']}",
    ]
    if p.get("data_size") is not None:
        hi = _n(p["data_size_hi"]) if p["data_size_hi"] else f"beyond {HORIZON:.0e} x the largest (unbounded)"
        lines.append(f"  data needed:   {_n(p['data_size'])} examples   90% interval [{_n(p['data_size_lo'])}, {hi}]")
        lines.append(
            f"  model size:    {_n(p['params'])} parameters (model-size law)   90% interval "
            f"[{_n(p['params_ci'][0])}, {_n(p['params_ci'][1])}]"
        )
        rng = p["flops_range"]
        lines.append(
            f"  training compute: {p['flops']:.3g} FLOPs  (range {rng[0]:.3g} .. "
            f"{'unbounded' if rng[1] is None else format(rng[1], '.3g')})"
        )
        lines.append(
            f"    = {cm['flops_per_param_per_example']:.3g} FLOPs/param/example x {_n(p['params'])} params "
            f"x {_n(p['data_size'])} examples x {cm['epochs']:.1f} epochs (epochs and FLOPs/param of the "
            f"best model at m={cm['ref_data_size']}, {cm['ref_params']:,} params)"
        )
        if p.get("hours") is not None:
            lines.append(
                f"  time: {p['hours']:.3g} hours at the {cm['throughput_flops_per_s']:.3g} FLOP/s measured "
                f"in this study" + (f" ({p['device']})" if p.get("device") else "")
            )
    if p.get("note"):
        lines.append(f"  note: {p['note']}")
    j = p.get("joint")
    if j and "fit" in j:
        jp = j["fit"]["params"]
        lines.append(
            f"  joint law: L = {jp['E']:.3g} + {jp['A']:.3g}/N^{jp['alpha']:.3g} + {jp['B']:.3g}/D^{jp['beta']:.3g}"
            + ("" if j["fit"]["converged"] else "  [NOT CONVERGED]")
        )
        b = j.get("budget")
        if b:
            lines.append(
                f"  compute-optimal for {b['max_flops']:.3g} FLOPs: {_n(b['params'])} params "
                f"[{_n(b['params_ci'][0])}, {_n(b['params_ci'][1])}] on {_n(b['data_size'])} examples "
                f"[{_n(b['data_size_ci'][0])}, {_n(b['data_size_ci'][1])}], expected error {b['error']:.4g} "
                f"[{b['error_ci'][0]:.4g}, {b['error_ci'][1]:.4g}]: "
                + ("meets" if b["meets_target"] else "misses")
                + " the target"
                + (f"; {b['hours']:.3g} hours at the measured throughput" if b.get("hours") else "")
            )
    elif j:
        lines.append(f"  joint law: not fitted ({j['error']})")
    return lines
