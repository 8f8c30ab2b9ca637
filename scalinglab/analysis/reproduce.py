"""The paper's table, measured here: per domain of Hestness et al. (2017), a CPU-sized study's
learning-curve exponent beta_g and model-size exponent beta_p, beside the paper's values.

Every measured number is read from the study's stored summary.json: beta_g is the exponent of the
Hestness form, `eps(m) = alpha m^beta_g + gamma` (pow_c), fitted to the summary's best-fit points (the
summary's own `auto` form may be an M4 or a broken power law, whose exponent is an asymptotic slope and
not comparable); beta_p is the summary's model-size law. The paper's values are those of BACKGROUND.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalinglab.fit.engine import FitError

HESTNESS_FORM = "pow_c"
PAPER_BETA_P = "0.5 to 1"


@dataclass(frozen=True)
class Domain:
    name: str
    preset: str | None  # None: not built yet
    quick: str | None
    paper: dict  # metric label -> the paper's beta_g
    note: str = ""


DOMAINS = {
    "translation": Domain("translation", "translation", "translation-smoke", {"dev loss": -0.128}),
    "word-lm": Domain("word LM", None, None, {"dev loss": -0.066}, "not built yet: no word-level LM (issue 16)"),
    "char-lm": Domain("char LM", "charlm", "charlm-smoke", {"dev loss": -0.094}),
    # the paper's LM family: an LSTM (the row above is the Transformer)
    "char-lm-lstm": Domain("char LM (LSTM)", "charlm-lstm", "charlm-lstm-smoke", {"dev loss": -0.094}),
    "image": Domain("image", "image", "image-smoke", {"top-1": -0.309, "top-5": -0.488}),
    "speech": Domain("speech", "speech", "speech-smoke", {"WER": -0.299}),
}


def _beta_g(points: list[dict], y0) -> dict:
    from scalinglab.analysis.summary import fit_learning_curve

    if len(points) < 4:
        return {"note": f"{len(points)} data sizes: too few to fit (needs 4)"}
    try:
        f = fit_learning_curve(points, y0=y0, form=HESTNESS_FORM)
    except (FitError, ValueError) as e:
        return {"note": f"not fitted: {e}"}
    return {"value": float(f.exponent), "ci": [float(v) for v in f.exponent_ci]}


def domain_rows(key: str, summary: dict | None, study_folder: str | None) -> list[dict]:
    """One row per metric of a domain (image: top-1 and top-5), from its stored summary."""
    d = DOMAINS[key]
    rows = []
    for label, paper in d.paper.items():
        row = {"domain": d.name, "metric": label, "paper_beta_g": paper, "paper_beta_p": PAPER_BETA_P}
        if summary is None:
            rows.append({**row, "note": d.note or "not run"})
            continue
        pts = summary.get("points_top5") if label == "top-5" else summary.get("points")
        row["beta_g"] = _beta_g(pts or [], summary.get("random_guess_error"))
        sl = summary.get("model_size_law") or {}
        row["beta_p"] = {"value": sl["exponent"], "ci": sl.get("exponent_ci")} if sl.get("exponent") is not None else {}
        pts = pts or []
        row["data_sizes"] = [pts[0]["data_size"], pts[-1]["data_size"]] if pts else None
        row["study"] = summary.get("study")
        row["folder"] = study_folder
        rows.append(row)
    return rows


def markdown(rows: list[dict], title: str) -> str:
    def est(e):
        if not e or e.get("value") is None:
            return (e or {}).get("note", "n/a")
        ci = e.get("ci")
        return f"{e['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    out = [
        f"# {title}",
        "",
        "beta_g: exponent of eps(m) = alpha m^beta_g + gamma (pow_c) fitted to the study's best-fit points; "
        "beta_p: exponent of the best model's size s(m) = sigma m^beta_p; [90% intervals]. Measured values "
        "are read from each study's summary.json; paper values from Hestness et al. (2017).",
        "",
        "| domain | metric | data sizes | beta_g measured | beta_g paper | beta_p measured | beta_p paper |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        sizes = f"{r['data_sizes'][0]:,}..{r['data_sizes'][1]:,}" if r.get("data_sizes") else "-"
        measured_g = est(r.get("beta_g")) if "beta_g" in r else r.get("note", "")
        measured_p = est(r.get("beta_p")) if "beta_p" in r else ""
        out.append(
            f"| {r['domain']} | {r['metric']} | {sizes} | {measured_g} | {r['paper_beta_g']} | {measured_p} | "
            f"{r['paper_beta_p']} |"
        )
    return "\n".join(out) + "\n"
