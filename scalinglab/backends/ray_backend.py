"""Ray backend: groups of trials as Ray tasks, on a local Ray instance or an existing cluster.

- The unit of work is a group from `pack` (the batched trainer's unit), never one tiny model: a Ray task
  costs milliseconds of scheduling and transfer, a small model a few hundred. `run_unit` runs it.
- Each task asks for `num_cpus` (torch uses that many threads) and `num_gpus` (fractional allowed: 0.25
  packs four groups on one GPU). With num_gpus > 0 the group trains on the worker's GPU whatever the
  driver's device is (the head of a cluster often has none).
- Results come back to the driver, which alone writes the store (runner.py). Data sets are not shipped:
  a worker regenerates a data set from its spec and caches it on its own disk (data/registry.py), as
  cheap as reading it from the object store for the data sets we ship, and it needs no driver memory.
- A worker that dies: Ray re-runs its group (`max_retries` times); the others go on. A group that
  still fails comes back as "failed" results with the reason, so the study completes.
- At most 2 groups per slot are in flight: a killed driver loses at most those (rerun resumes).

Ray is imported only when this backend runs (`pip install 'scalinglab[ray]'`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from scalinglab.errors import UserError
from scalinglab.train.packing import MAX_GROUP
from scalinglab.train.result import failed_result
from scalinglab.train.runners import plan_units, run_unit
from scalinglab.train.trial import trial_id

MAX_RETRIES = 2  # re-runs of a group whose worker died (Ray's own default is 3)
TASK_NAME = "scalinglab_group"  # a worker running a group shows as "ray::scalinglab_group" in ps


def scalinglab_group(specs: list[dict], device: str, threads: int) -> list[dict]:
    """The Ray task: one group on one worker (named so `ps` shows what a worker is doing)."""
    import torch

    torch.set_num_threads(threads)  # = the task's num_cpus: tasks sharing a node do not oversubscribe it
    return run_unit(specs, device)


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """HOST:PORT must answer within `timeout` s: Ray itself retries a wrong address for minutes."""
    if address == "auto" or "://" in address:
        return
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        raise UserError(
            f"--address: given {address!r}; allowed: the HOST:PORT of a running Ray head, as "
            f"printed by `ray start --head` (default port 6379) (no answer: {e})"
        ) from None


class RayBackend:
    """Groups of trials as Ray tasks.

    workers: groups running at once; on a local instance also its CPU count (workers x num_cpus). With
        an address, 1 (the CLI default) means as many as the cluster's resources allow.
    address: None starts a local Ray instance; "HOST:6379" (or "auto") joins a running cluster.
    num_cpus, num_gpus: resources per task (per group); num_gpus None: 1 when the device is cuda, else 0.
    max_retries: re-runs of a group whose worker process died.
    """

    name = "ray"

    def __init__(
        self,
        workers: int = 1,
        *,
        address: str | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        max_retries: int = MAX_RETRIES,
        batched: bool = True,
        max_group: int = MAX_GROUP,
        **kw,
    ):
        if kw:
            raise UserError(
                f"ray backend: unknown option {min(kw)!r}; allowed: address, num_cpus, num_gpus, max_retries"
            )
        num_cpus = 1.0 if num_cpus is None else float(num_cpus)
        if not num_cpus > 0:
            raise UserError(f"--num-cpus: given {num_cpus:g}; allowed: a number above 0 (CPUs per group)")
        if num_gpus is not None and not num_gpus >= 0:
            raise UserError(f"--num-gpus: given {num_gpus:g}; allowed: 0 or more (fractions share a GPU)")
        if max_retries < 0:
            raise UserError(f"max_retries: given {max_retries}; allowed: 0 or more")
        self.workers, self.address = max(1, workers), address
        self.num_cpus, self.num_gpus, self.max_retries = num_cpus, num_gpus, max_retries
        self.batched, self.max_group = batched, max_group
        self._started = False  # True when this backend started the Ray instance (or connected)
        self._ray = self._connect()  # now, so a bad address fails before the runner writes anything

    # --- connection ------------------------------------------------------------------------------
    def _connect(self):
        import ray

        if ray.is_initialized():  # the caller's instance (a test, a notebook): use it, leave it up
            return ray
        # log_to_driver=False: worker output would tear through the progress bar; a failed trial
        # carries its error and traceback in the store.
        common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.address is None:
            ray.init(num_cpus=math.ceil(self.workers * self.num_cpus), **common)  # GPUs: detected
        else:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, **common)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise UserError(
                    f"--address: given {self.address!r}; allowed: the address of a running Ray "
                    f"cluster, as printed by `ray start --head` (HOST:6379) ({e})"
                ) from None
        self._started = True
        return ray

    def close(self):
        """Disconnect from (or stop) the Ray instance this backend started. Ray also does it at exit."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def _slots(self, ray, num_gpus: float) -> int:
        """Groups that can run at once: what the cluster's CPUs and GPUs allow, capped by workers."""
        res = ray.cluster_resources()
        slots = int(res.get("CPU", 0) // self.num_cpus)
        if num_gpus:
            slots = min(slots, int(res.get("GPU", 0) // num_gpus))
        if slots < 1:
            raise UserError(
                f"ray backend: a group asks for {self.num_cpus:g} CPUs and {num_gpus:g} GPUs; the "
                f"cluster has {res.get('CPU', 0):g} CPUs and {res.get('GPU', 0):g} GPUs; "
                "allowed: --num-cpus/--num-gpus within one node's resources"
            )
        return slots if self.address is not None and self.workers == 1 else min(slots, self.workers)

    # --- the map ---------------------------------------------------------------------------------
    def map(self, specs: Iterable[dict], device: str = "cpu") -> Iterator[tuple[dict, dict]]:
        specs = list(specs)
        if not specs:
            return
        num_gpus = self.num_gpus if self.num_gpus is not None else (1.0 if device.startswith("cuda") else 0.0)
        worker_device = "cuda" if num_gpus else "cpu"  # Ray hides GPUs from a task that asked for none
        ray = self._ray
        slots = self._slots(ray, num_gpus)
        # As the pool: with fewer groups than slots, smaller groups keep every slot busy.
        units = plan_units(specs, worker_device, self.batched, max(1, min(self.max_group, -(-len(specs) // slots))))
        task = ray.remote(scalinglab_group).options(
            name=TASK_NAME,
            num_cpus=self.num_cpus,
            num_gpus=num_gpus,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )  # only a dead worker is retried
        threads = max(1, round(self.num_cpus))
        it, pending = iter(units), {}

        def submit():
            unit = next(it, None)
            if unit is not None:
                pending[task.remote(unit, worker_device, threads)] = unit

        for _ in range(2 * slots):  # a bounded window: a driver kill loses at most these groups
            submit()
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    unit = pending.pop(ref)
                    try:
                        results = ray.get(ref)
                    except ray.exceptions.RayError as e:
                        results = [failed_result(trial_id(s), self._reason(ray, e, len(unit))) for s in unit]
                    submit()  # before yielding: the driver commits while the cluster keeps working
                    yield from zip(unit, results)
        finally:
            for ref in pending:  # the consumer stopped early (an error, Ctrl-C): do not leave work behind
                ray.cancel(ref, force=True)

    def _reason(self, ray, e: Exception, n: int) -> str:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        if isinstance(e, ray.exceptions.RayTaskError):  # an exception inside the task: not retried
            return f"ray: group of {n} trials raised {type(e).__name__}: {first}"
        return f"ray: group of {n} trials lost after {self.max_retries} retries ({type(e).__name__}: {first})"


# --- fault drills (tests/test_ray_backend.py, benchmarks/fault_ray.py) ------------------------------


def ray_processes(root_pid: int) -> list:
    """psutil processes below `root_pid` (a driver that started a local Ray instance: its GCS, raylet,
    agents and workers). psutil comes with Ray."""
    import ray  # noqa: F401, I001  (first: puts Ray's bundled psutil on the path)
    import psutil

    try:
        return psutil.Process(root_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def running_group_pids(root_pid: int) -> list[int]:
    """Worker processes below `root_pid` that are running a group right now (`ray::scalinglab_group`)."""
    procs = ray_processes(root_pid)  # imports ray, which puts its bundled psutil on the path
    import psutil

    out = []
    for p in procs:
        try:
            if p.cmdline()[:1] == [f"ray::{TASK_NAME}"]:
                out.append(p.pid)
        except psutil.Error:  # gone meanwhile
            pass
    return out
