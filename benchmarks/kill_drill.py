"""Kill and concurrency drills on the smoke study: nothing lost, nothing twice, no process left.

    python benchmarks/kill_drill.py [--kills 6] [--concurrent 4]    # a few minutes on 2 cores

Kill drill: per mode (in-process; --workers 2), `scalinglab run smoke` into one folder is killed with
SIGKILL at a random moment (0.5-8 s after start), `--kills` times, then run to the end. After each kill:
no process of the killed run may be alive 5 s later (pool workers die with their parent). At the end:
rows in the store = distinct trial ids = the study's trials, all ok.
Concurrency drill: `--concurrent` sets of 2-4 runs started together on a fresh folder; each set must end
with rows = distinct ids = the study's trials and every run exiting 0.
Prints one line per drill with its counts (this is a drill, not a timing).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CMD = [sys.executable, "-m", "scalinglab.cli.main", "run", "smoke", "--no-progress"]


def start(out: Path, extra=()) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [*CMD, "--out", str(out), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )


def counts(out: Path) -> tuple[int, int, int]:
    with sqlite3.connect(out / "results.sqlite") as c:
        return c.execute("SELECT count(*), count(DISTINCT id), sum(status = 'ok') FROM trials").fetchone()


def descendants(pid: int) -> list[int]:
    """Processes whose parent chain leads to `pid` or that were started by it (by their environment
    marker: pool workers are reparented once their parent is gone)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                env = (p / "environ").read_bytes()
            except OSError:
                continue
            if f"SCALINGLAB_DRILL={pid}".encode() in env:
                out.append(int(p.name))
    return out


def kill_drill(mode: str, extra: list[str], kills: int, total: int, rng: random.Random) -> str:
    survivors = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        for _ in range(kills):
            marker = str(rng.randrange(1 << 30))
            os.environ["SCALINGLAB_DRILL"] = marker
            p = start(out, extra)
            time.sleep(rng.uniform(0.5, 8.0))
            p.send_signal(signal.SIGKILL)
            p.wait()
            time.sleep(5)
            survivors += len(descendants(int(marker)))
        os.environ.pop("SCALINGLAB_DRILL", None)
        p = start(out, extra)
        rc = p.wait()
        rows, distinct, ok = counts(out)
    verdict = "OK" if rc == 0 and rows == distinct == ok == total and survivors == 0 else "FAIL"
    return (
        f"kill drill {mode:<11} {kills} kills: final rc {rc}, rows {rows}, distinct {distinct}, ok {ok} "
        f"(study: {total}), processes alive 5 s after a kill: {survivors}  {verdict}"
    )


def concurrency_drill(sets: int, total: int, rng: random.Random) -> list[str]:
    lines = []
    for i in range(sets):
        n = rng.choice([2, 3, 4])
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            t0 = time.perf_counter()
            procs = [start(out) for _ in range(n)]
            rcs = [p.wait() for p in procs]
            wall = time.perf_counter() - t0
            rows, distinct, ok = counts(out)
        verdict = "OK" if set(rcs) == {0} and rows == distinct == ok == total else "FAIL"
        lines.append(
            f"concurrency set {i + 1}: {n} runs, exit codes {rcs}, rows {rows}, distinct {distinct}, ok {ok}, "
            f"{wall:.0f} s  {verdict}"
        )
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--concurrent", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    from scalinglab.config import load_study
    from scalinglab.search import make_search

    total = make_search(load_study("smoke")[0]).estimate_total()
    print(kill_drill("in-process", [], args.kills, total, rng), flush=True)
    print(kill_drill("--workers 2", ["--workers", "2"], args.kills, total, rng), flush=True)
    for line in concurrency_drill(args.concurrent, total, rng):
        print(line, flush=True)


if __name__ == "__main__":
    main()
