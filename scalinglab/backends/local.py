"""In-process and process-pool backends.

Both only schedule units of work from `train/runners.py`: by default groups of one family and shape
(sized to fit memory), each trained as one stacked model (scalinglab/train/batched.py), and single
specs for everything else (user trainers, byo factories); a unit's results are yielded as soon as it
finishes. `batched=False` runs every spec alone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from scalinglab.errors import UserError
from scalinglab.train.packing import MAX_GROUP
from scalinglab.train.result import failed_result
from scalinglab.train.runners import plan_units, run_unit
from scalinglab.train.trial import trial_id


class InProcessBackend:
    name = "local"

    def __init__(self, batched: bool = True, max_group: int = MAX_GROUP):
        self.batched, self.max_group = batched, max_group

    def map(self, specs: Iterable[dict], device: str = "cpu") -> Iterator[tuple[dict, dict]]:
        for unit in plan_units(list(specs), device, self.batched, self.max_group):
            yield from zip(unit, run_unit(unit, device))


def _init_worker(threads: int, started=None, parent: int | None = None):
    global _STARTED
    if sys.platform.startswith("linux"):  # the kernel kills this worker when scalinglab dies (kill -9 too)
        from scalinglab.train.user import die_with_parent

        die_with_parent()
        if parent is not None and os.getppid() != parent:  # it died while this one was starting up
            os._exit(1)
    import torch

    torch.set_num_threads(threads)  # N workers x 1 thread beats N workers fighting over all cores
    _STARTED = started


_STARTED = None  # in a worker: the queue on which it says which unit it starts (see ProcessPoolBackend)


def _run_tracked(key: int, unit: list[dict], device: str) -> list[dict]:
    if _STARTED is not None:
        _STARTED.put((key, os.getpid()))
    return run_unit(unit, device)


LOST = "lost worker: its process died while training this unit (killed, or out of memory); --retry-failed runs it again"


class ProcessPoolBackend:
    """Trials in N worker processes (spawned: forking a process that has started torch threads can hang).

    Workers die with scalinglab (PR_SET_PDEATHSIG on Linux: no orphans after a kill -9). A worker that
    dies alone breaks the pool: the units it was running are recorded as failed (LOST), the others in
    flight or queued go to a fresh pool, and the run goes on."""

    name = "pool"

    def __init__(self, workers: int, batched: bool = True, max_group: int = MAX_GROUP, threads: int | None = None):
        self.workers, self.batched, self.max_group = workers, batched, max_group
        self.threads = threads  # torch threads per worker; None: the cores shared out

    def map(self, specs: Iterable[dict], device: str = "cpu") -> Iterator[tuple[dict, dict]]:
        specs = list(specs)
        # With fewer groups than workers, smaller groups keep every worker busy.
        units = plan_units(specs, device, self.batched, max(1, min(self.max_group, -(-len(specs) // self.workers))))
        todo = deque(enumerate(units))
        while todo:
            lost = yield from self._pool(todo, device)
            for unit in lost:
                yield from ((s, failed_result(trial_id(s), LOST, device)) for s in unit)

    def _pool(self, todo: deque, device: str):
        """Run units from `todo` in one pool until it is empty or the pool breaks; returns the units
        lost with a dead worker (the rest of the broken pool's units are put back on `todo`)."""
        ctx = mp.get_context("spawn")
        started = ctx.SimpleQueue()
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        ex = ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(threads, started, os.getpid())
        )
        procs = getattr(ex, "_processes", None)  # pid -> Process (CPython), to see which one died
        pending, broken = {}, False
        try:
            # Keep at most 2 units per worker queued so an interrupt loses little and order stays near plan order.
            while todo and len(pending) < 2 * self.workers:
                key, unit = todo.popleft()
                pending[ex.submit(_run_tracked, key, unit, device)] = (key, unit)
            while pending and not broken:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    try:
                        results = f.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    key, unit = pending.pop(f)
                    yield from zip(unit, results)
                    if todo and not broken:
                        k, u = todo.popleft()
                        pending[ex.submit(_run_tracked, k, u, device)] = (k, u)
        finally:
            ex.shutdown(wait=True, cancel_futures=True)
        if not broken:
            return []
        for f, (_, u) in list(pending.items()):  # finished before the break: their results stand
            if f.done() and not f.cancelled() and f.exception() is None:
                del pending[f]
                yield from zip(u, f.result())
        where = {}
        while not started.empty():
            k, pid = started.get()
            where[k] = pid
        # The worker that died first was not terminated by the executor (that is SIGTERM for the rest).
        dead = {pid for pid, p in (procs or {}).items() if p.exitcode not in (None, 0, -signal.SIGTERM)}
        running = [(k, u) for k, u in pending.values() if k in where]
        # unknown which: all that ran; none ran (workers that cannot start): all, or this would loop
        lost = [(k, u) for k, u in running if where[k] in dead] or running or list(pending.values())
        lost_keys = {k for k, _ in lost}
        todo.extendleft(reversed([(k, u) for k, u in pending.values() if k not in lost_keys]))
        return [u for _, u in lost]


def make_backend(
    name: str = "local",
    workers: int = 1,
    *,
    batched: bool = True,
    max_group: int = MAX_GROUP,
    threads: int | None = None,
    **kw,
):
    """batched: train same-shape trials in groups (run_group); False: one run_trial per spec (for
    before/after timings: `run --no-batch`). threads: torch threads per pool worker (default: the cores
    shared out; in-process, the caller's setting; on Ray, each task's num_cpus)."""
    if name == "local":
        return (
            ProcessPoolBackend(workers, batched, max_group, threads)
            if workers > 1
            else InProcessBackend(batched, max_group)
        )
    if name == "pool":
        return ProcessPoolBackend(max(1, workers), batched, max_group, threads)
    if name == "ray":
        try:
            from scalinglab.backends.ray_backend import RayBackend
        except ImportError as e:
            raise UserError(
                f"--backend: given 'ray' but Ray is not importable ({e}); "
                "allowed: install it with pip install 'scalinglab[ray]'"
            ) from None
        return RayBackend(workers=workers, batched=batched, max_group=max_group, **kw)
    raise UserError(f"--backend: given {name!r}; allowed: local, pool, ray")
