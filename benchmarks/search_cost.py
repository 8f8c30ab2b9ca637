"""What successive halving saves in the Hestness search, and what it must not change (issue 18).

Runs one study twice in one process, side by side: the full search (`prune = false`) and the pruned
one (`prune = true`, the default), each in a fresh folder, in-process and batched (as `scalinglab run`).
Prints per run the training FLOPs actually spent (every stored trial, rung trials included, less the
epochs a survivor took over from its rung's snapshot, train/resume.py), the wall
time with the load average beside it (a shared machine inflates it), the best-fit point per data size,
the fitted exponent and the model-size exponent with their intervals, and the ratios pruned / full.
Group sizes: both stores are replayed through the search (no training) with the old schedule (every
data size waits for the others at each phase) and the new one (each goes on alone), cut into the
batched trainer's units as a run would, to show how big the groups get.

    nice python benchmarks/search_cost.py                   # the default preset (minutes on 2 cores)
    nice python benchmarks/search_cost.py --preset smoke    # a quick look

Targets (issue 18): pruned FLOPs <= 0.4x full; every best-fit point within the seed spread of the
unpruned one; exponent intervals overlapping; default study <= 100 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's scalinglab


def run(study, out: Path, prune: bool) -> dict:
    from scalinglab.runner import run_study
    from scalinglab.store import Store

    study = study.model_copy(update={"search": study.search.model_copy(update={"prune": prune})})
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    summary = run_study(study, out, log=lambda m: None, threads=1)
    wall = time.perf_counter() - t0
    with Store(out, readonly=True) as st:
        df = st.frame(study.name, with_json=True)
        results = st.result_index(study.name)
    # spent: a trial that went on from a rung's snapshot did not pay the rung's epochs again
    resumed = sum(json.loads(r).get("resumed_flops") or 0 for r in df["result"])
    return {
        "study": study,
        "summary": summary,
        "wall": wall,
        "load": (load0, os.getloadavg()[0]),
        "flops": float(df["train_flops"].fillna(0).sum()) - resumed,
        "resumed": resumed,
        "trials": len(df),
        "rungs": int((df.get("tag_stage") == "rung").sum()) if "tag_stage" in df else 0,
        "results": results,
    }


def group_sizes(study, results: dict, schedule: str) -> list[int]:
    """Sizes of the batched trainer's units, round by round, when the search replays `results`."""
    from scalinglab.search import HestnessSearch
    from scalinglab.train.packing import MAX_GROUP
    from scalinglab.train.runners import plan_units
    from scalinglab.train.trial import trial_id

    search, done, sizes = HestnessSearch(study, schedule=schedule), {}, []
    while todo := [s for s, _ in search.next_trials(done) if trial_id(s) not in done]:
        sizes += [len(u) for u in plan_units(todo, "cpu", True, MAX_GROUP)]
        for s in todo:
            done[trial_id(s)] = results[trial_id(s)]
    return sizes


def law(summary: dict) -> tuple:
    lc, ms = summary.get("learning_curve") or {}, summary.get("model_size_law") or {}
    ci = lc.get("exponent_ci") or (float("nan"),) * 2
    mci = (ms.get("ci") or {}).get("beta_p") or (float("nan"),) * 2
    return lc.get("form"), lc.get("exponent"), tuple(ci), (ms.get("params") or {}).get("beta_p"), tuple(mci)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(head: list[str], rows: list[tuple]) -> None:
    cells = [head, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    for r in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def overlap(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", help="preset name or study .toml (default: default)")
    ap.add_argument("--out", default=None, help="folder for the two stores (default: a temporary one)")
    args = ap.parse_args(argv)
    import torch

    from scalinglab.config import load_study

    torch.set_num_threads(1)
    study, _ = load_study(args.preset)
    if study.search.kind != "hestness":
        ap.error(f"--preset: given {args.preset!r}, a {study.search.kind!r} search; allowed: a Hestness study")
    root = Path(args.out or tempfile.mkdtemp(prefix="search_cost-"))
    print(f"study {study.name!r} ({args.preset}); {os.cpu_count()} CPUs; stores under {root}")
    runs = {name: run(study, root / name, prune) for name, prune in (("full", False), ("pruned", True))}

    f, p = runs["full"], runs["pruned"]
    rows = [
        ("trials (rung trials)", f"{f['trials']} ({f['rungs']})", f"{p['trials']} ({p['rungs']})", ""),
        ("training FLOPs spent", f"{f['flops']:.3e}", f"{p['flops']:.3e}", f"{p['flops'] / f['flops']:.2f}"),
        ("  not repaid (snapshots)", f"{f['resumed']:.3e}", f"{p['resumed']:.3e}", ""),
        ("wall time (s)", f"{f['wall']:.1f}", f"{p['wall']:.1f}", f"{p['wall'] / f['wall']:.2f}"),
        ("load avg (start, end)", "{:.2f}, {:.2f}".format(*f["load"]), "{:.2f}, {:.2f}".format(*p["load"]), ""),
    ]
    for sched in ("phase", "subset"):
        cells = []
        for r in (f, p):
            g = group_sizes(r["study"], r["results"], sched)
            cells.append(f"{len(g)} units, mean {statistics.mean(g):.2f}")
        rows.append((f"groups, {sched} schedule", *cells, ""))
    table(["", "full (prune=false)", "pruned (prune=true)", "pruned/full"], rows)

    pf = {pt["data_size"]: pt for pt in f["summary"]["points"]}
    rows, ok_all = [], True
    for pt in p["summary"]["points"]:
        q = pf.get(pt["data_size"])
        if q is None:
            continue
        inside = q["error_lo"] - 1e-12 <= pt["error"] <= q["error_hi"] + 1e-12
        better = pt["error"] < q["error_lo"]  # outside the spread, but lower: pruning found a better one
        ok_all &= inside
        rows.append(
            (
                pt["data_size"],
                f"{q['error']:.4f} [{q['error_lo']:.4f}, {q['error_hi']:.4f}]",
                q["params"],
                f"{pt['error']:.4f} [{pt['error_lo']:.4f}, {pt['error_hi']:.4f}]",
                pt["params"],
                "yes" if inside else ("no, lower" if better else "NO"),
            )
        )
    print()
    table(
        ["data size", "full: error [seed range]", "params", "pruned: error [seed range]", "params", "in spread"], rows
    )

    lf, lp = law(f["summary"]), law(p["summary"])
    print()
    table(
        ["", "full", "pruned"],
        [
            ("exponent [interval] form", *("{:.3f} [{:.3f}, {:.3f}] {}".format(x[1], *x[2], x[0]) for x in (lf, lp))),
            ("model-size exponent", *("{:.3f} [{:.3f}, {:.3f}]".format(x[3], *x[4]) for x in (lf, lp))),
        ],
    )
    ratio, curve, size = p["flops"] / f["flops"], overlap(lf[2], lp[2]), overlap(lf[4], lp[4])
    print("\ntargets:")
    print(f"  pruned FLOPs <= 0.4x full: {ratio:.2f}x, {verdict(ratio <= 0.4)}")
    print(f"  best-fit points within the unpruned seed spread: {verdict(ok_all)}")
    print(f"  exponent intervals overlap: {verdict(curve and size)} (curve {curve}, model size {size})")
    print(
        f"  pruned wall time <= 100 s: {p['wall']:.1f} s, {verdict(p['wall'] <= 100)} "
        f"(load avg {p['load'][1]:.2f} on {os.cpu_count()} CPUs: shared, so inflated)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
