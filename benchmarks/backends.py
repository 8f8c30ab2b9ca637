"""Backends on the smoke study: trials per second and overhead per trial.

    python benchmarks/backends.py            # about 1 minute on 2 CPU cores (much more under load)
    python benchmarks/backends.py --quick    # 5 epochs per trial instead of the study's 30

Runs the smoke study's 24 trials (6 data sizes x 2 CNN widths x 2 seeds) through `backend.map` on:
  local unbatched   in-process, one run_trial per trial (torch's default threads)
  local batched     in-process, same-shape groups trained by run_group (torch's default threads)
  pool(2)           2 spawned worker processes, 1 thread each, groups
  ray(2) cold       a fresh local Ray instance (2 CPUs, started inside the timing), 1 thread per task
  ray(2) warm       the same instance, second map (what later search rounds of a study pay)
Columns: wall seconds of the map; trials/s; train s = sum over trials of the time measured inside the
trainer (a group's wall time is shared out over its trials); overhead/trial = (slots x wall - train s) /
trials: slot-seconds per trial not spent training (process start, imports, Ray start-up and scheduling,
result transfer, slots idle at the end). The data set is generated and cached before timing. The cores
are shared with other work: expect +-20 % between runs.
"""

from __future__ import annotations

import argparse
import os
import time


def smoke_specs(epochs: int | None) -> list[dict]:
    from scalinglab.config import load_study
    from scalinglab.search import plan_grid

    study, _ = load_study("smoke")
    specs = [s for s, _ in plan_grid(study)]
    if epochs:
        specs = [{**s, "train": {**s["train"], "max_epochs": epochs}} for s in specs]
    return specs


def timed(backend, specs) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    results = [r for _, r in backend.map(specs, "cpu")]
    wall = time.perf_counter() - t0
    assert len(results) == len(specs) and all(r["status"] == "ok" for r in results), results[:1]
    return wall, sum(r["wall_time"] for r in results), len(results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 epochs per trial")
    a = ap.parse_args()
    import torch

    from scalinglab.backends import make_backend
    from scalinglab.data.registry import load
    from scalinglab.train.trial import subset

    specs = smoke_specs(5 if a.quick else None)
    load(specs[0]["data"]["name"], specs[0]["data"]["options"])  # generate + cache outside the timings
    subset(specs[0]["data"], specs[0]["data_size"])

    rows = []
    for name, make, slots in [
        ("local unbatched", lambda: make_backend("local", batched=False), 1),
        ("local batched", lambda: make_backend("local", batched=True), 1),
        ("pool(2)", lambda: make_backend("pool", 2, batched=True), 2),
    ]:
        rows.append((name, slots, *timed(make(), specs)))
    from scalinglab.backends.ray_backend import RayBackend

    t0 = time.perf_counter()
    be = RayBackend(workers=2)  # starts the local Ray instance
    start = time.perf_counter() - t0
    try:
        wall, train, n = timed(be, specs)
        rows.append(("ray(2) cold", 2, start + wall, train, n))  # includes starting Ray
        rows.append(("ray(2) warm", 2, *timed(be, specs)))
    finally:
        be.close()

    print(
        f"smoke study, {len(specs)} trials, {specs[0]['train']['max_epochs']} max epochs; "
        f"{os.cpu_count()} CPUs; torch {torch.__version__}, {torch.get_num_threads()} threads in-process"
    )
    print(f"{'backend':<16} {'wall s':>7} {'trials/s':>9} {'train s':>8} {'overhead/trial':>15}")
    for name, slots, wall, train, n in rows:
        print(f"{name:<16} {wall:>7.1f} {n / wall:>9.2f} {train:>8.1f} {(slots * wall - train) / n:>13.2f} s")


if __name__ == "__main__":
    main()
