"""In-process and process-pool backends.

Both only schedule units of work from `train/runners.py`: by default groups of one family and shape
(sized to fit memory), each trained as one stacked model (scalinglab/train/batched.py), and single
specs for everything else (user trainers, byo factories); a unit's results are yielded as soon as it
finishes. `batched=False` runs every spec alone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterable, Iterator

from scalinglab.errors import UserError
from scalinglab.train.packing import MAX_GROUP
from scalinglab.train.runners import plan_units, run_unit


class InProcessBackend:
    name = "local"

    def __init__(self, batched: bool = True, max_group: int = MAX_GROUP):
        self.batched, self.max_group = batched, max_group

    def map(self, specs: Iterable[dict], device: str = "cpu") -> Iterator[tuple[dict, dict]]:
        for unit in plan_units(list(specs), device, self.batched, self.max_group):
            yield from zip(unit, run_unit(unit, device))


def _init_worker(threads: int):
    import torch

    torch.set_num_threads(threads)  # N workers x 1 thread beats N workers fighting over all cores


class ProcessPoolBackend:
    """Trials in N worker processes (spawned: forking a process that has started torch threads can hang)."""

    name = "pool"

    def __init__(self, workers: int, batched: bool = True, max_group: int = MAX_GROUP, threads: int | None = None):
        self.workers, self.batched, self.max_group = workers, batched, max_group
        self.threads = threads  # torch threads per worker; None: the cores shared out

    def map(self, specs: Iterable[dict], device: str = "cpu") -> Iterator[tuple[dict, dict]]:
        specs = list(specs)
        # With fewer groups than workers, smaller groups keep every worker busy.
        units = plan_units(specs, device, self.batched,
                       max(1, min(self.max_group, -(-len(specs) // self.workers))))
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as ex:
            # Keep at most 2 units per worker queued so an interrupt loses little and order stays near plan order.
            it, pending = iter(units), {}
            for unit in it:
                pending[ex.submit(run_unit, unit, device)] = unit
                if len(pending) >= 2 * self.workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    unit = pending.pop(f)
                    yield from zip(unit, f.result())
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[ex.submit(run_unit, nxt, device)] = nxt


def make_backend(name: str = "local", workers: int = 1, *, batched: bool = True,
                 max_group: int = MAX_GROUP, threads: int | None = None, **kw):
    """batched: train same-shape trials in groups (run_group); False: one run_trial per spec (for
    before/after timings: `run --no-batch`). threads: torch threads per pool worker (default: the cores
    shared out; in-process, the caller's setting; on Ray, each task's num_cpus)."""
    if name == "local":
        return (ProcessPoolBackend(workers, batched, max_group, threads) if workers > 1
                else InProcessBackend(batched, max_group))
    if name == "pool":
        return ProcessPoolBackend(max(1, workers), batched, max_group, threads)
    if name == "ray":
        try:
            from scalinglab.backends.ray_backend import RayBackend
        except ImportError as e:
            raise UserError(f"--backend: given 'ray' but Ray is not importable ({e}); "
                            "allowed: install it with pip install 'scalinglab[ray]'") from None
        return RayBackend(workers=workers, batched=batched, max_group=max_group, **kw)
    raise UserError(f"--backend: given {name!r}; allowed: local, pool, ray")
