"""Runs sharing one store split the study (store/claims.py): claims, heartbeats, dead runs' claims."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from scalinglab.store import Store
from scalinglab.store.claims import Claims

ALL = lambda free, n_live: free  # noqa: E731 - claim everything that is free


def test_a_live_runs_claims_are_left_alone_and_freed_on_exit(tmp_path):
    ids = [f"t{i}" for i in range(6)]
    with Store(tmp_path) as s1, Store(tmp_path) as s2:
        with Claims(s1, "st") as a:
            assert a.take(ids[:4], ALL) == ids[:4]
            with Claims(s2, "st") as b:
                assert a.live_runners() == b.live_runners() == 2
                assert b.take(ids, ALL) == ids[4:]  # a's four are taken
                assert b.take(ids, ALL) == ids[4:]  # its own claims stay its own
                a.release("t0")
                assert b.take(ids, ALL) == ["t0", *ids[4:]]
        with Claims(s2, "st") as c:  # both gone: their claims with them
            assert c.take(ids, ALL) == ids
            assert c.live_runners() == 1


def test_finished_trials_are_never_claimed_failed_ones_only_to_retry(tmp_path):
    with Store(tmp_path) as s:
        spec = {"data": {}, "data_size": 1, "model": {"size": {}}, "seed": 0, "train": {}}
        s.add("st", spec, {"id": "ok1", "status": "ok", "min_dev_error": 0.1})
        s.add("st", {**spec, "seed": 1}, {"id": "bad", "status": "failed", "error": "boom"})
        with Claims(s, "st") as c:
            assert c.take(["ok1", "bad", "new"], ALL) == ["new"]
            assert c.take(["ok1", "bad", "new"], ALL, retry_failed=True) == ["bad", "new"]


def test_claims_of_a_dead_run_are_free(tmp_path):
    with Store(tmp_path) as s:
        now = time.time()
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        rows = [  # a pid on this host that no longer exists; another host that stopped beating
            ("here:dead", "st", Claims(s, "st").host, dead.pid, now, now),
            ("elsewhere:1", "st", "other-host", 1, now - 100, now - 100),
            ("elsewhere:2", "st", "other-host", 2, now, now),  # beating: alive
        ]
        s.conn.executemany("INSERT INTO runners VALUES (?,?,?,?,?,?)", rows)
        s.conn.executemany(
            "INSERT INTO claims VALUES (?,?,?)",
            [("a", "here:dead", now), ("b", "elsewhere:1", now), ("c", "elsewhere:2", now)],
        )
        with Claims(s, "st", grace_s=30) as c:
            assert c.take(["a", "b", "c"], ALL) == ["a", "b"]
            assert c.live_runners() == 2


def test_heartbeat_keeps_a_run_alive_past_the_grace(tmp_path):
    with Store(tmp_path) as s1, Store(tmp_path) as s2:
        with Claims(s1, "st", heartbeat_s=0.1, grace_s=0.5) as a:
            a.take(["x"], ALL)
            time.sleep(1.0)  # past the grace: only the heartbeat thread keeps a alive
            with Claims(s2, "st", grace_s=0.5) as b:
                assert b.take(["x"], ALL) == []


# A trainer that says which process trained which trial, slow enough that two runs overlap.
SLOW = textwrap.dedent("""
    import os, time
    from pathlib import Path

    def train(trial):
        with open(Path(__file__).parent / "calls.log", "a") as f:
            f.write(f"{os.getpid()} {trial.id}\\n")
        time.sleep(0.4)
        return {"dev": 0.05 + 2.0 / trial.data_size ** 0.5 * (1 + 8.0 / trial.model_size["width"]), "params": 10}
""")

STUDY = """
name = "shared"
seeds = 2
[train]
function = "slow:train"
[data]
kind = "indices"
pool_size = 600
sizes = { min = 32, max = 512 }
[metric]
name = "error"
[model]
sizes = [{ width = 8 }, { width = 32 }]
[search]
kind = "grid"
"""
N_TRIALS = 5 * 2 * 2


def _study(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW)
    (tmp_path / "study.toml").write_text(STUDY)
    return tmp_path / "study.toml"


def _run(study, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "scalinglab.cli.main", "run", str(study), "--out", str(out), "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)


def _calls(tmp_path) -> list[tuple[int, str]]:
    return [(int(p), t) for p, t in (line.split() for line in (tmp_path / "calls.log").read_text().splitlines())]


def _stored(out) -> list[str]:
    with sqlite3.connect(out / "results.sqlite") as c:
        return [r[0] for r in c.execute("SELECT id FROM trials WHERE status = 'ok'")]


def _wait_for_calls(tmp_path, pids, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (tmp_path / "calls.log").exists() and {p for p, _ in _calls(tmp_path)} >= set(pids):
            return
        time.sleep(0.05)


def test_two_runs_on_one_folder_split_the_study(tmp_path, capsys):
    from scalinglab.cli.main import main

    study, out = _study(tmp_path), tmp_path / "out"
    procs = [_run(study, out) for _ in range(2)]
    _wait_for_calls(tmp_path, [p.pid for p in procs])
    assert main(["status", str(out)]) == 0  # a reader sees who is training
    shown = capsys.readouterr().out
    assert all(f"pid {p.pid}" in shown for p in procs), shown
    for p in procs:
        assert p.wait(120) == 0, p.stderr.read()
    calls, stored = _calls(tmp_path), _stored(out)
    assert len(stored) == len(set(stored)) == N_TRIALS
    trained = [t for _, t in calls]
    assert sorted(trained) == sorted(stored)  # every trial trained exactly once, by one of the two
    by = {pid: sum(1 for p, _ in calls if p == pid) for pid, _ in calls}
    assert sorted(by) == sorted(p.pid for p in procs) and min(by.values()) >= 3, by
    assert json.loads((out / "summary.json").read_text())["trials"]["ok"] == N_TRIALS
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # each writer's temporary file is gone
    with sqlite3.connect(out / "results.sqlite") as c:  # both runs left: no runner, no claim
        assert c.execute("SELECT count(*) FROM runners").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kill -9 drill")
def test_a_killed_runs_trial_is_taken_over_by_the_other(tmp_path):
    study, out = _study(tmp_path), tmp_path / "out"
    a, b = _run(study, out), _run(study, out)
    deadline = time.time() + 60
    while time.time() < deadline and not (
        (tmp_path / "calls.log").exists() and {p for p, _ in _calls(tmp_path)} >= {a.pid}
    ):
        time.sleep(0.05)
    os.kill(a.pid, signal.SIGKILL)  # mid-trial, its claim held
    a.wait()
    assert b.wait(120) == 0, b.stderr.read()
    stored = _stored(out)
    assert len(stored) == len(set(stored)) == N_TRIALS  # nothing lost, nothing twice
    assert {t for _, t in _calls(tmp_path)} == set(stored)
