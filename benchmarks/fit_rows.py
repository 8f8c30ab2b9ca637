"""`scalinglab fit` on large tables: wall time and peak memory for 1e4, 1e5 and 1e6 rows.

    python benchmarks/fit_rows.py [--rows 1e4,1e5,1e6] [--sizes 20]

Each table has `--sizes` distinct data sizes (x, 100..1e6) with noisy errors y = 0.05 + 2 x^-0.35
(lognormal noise, 5%), as many rows per size as the total allows: seeds or repeated runs. Each run is
`python -m scalinglab.cli.main fit FILE --x n --y err` in a fresh process (form auto, 1000 bootstrap
refits); peak memory is that process's maximum resident set (getrusage of the child). Goal (issue 21):
1M rows in < 10 s and < 1 GB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def table(n_rows: int, n_sizes: int, path: Path) -> None:
    rng = np.random.default_rng(0)
    sizes = np.round(np.geomspace(100, 1e6, n_sizes)).astype(int)
    x = np.resize(sizes, n_rows)
    y = (0.05 + 2 * x**-0.35) * np.exp(rng.normal(0, 0.05, n_rows))
    with open(path, "w") as f:
        f.write("n,err\n")
        np.savetxt(f, np.column_stack([x, y]), fmt=["%d", "%.6g"], delimiter=",")


def measure(path: Path) -> tuple[float, float, int, str]:
    t = time.perf_counter()
    p = subprocess.Popen(
        [sys.executable, "-m", "scalinglab.cli.main", "fit", str(path), "--x", "n", "--y", "err"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = p.communicate()
    wall = time.perf_counter() - t
    rss_kb = _child_maxrss_kb()
    first = next((ln for ln in out.splitlines() if "exponent" in ln), err.strip()[-120:])
    return wall, rss_kb / 1024, p.returncode, first.strip()


def _child_maxrss_kb() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far (Linux: kB)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1e4,1e5,1e6")
    ap.add_argument("--sizes", type=int, default=20)
    a = ap.parse_args()
    rows = [int(float(v)) for v in a.rows.split(",")]
    print(f"{'rows':>9} {'csv MB':>7} {'wall s':>7} {'peak MB':>8} {'rc':>3}  fit")
    with tempfile.TemporaryDirectory() as d:
        for n in sorted(rows):  # ascending, so RUSAGE_CHILDREN's maximum is this run's own
            path = Path(d) / f"rows{n}.csv"
            table(n, a.sizes, path)
            wall, mb, rc, first = measure(path)
            print(f"{n:>9,} {path.stat().st_size / 1e6:>7.1f} {wall:>7.2f} {mb:>8.0f} {rc:>3}  {first}", flush=True)


if __name__ == "__main__":
    main()
