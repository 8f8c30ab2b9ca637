"""The Markdown report (`report.md` with the PNGs beside it in `plots/`), for PRs and wikis.

User strings are escaped for Markdown: HTML is neutralised (`<` -> `&lt;`) and table cells cannot
break out of their column (`|` -> `\\|`).
"""

from __future__ import annotations

import json

from scalinglab.fmt import ErrorFormat
from scalinglab.report import words
from scalinglab.report.data import EXTRAPOLATE, ReportData

CAPTIONS = {
    "learning_curve": (
        "Learning curve",
        (
            f"every trial (grey), best model per subset (median, seed range), "
            f"fitted law with 90% band, extrapolation to {EXTRAPOLATE}x dashed, "
            "regions shaded"
        ),
    ),
    "model_size_curves": ("Curves per model size", "dev error vs data for each model size"),
    "model_size": ("Model size vs data", "best-fit parameters vs data with the fitted law"),
    "factors": ("Factor comparison", "one learning curve per factor level"),
    "backtest": (
        "Forecasts against later measurement",
        "each forecast from a prefix of the points (and from earlier runs) with its 90% interval",
    ),
    "capacity": (
        "Parameters needed per depth",
        "smallest model reaching the target per value; solid: exponential fit, dashed: polynomial; "
        "open triangles: not reached (lower bounds)",
    ),
}


def esc(s) -> str:
    s = str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|":
        s = s.replace(ch, "\\" + ch)
    return " ".join(s.split())  # one line: a newline would end a table row


def table(head, rows) -> str:
    out = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def render(d: ReportData, plots: dict[str, bytes], plot_dir: str = "plots") -> str:
    f = ErrorFormat(d.is_rate)
    head = words.headline(d, f)
    cfg = d.study.get("config") or {}
    md = [f"# {esc(d.name)}", ""]
    if cfg.get("description"):
        md += [esc(cfg["description"]), ""]
    md += [f"_{esc(words.subtitle(d))}_", "", "## Headline", ""]
    md += [("**" + esc(s) + "**" if i == 0 else esc(s)) + "  " for i, s in enumerate(head["sentences"])]
    if head["cautions"]:
        md += ["", "> **Read with care**"] + [f"> - {esc(c)}" for c in head["cautions"]]
    md.append("")
    for name in plots:
        title, cap = CAPTIONS.get(name, (name, ""))
        md += [f"## {title}", "", f"![{title}]({plot_dir}/{name}.png)", "", f"_{cap}_", ""]
    preds = words.predictions_table(d, f)
    if preds:
        md += ["## Predictions", "", table(preds["head"], preds["rows"]), ""]
    for law in words.laws_table(d):
        md += [
            f"### {law['title']}: {esc(law['form'])}",
            "",
            f"`{law['formula']}`",
            "",
            table(["parameter", "estimate", "90% CI"], law["rows"]),
            "",
            esc(law["fit"] + ("; " + law["note"] if law["note"] else "")),
            "",
        ]
    fac = words.factor_section(d, f)
    if fac:
        md += [f"## Factor: {esc(fac['name'])}", ""] + ([f"**{esc(fac['verdict'])}**", ""] if fac["verdict"] else [])
        md += [f"- {esc(v)}" for v in fac["verdicts"]] + ([""] if fac["verdicts"] else [])
        md += [table(fac["head"], fac["rows"]), ""] + [esc(r) + "  " for r in fac["ratios"]] + [""]
    cap = words.capacity_table(d)
    if cap:
        md += ["## Capacity: answers and laws", "", f"**{esc(cap['verdict'])}**", ""]
        md += [table(cap["head"], cap["rows"]), "", table(cap["law_head"], cap["laws"]), ""]
    wt = words.weighting_table(d, f)
    if wt:
        md += ["## Auxiliary-data weighting", "", esc(wt["selection"]), "", table(wt["head"], wt["rows"]), ""]
        md += [f"- {esc(x)}" for x in wt["findings"]] + [""]
    bt = words.backtest_section(d, f)
    if bt:
        md += ["## Forecasts checked", ""] + [esc(s) + "  " for s in bt["sentences"]] + [""]
        if bt["ledger_rows"]:
            md += [table(bt["ledger_head"], bt["ledger_rows"]), ""]
        if bt["rows"]:
            md += ["<details><summary>every backtest forecast</summary>", "", table(bt["head"], bt["rows"]), ""]
            md += ["</details>", ""]
    best = words.best_table(d, f)
    if best:
        md += ["## Best configuration per subset", "", table(best["head"], best["rows"]), ""]
    failed = words.failed_table(d)
    if failed:
        md += [f"## Diverged and failed trials ({len(failed['rows'])})", "", table(failed["head"], failed["rows"]), ""]
    tr = words.trials_table(d, f)
    if tr["rows"]:
        md += [
            f"## All trials ({len(tr['rows'])})",
            "",
            "<details><summary>show</summary>",
            "",
            table(tr["head"], [[c[0] for c in r] for r in tr["rows"]]),
            "",
            "</details>",
            "",
        ]
    cfg_json = json.dumps(cfg, indent=2, default=str).replace("```", "` ` `")
    md += [
        "## Study as run",
        "",
        "```json",
        cfg_json,
        "```",
        "",
        "### Machine, versions, wall time",
        "",
        table(["", ""], words.environment(d)),
        "",
    ]
    return "\n".join(md)
