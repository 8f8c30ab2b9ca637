"""Run a study: plan trials, skip finished ones, schedule the rest, commit each result, summarise.

Bad input is found before anything is written: `run_study` is only called with a validated study,
and the output folder is created only once the backend and device are known to be usable.
"""

from __future__ import annotations

import contextlib
import platform
import sys
import time
from pathlib import Path

from scalinglab.analysis.backtest import ledger_entries
from scalinglab.analysis.summary import summarize, write_fits, write_summary
from scalinglab.backends import make_backend
from scalinglab.config import Study
from scalinglab.search import make_search
from scalinglab.store import Store
from scalinglab.store.claims import Claims
from scalinglab.train.packing import MAX_GROUP
from scalinglab.train.runners import plan_units
from scalinglab.train.trial import resolve_device, trial_id

POLL_S = 0.5  # how often a run whose remaining trials are all claimed by others looks for their results


def machine_info(device: str) -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": device,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    from scalinglab import __version__

    info["scalinglab"] = __version__
    return info


def run_study(
    study: Study,
    out: Path,
    *,
    source: str = "",
    backend: str = "local",
    workers: int = 1,
    device: str | None = None,
    progress=None,
    form: str = "auto",
    log=None,
    backend_options: dict | None = None,
    retry_failed: bool = False,
    batched: bool = True,
    threads: int | None = None,
    on_open=None,
) -> dict:
    """Run (or resume) `study` into folder `out`; returns the summary dict.

    progress: an object with `start(total, done, todo)`, `advance(spec, result)`, `stop()` (or None).
    log: called with one-line messages (default: stderr).
    backend_options: passed to `make_backend` (ray: address, num_cpus, num_gpus); for the ray backend
    they override the study's [resources].
    on_open: called once the store is open (the CLI prints its header then, so a store that cannot be
    opened is one line and nothing else).
    retry_failed: run again the stored trials whose status is "failed" (an exception or a lost worker,
    not a diverged model); each new result replaces the failed row when it is committed, so a kill
    during the retry loses nothing.
    batched: train same-shape built-in trials as stacked groups (False: one at a time, `--no-batch`).
    threads: torch threads of this process for the run (in-process trials) and of each pool worker.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    device = resolve_device(device or study.train.device)
    if backend == "ray":
        backend_options = {**study.resources.options(), **(backend_options or {})}
    if isinstance(backend, str):
        opts = {**(backend_options or {}), "batched": batched}
        if backend != "ray":
            opts["threads"] = threads
        be = make_backend(backend, workers, **opts)
    else:
        be = backend
    with _torch_threads(threads):  # in-process trials; pool workers get their own
        out = Path(out)
        store = Store(out)
        if on_open:
            on_open()
        try:  # the store is closed however the run ends (a full disk, an interrupt)
            t0 = time.time()
            store.begin_study(study.name, study.to_dict(), source, info=machine_info(device))
            search = make_search(study)
            results = store.result_index()
            retrying = set()
            if retry_failed:
                retrying = {k for k, r in results.items() if r["status"] == "failed"}
                for k in retrying:
                    del results[k]
                log(f"retrying {len(retrying)} failed trials")
            already = len(results)
            if already:
                log(f"resuming: {already} trials already in the store, {search.estimate_total()} planned")
            started, current, units = False, None, {}
            try:
                with Claims(store, study.name) as claims:
                    # Each round asks the search what to run next given everything stored (resumable by
                    # design), claims a share of it (other runs on this store take the rest), trains it.
                    while todo := [(s, t) for s, t in search.next_trials(results) if trial_id(s) not in results]:
                        planned = {trial_id(s) for s, _ in search.planned(results)}
                        if planned != current:  # readers of a run in progress or killed see this configuration's
                            store.set_current(study.name, planned)
                            current = planned
                        if progress and not started:
                            progress.start(max(search.estimate_total(), already + len(todo)), already, todo)
                            started = True
                        elif progress:
                            progress.extend(len(todo))
                        by_id = {trial_id(s): (s, t) for s, t in todo}
                        pick = _share(be, device, batched, by_id, units)
                        mine = claims.take(list(by_id), pick, retry_failed=retry_failed)
                        if not mine:  # all of it is being trained by other runs: wait for their results
                            time.sleep(POLL_S)
                        for s, _ in (by_id[i] for i in mine):  # a user trainer's work folders (not in the id)
                            if "env" in s:
                                s["env"]["trials_dir"] = str(out.resolve() / "trials")
                        for spec, result in be.map([by_id[i][0] for i in mine], device):
                            store.add(study.name, spec, result, by_id[result["id"]][1])  # committed before the next
                            claims.release(result["id"])
                            results[result["id"]] = result
                            if progress:
                                progress.advance(spec, result)
                        # Alone, with work of its own, nobody else adds results: no need to read them all.
                        if claims.last_live > 1 or not mine:
                            theirs = _stored_by_others(store, results, retrying)
                            if progress and theirs and hasattr(progress, "shared"):
                                progress.shared(theirs)
            finally:
                if progress and started:
                    progress.stop()
            store.set_current(study.name, {trial_id(s) for s, _ in search.planned(results)})
            prev = next((s["info"] for s in store.studies() if s["name"] == study.name), {})
            wall = prev.get("wall_time_total", 0.0) + (time.time() - t0)
            store.update_study_info(study.name, wall_time_total=wall, last_run_wall_time=time.time() - t0)
            fits = {}
            summary = summarize(
                store,
                study.name,
                study.to_dict(),
                form=form,
                extra={"wall_time_s": round(wall, 1), "device": device},
                fits=fits,
            )
            if summary.get("learning_curve"):  # the ledger: a later, larger run scores these forecasts
                store.add_forecasts(study.name, ledger_entries(summary["learning_curve"], summary["points"]))
            write_summary(out, summary)
            write_fits(out, fits)  # the arrays behind the summary's laws: the report reads them, no refit
        finally:
            store.close()
        return summary


def _share(be, device: str, batched: bool, by_id: dict, cache: dict):
    """How much of the free work this run claims at once (see store/claims.py): in-process, one unit
    (a group of same-shape trials) at a time, so a run that joins later finds work left; a pool or Ray
    takes a unit per worker when others are running, and everything when alone (a new pool per claim
    would cost a spawn each), as does a backend of one's own. Shared with n runs, units are cut to 1/n
    of the round's trials at most. The units of a round are planned once (`cache`): planning builds
    a model per group to size it."""
    from scalinglab.backends.local import InProcessBackend

    in_process = isinstance(be, InProcessBackend)
    parallel = 1 if in_process else max(1, getattr(be, "workers", 1) or 1)

    def pick(free: list[str], n_live: int) -> list[str]:
        if n_live <= 1 and not in_process:
            return free
        cap = max(1, min(getattr(be, "max_group", MAX_GROUP), -(-len(by_id) // n_live)))
        key = (frozenset(by_id), cap)
        if key not in cache:
            cache.clear()
            cache[key] = plan_units([s for s, _ in by_id.values()], device, getattr(be, "batched", batched), cap)
        avail = set(free)
        units = [[i for i in (trial_id(s) for s in unit) if i in avail] for unit in cache[key]]
        return [i for unit in [u for u in units if u][:parallel] for i in unit]

    return pick


def _stored_by_others(store: Store, results: dict, retrying: set) -> int:
    """Add to `results` the trials other runs on this store have finished since; returns how many. A
    failed trial this run is retrying stays out until this run has retried it."""
    n = 0
    for k, r in store.result_index().items():
        if k not in results and not (r["status"] == "failed" and k in retrying):
            results[k] = r
            n += 1
    return n


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """This process's torch threads set to `n` for the block (None: left as they are)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
