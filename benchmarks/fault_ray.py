"""Fault drill for `--backend ray`: kill a Ray worker mid-study, then kill -9 the driver mid-study.

    python benchmarks/fault_ray.py [STUDY] [--workers 2] [--out runs/fault_ray]

Each run is the real CLI (`scalinglab run STUDY --backend ray`), starting its own local Ray instance.
Prints, for an uninterrupted run, a run whose worker was SIGKILLed while training a group, and a run
whose driver was SIGKILLed and then rerun: trials stored, distinct ids, failed trials, and whether the
summary points equal the uninterrupted run's. Ray processes a killed driver leaves behind (its agents)
are killed by pid. About 1-2 minutes for the smoke preset on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from scalinglab.backends.ray_backend import ray_processes, running_group_pids


def rows(out: Path) -> list[tuple]:
    db = out / "results.sqlite"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("SELECT id, status FROM trials").fetchall()
    except sqlite3.OperationalError:
        return []


def points(out: Path) -> list[dict]:
    s = json.loads((out / "summary.json").read_text())
    return [{**p, "seed_errors": sorted(p["seed_errors"])} for p in s["points"]]  # commit order differs


def cli(study: str, out: Path, workers: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scalinglab.cli.main",
            "run",
            study,
            "--out",
            str(out),
            "--backend",
            "ray",
            "--workers",
            str(workers),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen) -> None:
    _, err = p.communicate(timeout=1800)
    if p.returncode != 0:
        sys.exit(f"run failed ({p.returncode}):\n{err}")


def kill_leftovers(procs: list) -> int:
    """SIGKILL the processes of a killed driver's Ray instance that outlived it (by pid)."""
    import psutil  # Ray's bundled copy (ray_processes imported ray)

    time.sleep(3)  # GCS and raylet exit on their own when their driver dies; agents may not
    n = 0
    for p in procs:
        try:
            if p.is_running():
                p.kill()
                n += 1
        except psutil.Error:  # gone meanwhile
            pass
    return n


def report(name: str, out: Path, planned: int, ref: list | None) -> None:
    r = rows(out)
    ids = [i for i, _ in r]
    failed = sum(s == "failed" for _, s in r)
    same = "n/a" if ref is None else ("yes" if points(out) == ref else "NO")
    print(f"{name:<24} {len(r):>6} {len(set(ids)):>9} {planned:>8} {failed:>7}   {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", nargs="?", default="smoke")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="runs/fault_ray")
    ap.add_argument("--kill-after", type=int, default=4, help="kill the driver once this many trials are stored")
    a = ap.parse_args()
    root = Path(a.out)
    shutil.rmtree(root, ignore_errors=True)

    # 1. uninterrupted
    t0 = time.time()
    finish(cli(a.study, root / "reference", a.workers))
    ref = points(root / "reference")
    planned = len(rows(root / "reference"))
    print(f"uninterrupted run: {planned} trials in {time.time() - t0:.0f} s")

    # 2. SIGKILL a worker while it trains a group: Ray re-runs the group on another worker
    p = cli(a.study, root / "worker_kill", a.workers)
    killed = None
    while p.poll() is None and killed is None:
        pids = running_group_pids(p.pid)
        if pids and rows(root / "worker_kill"):  # a group is training, and one has already finished
            os.kill(pids[0], signal.SIGKILL)
            killed = pids[0]
        time.sleep(0.05)
    finish(p)
    print(
        f"worker kill: SIGKILLed ray::scalinglab_group pid {killed}"
        if killed
        else "worker kill: the study finished before a worker could be killed (use a larger study)"
    )

    # 3. kill -9 the driver mid-study, then rerun the same command
    out = root / "driver_kill"
    p = cli(a.study, out, a.workers)
    while p.poll() is None and len(rows(out)) < a.kill_after:
        time.sleep(0.05)
    if p.poll() is not None:
        sys.exit("driver kill: the study finished before the driver could be killed (use a larger study)")
    procs = ray_processes(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    n_before = len(rows(out))
    left = kill_leftovers(procs)
    print(f"driver kill: kill -9 at {n_before} stored trials; {left} leftover Ray processes killed by pid")
    finish(cli(a.study, out, a.workers))

    print(f"\n{'run':<24} {'stored':>6} {'distinct':>9} {'planned':>8} {'failed':>7}   points = uninterrupted")
    report("uninterrupted", root / "reference", planned, None)
    report("worker killed", root / "worker_kill", planned, ref)
    report("driver killed + rerun", out, planned, ref)


if __name__ == "__main__":
    main()
