"""Process-pool lifecycle (issue 21, item 5): workers die with scalinglab, and a worker killed alone
costs only its own trials (recorded as failed), not the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _study(tmp_path, epochs=200) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY.format(epochs=epochs).replace("patience = 4", "patience = 1000"))
    return p


@pytest.mark.slow
def test_kill_9_of_scalinglab_leaves_no_worker(tmp_path):
    study = _study(tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scalinglab.cli.main",
            "run",
            str(study),
            "--workers",
            "2",
            "--no-batch",
            "--no-progress",
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # this checkout, not an installed one
    deadline = time.time() + 60
    kids = []
    while time.time() < deadline and len(kids) < 3:  # 2 workers + the resource tracker
        time.sleep(0.5)
        kids = _children(proc.pid)
    assert len(kids) >= 2, kids
    time.sleep(1.0)  # workers past their initializer, training
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(5)
    survivors = [k for k in kids if _alive(k)]
    for k in survivors:  # never leave them to the rest of the suite
        os.kill(k, signal.SIGKILL)
    assert survivors == []


@pytest.mark.slow
def test_worker_killed_alone_fails_its_trials_and_the_run_goes_on(tmp_path):
    from scalinglab.backends.local import LOST, ProcessPoolBackend
    from scalinglab.config import parse_study
    from scalinglab.search import make_search
    from scalinglab.train.trial import trial_id

    study = parse_study(_study(tmp_path, epochs=60).read_text(), "tiny.toml")
    specs = [s for s, _ in make_search(study).next_trials({})][:8]
    be = ProcessPoolBackend(2, batched=False)
    got, killed = {}, None
    for spec, res in be.map(specs, "cpu"):
        got[trial_id(spec)] = res
        if killed is None:
            workers = [
                k
                for k in _children(os.getpid())
                if b"multiprocessing" in Path(f"/proc/{k}/cmdline").read_bytes()
                and b"resource_tracker" not in Path(f"/proc/{k}/cmdline").read_bytes()
            ]
            assert workers
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
    assert set(got) == {trial_id(s) for s in specs}  # every trial has a result, none lost
    failed = [r for r in got.values() if r["status"] == "failed"]
    assert failed and all(r["error"] == LOST for r in failed)
    assert len(failed) <= 2  # only what the dead worker (and at worst its peer) was running
    assert sum(r["status"] == "ok" for r in got.values()) >= len(specs) - 2
