"""The Ray backend (local Ray instance): same points as the local backends; a killed worker or driver
loses no trial and duplicates none.

One Ray instance serves the module (2 CPUs); the CLI driver of the kill -9 test joins it by address, so a
killed driver leaves no Ray processes of its own behind. Teardown kills whatever the instance left.
"""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

ray = pytest.importorskip("ray")
import psutil  # bundled with Ray
from conftest import TINY

from scalinglab.backends.ray_backend import RayBackend, ray_processes, running_group_pids
from scalinglab.config import load_study
from scalinglab.runner import run_study
from scalinglab.search import plan_grid
from scalinglab.train import trial_id

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance for the module; yields its address for drivers in other processes."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    started = ray_processes(os.getpid())
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        time.sleep(0.5)
        for p in started:  # no stray raylet, agent or worker outlives the tests
            with contextlib.suppress(psutil.Error):
                p.kill()


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("ray") / "tiny.toml"
    p.write_text(TINY.format(epochs=15))  # 20 trials in 4 groups (2, 2, 8, 8)
    return p


def _points(summary):
    # seed_errors come in commit order, which differs between backends: compare them as sets
    return [{**p, "seed_errors": sorted(p["seed_errors"])} for p in summary["points"]]


def _rows(out):
    with sqlite3.connect(out / "results.sqlite") as c:
        return c.execute("SELECT id, status, min_dev_error, error, finished_at FROM trials").fetchall()


@pytest.fixture(scope="module")
def reference(study_file, tmp_path_factory):
    """The uninterrupted in-process run, one torch thread (as every Ray task and pool worker here)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        study, _ = load_study(str(study_file))
        out = tmp_path_factory.mktemp("local")
        summary = run_study(study, out, backend="local", log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    return {
        "summary": summary,
        "rows": {r[0]: r[2] for r in _rows(out)},
        "planned": {trial_id(s) for s, _ in plan_grid(study)},
    }


def test_local_pool_and_ray_give_identical_points(study_file, reference, ray_address, tmp_path):
    study, _ = load_study(str(study_file))
    pool = run_study(study, tmp_path / "pool", backend="pool", workers=2, log=lambda m: None)
    on_ray = run_study(study, tmp_path / "ray", backend=RayBackend(workers=2), log=lambda m: None)
    ref = _points(reference["summary"])
    assert len(ref) == 5 and _points(pool) == ref and _points(on_ray) == ref  # exactly equal, not close
    # and every trial, not only the best ones
    assert {r[0]: r[2] for r in _rows(tmp_path / "ray")} == reference["rows"]


class _KillAWorker:
    """A progress object that SIGKILLs one Ray worker running a group when the first result arrives."""

    def __init__(self):
        self.killed = []

    def start(self, total, done, todo):
        pass

    def extend(self, n):
        pass

    def stop(self):
        pass

    def advance(self, spec, result):
        deadline = time.time() + 20
        while not self.killed and time.time() < deadline:
            pids = running_group_pids(os.getpid())
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                self.killed.append(pids[0])
            time.sleep(0.02)


@pytest.mark.parametrize("max_retries", [2, 0])
def test_killed_worker_every_trial_exactly_once(study_file, reference, ray_address, tmp_path, max_retries):
    study, _ = load_study(str(study_file))
    kill = _KillAWorker()
    summary = run_study(
        study, tmp_path, backend=RayBackend(workers=2, max_retries=max_retries), progress=kill, log=lambda m: None
    )
    assert kill.killed, "no worker was running a group to kill"
    rows = _rows(tmp_path)
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)) and set(ids) == reference["planned"]  # none lost, none repeated
    failed = [r for r in rows if r[1] == "failed"]
    if max_retries:  # the group was re-run on another worker: the same results as without the fault
        assert not failed and _points(summary) == _points(reference["summary"])
        assert {r[0]: r[2] for r in rows} == reference["rows"]
    else:  # no retries left: its trials are stored as failed, with the reason; the study still completes
        assert 2 <= len(failed) <= 8 and summary["trials"]["total"] == len(reference["planned"])
        assert all("lost after 0 retries" in r[3] and "WorkerCrashedError" in r[3] for r in failed)


def _cli(study, out, address):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scalinglab.cli.main",
            "run",
            str(study),
            "--out",
            str(out),
            "--backend",
            "ray",
            "--address",
            address,
            "--workers",
            "2",
            "--no-progress",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_driver_kill_9_then_resume(study_file, reference, ray_address, tmp_path):
    out = tmp_path / "run"
    db = out / "results.sqlite"
    p = _cli(study_file, out, ray_address)
    err = []
    threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True).start()  # no pipe stall
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:
        if db.exists():
            try:
                if len(_rows(out)) >= 4:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    assert p.poll() is None, "study finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    before = {r[0]: r[4] for r in _rows(out)}
    assert 4 <= len(before) < len(reference["planned"])

    r = _cli(study_file, out, ray_address)
    _, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    assert f"resuming: {len(before)} trials already in the store" in err
    rows = _rows(out)
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)) and set(ids) == reference["planned"]  # none lost, none repeated
    assert all({row[0]: row[4] for row in rows}[i] == t for i, t in before.items())  # not redone
    summary = json.loads((out / "summary.json").read_text())
    assert _points(summary) == _points(reference["summary"])


def test_unreachable_address_is_one_line_and_writes_nothing(study_file, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scalinglab.cli.main",
            "run",
            str(study_file),
            "--out",
            str(tmp_path / "out"),
            "--backend",
            "ray",
            "--address",
            "127.0.0.1:1",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "--address: given '127.0.0.1:1'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_user_function_and_command_trainers_on_ray(ray_address, tmp_path):
    # the user's own trainers on Ray: the function's module is imported in the Ray worker from the
    # study's folder; the command runs there; the points equal the in-process run's exactly
    from test_user_trainer import command_study, function_study

    for make in (function_study, command_study):
        d = tmp_path / make.__name__
        d.mkdir()
        study, _ = load_study(str(make(d)))
        local = run_study(study, d / "local", backend="local", log=lambda m: None)
        on_ray = run_study(study, d / "ray", backend=RayBackend(workers=2), log=lambda m: None)
        assert on_ray["trials"]["ok"] == on_ray["trials"]["total"] == local["trials"]["total"] > 0
        assert _points(on_ray) == _points(local)


def test_sklearn_example_on_ray(ray_address, tmp_path):
    from pathlib import Path

    ex = Path(__file__).resolve().parent.parent / "examples" / "sklearn_function" / "study.toml"
    study, _ = load_study(str(ex))
    s = run_study(study, tmp_path / "ray", backend=RayBackend(workers=2), log=lambda m: None)
    assert s["trials"]["ok"] == s["trials"]["total"] == 36 and s["learning_curve"]["exponent"] < -0.3
