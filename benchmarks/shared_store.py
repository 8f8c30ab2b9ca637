"""Runs sharing one folder: does a study finish in about the time of one run, with no trial twice?

    python benchmarks/shared_store.py                   # benchmarks/studies/medium-grid.toml: ~4 min, 2 cores
    python benchmarks/shared_store.py --study smoke     # any preset or study file

Side by side in one go, each into a fresh folder: 1 run alone, then N runs (2 and 4) started together
on one folder (`scalinglab run STUDY --out F` in N processes), each with the default of one torch
thread: on 2 idle cores, 2 runs that split the work can take about half the time of one, 4 no less
than that. Columns: wall seconds until the last process exits and that over the single run's; CPU
seconds of all N processes together and that over the single run's (the measure that holds on a
loaded machine: work split, not repeated, is about 1x plus each extra process's start-up); trial rows
in the store and distinct trial ids (the same study: the counts must match the single run's). Before
claims (store/claims.py), every process trained every trial: 4 processes took 1.8x the time of one.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_together(study: str, n: int, out: Path) -> tuple[float, float]:
    """Wall seconds until the last of `n` runs exits, and the CPU seconds they used together."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "scalinglab.cli.main", "run", study, "--out", str(out), "--no-progress"]
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) for _ in range(n)]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"a run failed: {p.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - t0, _children_cpu() - cpu0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = str(Path(__file__).parent / "studies" / "medium-grid.toml")
    ap.add_argument("--study", default=default, help="a preset or study file (default: studies/medium-grid.toml)")
    ap.add_argument("--runs", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(  # warm the data cache outside the timings
            [sys.executable, "-m", "scalinglab.cli.main", "run", args.study, "--out", f"{tmp}/warm", "--no-progress"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in args.runs:
            out = Path(tmp) / f"n{n}"
            wall, cpu = run_together(args.study, n, out)
            with sqlite3.connect(out / "results.sqlite") as c:
                count, distinct = c.execute("SELECT count(*), count(DISTINCT id) FROM trials").fetchone()
            rows.append((n, wall, cpu, count, distinct))
    base, base_cpu = rows[0][1], rows[0][2]
    print(f"study {args.study}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'runs':>5} {'wall s':>8} {'x one run':>10} {'cpu s':>8} {'x one run':>10} {'rows':>6} {'distinct':>9}")
    for n, wall, cpu, count, distinct in rows:
        print(f"{n:>5} {wall:>8.1f} {wall / base:>10.2f} {cpu:>8.1f} {cpu / base_cpu:>10.2f} {count:>6} {distinct:>9}")


if __name__ == "__main__":
    main()
