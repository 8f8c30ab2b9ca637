"""Auxiliary-data weighting studies: error vs the auxiliary weight w, and the best w per model size.

Ng ("Machine Learning Yearning"): auxiliary data of another distribution should weigh less than the
target data, more so for a small network, which cannot fit both distributions. A weighting study
trains every (data size, model size, w, seed); here, per data size and model size:
- the error-vs-w curve: median over seeds of each trial's minimum dev error (and of its test error,
  measured at the best-dev epoch);
- the best w, chosen on dev only (ties to the lower w), and the test error at that w, next to the
  test error without auxiliary data (w = 0) and with every example equal (w = 1 or the largest w).
Reads only from the store.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd


def weighted_frame(store, study: str) -> pd.DataFrame:
    """`store.frame(study)` plus `aux_weight`/`aux_size` columns (`config` holds the aux part, so a
    candidate for best_points is a model config at one w)."""
    df = store.frame(study, with_json=True)
    specs = [json.loads(s) for s in df["spec"]]
    df["aux_weight"] = [float(sp["aux"]["weight"]) if sp.get("aux") else np.nan for sp in specs]
    df["aux_size"] = [int(sp["aux"]["size"]) if sp.get("aux") else 0 for sp in specs]
    return df.drop(columns=["spec", "result", "tags"])


def weighting_section(df: pd.DataFrame, weights=None) -> dict:
    """summary.json's `weighting` entry from a `weighted_frame`."""
    from scalinglab.models.registry import size_label

    ok = df[(df["status"] == "ok") & df["aux_weight"].notna()]
    out = {
        "weights": [float(w) for w in (weights or sorted(ok["aux_weight"].unique()))],
        "selection": "w with the lowest median (over seeds) minimum dev error; ties to the lower w",
        "by_data_size": [],
    }
    for n, dn in ok.groupby("data_size", sort=True):
        models = []
        for ms, dm in dn.groupby("model_size", sort=False):
            curve = []
            for w, dw in dm.groupby("aux_weight", sort=True):
                curve.append(
                    {
                        "weight": float(w),
                        "dev_error": float(dw["min_dev_error"].median()),
                        "dev_error_lo": float(dw["min_dev_error"].min()),
                        "dev_error_hi": float(dw["min_dev_error"].max()),
                        "test_error": float(dw["test_error"].median()),
                        "train_error": float(dw["final_train_error"].median()),
                        "n_seeds": len(dw),
                    }
                )
            best = min(curve, key=lambda c: (c["dev_error"], c["weight"]))
            size = json.loads(ms)
            models.append(
                {
                    "model_size": size,
                    "label": size_label(size),
                    "params": int(dm["params"].iloc[0]),
                    "curve": curve,
                    "best_weight": best["weight"],
                    "best_dev_error": best["dev_error"],
                    "test_error_at_best": best["test_error"],
                    "test_error_w0": _at(curve, 0.0),
                    "test_error_max_w": curve[-1]["test_error"],
                    "max_w": curve[-1]["weight"],
                }
            )
        models.sort(key=lambda m: m["params"])
        out["by_data_size"].append(
            {"data_size": int(n), "aux_size": int(dn["aux_size"].iloc[0]), "models": models, "finding": finding(models)}
        )
    return out


def _at(curve, w):
    return next((c["test_error"] for c in curve if c["weight"] == w), None)


def finding(models: list[dict]) -> str:
    """Does the best w grow with model size (smaller models prefer lower w)?"""
    ws = [m["best_weight"] for m in models]
    if len(ws) < 2:
        return "one model size: no comparison"
    pairs = list(zip(ws, ws[1:]))
    if all(a <= b for a, b in pairs) and ws[0] < ws[-1]:
        return "smaller models prefer a lower w (best w grows with model size)"
    if all(a == b for a, b in pairs):
        return f"every model size prefers the same w ({ws[0]:g})"
    if all(a >= b for a, b in pairs):
        return "larger models prefer a lower w (the opposite of the expected finding)"
    return "no monotone pattern: best w by size " + ", ".join(f"{w:g}" for w in ws)


def format_weighting(section: dict) -> list[str]:
    """Readable lines for the CLI."""
    lines = [f"auxiliary-data weighting (w chosen on dev; {section['selection']}):"]
    for d in section["by_data_size"]:
        lines.append(f"  target data size {d['data_size']}, auxiliary examples {d['aux_size']}:")
        ws = [c["weight"] for c in d["models"][0]["curve"]] if d["models"] else []
        lines.append(
            "    "
            + f"{'model':<16}{'params':>8}  "
            + "".join(f"{'w=' + format(w, 'g'):>9}" for w in ws)
            + f"{'best w':>9}{'test@best':>11}{'test@w=0':>10}"
        )
        for m in d["models"]:
            devs = "".join(f"{c['dev_error']:>9.3f}" for c in m["curve"])
            t0 = "-" if m["test_error_w0"] is None else f"{m['test_error_w0']:.3f}"
            lines.append(
                f"    {m['label']:<16}{m['params']:>8}  {devs}{m['best_weight']:>9g}"
                f"{m['test_error_at_best']:>11.3f}{t0:>10}"
            )
        lines.append(f"    (columns w=...: median dev error) finding: {d['finding']}")
    return lines
