"""In-process and process-pool backends."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Iterable, Iterator

from scalinglab.errors import UserError


def _trial_fn():
    from scalinglab.train import run_trial

    return run_trial


class InProcessBackend:
    name = "local"

    def map(self, specs: Iterable[dict], device: str = "cpu") -> Iterator[tuple[dict, dict]]:
        run_trial = _trial_fn()
        for spec in specs:
            yield spec, run_trial(spec, device)


def _init_worker(threads: int):
    import torch

    torch.set_num_threads(threads)  # N workers x 1 thread beats N workers fighting over all cores


def _pool_call(spec: dict, device: str) -> dict:
    return _trial_fn()(spec, device)


class ProcessPoolBackend:
    """Trials in N worker processes (spawned: forking a process that has started torch threads can hang)."""

    name = "pool"

    def __init__(self, workers: int):
        self.workers = workers

    def map(self, specs: Iterable[dict], device: str = "cpu") -> Iterator[tuple[dict, dict]]:
        specs = list(specs)
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker, initargs=(threads,)) as ex:
            # Keep at most 2 trials per worker queued so an interrupt loses little and order stays near plan order.
            it, pending = iter(specs), {}
            for spec in it:
                pending[ex.submit(_pool_call, spec, device)] = spec
                if len(pending) >= 2 * self.workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    spec = pending.pop(f)
                    yield spec, f.result()
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[ex.submit(_pool_call, nxt, device)] = nxt


def make_backend(name: str = "local", workers: int = 1, **kw):
    if name == "local":
        return ProcessPoolBackend(workers) if workers > 1 else InProcessBackend()
    if name == "pool":
        return ProcessPoolBackend(max(1, workers))
    if name == "ray":
        try:
            from scalinglab.backends.ray_backend import RayBackend
        except ImportError as e:
            raise UserError(f"--backend: given 'ray' but Ray is not importable ({e}); "
                            "allowed: install it with pip install 'scalinglab[ray]'") from None
        return RayBackend(workers=workers, **kw)
    raise UserError(f"--backend: given {name!r}; allowed: local, pool, ray")
