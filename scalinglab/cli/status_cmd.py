"""`scalinglab status DIR`: per subset, trials done/planned and the best candidate so far."""

import json

HELP = "show a study's progress: per data size, trials done/planned and the best so far"


def register(p):
    p.add_argument("folder", help="study output folder (holds results.sqlite)")
    p.add_argument(
        "--failed", action="store_true", help="also show each failed trial's stored traceback or stderr tail"
    )


def run(args) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from scalinglab.analysis.points import candidate_scores
    from scalinglab.config import Study
    from scalinglab.models.registry import size_label
    from scalinglab.search import make_search
    from scalinglab.search.grid import level_name
    from scalinglab.store import Store
    from scalinglab.store.claims import live_runs
    from scalinglab.train.trial import trial_id

    console = Console(width=max(Console().width, 100))
    with Store.open_existing(args.folder) as store:
        for st in store.studies():
            df = store.frame(st["name"])
            results = store.result_index(st["name"])
            study = Study.model_validate(st["config"])  # validated when the study was run
            # Planned = what the search would run now (later phases can add more once these finish).
            pending = [(s, t) for s, t in make_search(study).next_trials(results) if trial_id(s) not in results]
            if study.search.kind == "capacity":  # per depth and value, not per data size
                console.print(_capacity_table(study, df, pending, st["name"]))
                continue
            factor = study.search.factor
            levels = [level_name(v) for v in study.search.levels] if factor else [None]
            table = Table(
                title=f"{st['name']}: {len(df)} trials done, {len(pending)} pending in the "
                f"current phase (search: {study.search.kind}); best = lowest median over "
                f"seeds of min dev error, most seeds first"
            )
            cols = ([factor] if factor else []) + [
                "data size",
                "done",
                "pending",
                "not ok",
                "best error",
                "best model",
                "lr",
                "seeds",
            ]
            for col in cols:
                table.add_column(col, justify="left" if col in ("best model", factor) else "right", no_wrap=True)
            for level in levels:  # a factor study: one block of rows per level (tags hold the level)
                dl = df if level is None or "tag_level" not in df else df[df["tag_level"] == level]
                pl = [s for s, t in pending if level is None or t.get("level") == level]
                cand = candidate_scores(dl)
                for m in study.sizes():
                    d = dl[dl["data_size"] == m]
                    c = cand[cand["data_size"] == m].sort_values(["n_seeds", "error"], ascending=[False, True])
                    best = c.iloc[0] if len(c) else None
                    table.add_row(
                        *([level] if factor else []),
                        str(m),
                        str(len(d)),
                        str(sum(s["data_size"] == m for s in pl)),
                        str(int((d["status"] != "ok").sum())),
                        f"{best.error:.4f}" if best is not None else "-",
                        size_label(best.model_size) if best is not None else "-",
                        f"{best.lr:g}" if best is not None else "-",
                        str(int(best.n_seeds)) if best is not None else "-",
                    )
            console.print(table)
            for r in live_runs(store, st["name"]):  # runs training it now (store/claims.py)
                console.print(
                    f"running: {escape(r['host'])} pid {r['pid']}, {r['claimed']} trials claimed, "
                    f"heartbeat {r['heartbeat_age_s']:.0f} s ago"
                )
            _print_failed(console, store, st["name"], df, args.failed)
    return 0


def _capacity_table(study, df, pending, name: str):
    """A capacity study: per depth and value, the answer so far (analysis/capacity.py) and what is pending."""
    from rich.table import Table

    from scalinglab.analysis.capacity import answers

    vary = study.search.vary
    got = answers(df, study.to_dict()) if len(df) else {}
    table = Table(
        title=f"{name}: {len(df)} trials done, {len(pending)} pending (search: capacity); smallest width "
        f"whose median over seeds of min dev error <= {study.search.target:g}"
    )
    for col in ("depth", vary, "trials", "pending", "answer", "params", "median error"):
        table.add_column(col, justify="right", no_wrap=True)
    for d in study.model.depths:
        rows = {r["value"]: r for r in got.get(d, [])}
        for v in study.search.values:
            r = rows.get(v)
            waiting = sum(t.get(vary) == v and t.get("depth") == d for _, t in pending)
            answer = "-" if r is None else (str(r["width"]) if r["reached"] else f"> {r['width']} (so far)")
            table.add_row(
                str(d),
                str(v),
                str(len(r["seed_errors"]) * len(r["widths_tried"])) if r else "0",
                str(waiting),
                answer,
                f"{r['params']:,}" if r and r["params"] else "-",
                f"{r['error']:.4f}" if r else "-",
            )
    return table


def _print_failed(console, store, study: str, df, details: bool) -> None:
    """Each distinct failure reason once, with its count (and with --failed, what the trainer left)."""
    from rich.markup import escape

    from scalinglab.analysis.summary import failure_reasons

    failed = df[df["status"] == "failed"]
    if not len(failed):
        return
    console.print(f"{len(failed)} failed trials (`scalinglab run ... --retry-failed` runs them again):")
    for reason, n in failure_reasons(df).items():
        console.print(f"  {escape(reason)} ({n} trial{'s' if n != 1 else ''})", highlight=False)
    if details:
        full = store.frame(study, with_json=True)
        for _, row in full[full["status"] == "failed"].iterrows():
            tb = (json.loads(row["result"]).get("traceback") or "").rstrip()
            console.print(
                f"\n[bold]{row['id']}[/bold] data_size={row['data_size']} "
                f"{escape(row['model_size'])} seed={row['seed']}: {escape(row['error'] or '')}"
            )
            if tb:
                console.print(escape(tb), highlight=False)
