"""The store: resume after kill -9 with no trial lost or repeated; concurrent writers."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from scalinglab.config import load_study
from scalinglab.search import plan_grid
from scalinglab.store import Store, load_results
from scalinglab.train import trial_id


def _count(db):
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _run(study, out):
    return subprocess.Popen(
        [sys.executable, "-m", "scalinglab.cli.main", "run", str(study), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill_9_mid_study_then_resume(tiny_study, tmp_path):
    out = tmp_path / "run"
    db = out / "results.sqlite"
    p = _run(tiny_study, out)
    deadline = time.time() + 120
    while _count(db) < 4 and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, "study finished before it could be killed: " + p.stderr.read()
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with sqlite3.connect(db) as c:
        before = dict(c.execute("SELECT id, finished_at FROM trials").fetchall())
    study, _ = load_study(str(tiny_study))
    planned = {trial_id(s) for s, _ in plan_grid(study)}
    assert 4 <= len(before) < len(planned)

    r = _run(tiny_study, out)
    _, err = r.communicate(timeout=300)
    assert r.returncode == 0, err
    assert f"resuming: {len(before)} trials already in the store, {len(planned)} planned" in err
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT id, finished_at FROM trials").fetchall()
    ids = [i for i, _ in rows]
    assert len(ids) == len(set(ids)) == len(planned) and set(ids) == planned  # none lost, none repeated
    after = dict(rows)
    assert all(after[i] == t for i, t in before.items())  # finished trials were not redone
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"]["total"] == len(planned)


def test_add_is_idempotent_and_frame_reads(tmp_path):
    spec = {
        "data": {"name": "teacher"},
        "data_size": 10,
        "model": {"family": "mlp", "size": {"width": 4}},
        "seed": 0,
        "train": {},
    }
    res = {"id": "abc", "status": "ok", "min_dev_error": 0.5, "params": 10}
    with Store(tmp_path) as s:
        assert s.add("st", spec, res, {"stage": "grid"}) is True
        assert s.add("st", spec, res) is False
        assert s.count() == 1
    df = load_results(tmp_path)
    assert list(df["size_width"]) == [4] and list(df["tag_stage"]) == ["grid"]


def _writer(path, k, n):
    s = Store(path)
    for i in range(n):
        spec = {"data": {}, "data_size": i, "model": {"size": {"w": k}}, "seed": k, "train": {}}
        s.add("st", spec, {"id": f"{k}-{i}", "status": "ok", "min_dev_error": i / n, "history": list(range(50))})
    s.close()


def test_concurrent_writers_lose_nothing(tmp_path):
    import multiprocessing as mp

    procs = [mp.get_context("spawn").Process(target=_writer, args=(tmp_path, k, 60)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with Store(tmp_path) as s:
        df = s.frame(with_json=True)
    assert len(df) == 240 and df["id"].is_unique
    assert all(len(json.loads(r)["history"]) == 50 for r in df["result"])  # no torn rows


def _open_new(path, q):
    try:
        with Store(path) as s:
            s.begin_study("st", {}, "")
        q.put("ok")
    except Exception as e:  # what a run would print: the test shows it
        q.put(repr(e))


def test_runs_opening_one_new_folder_at_once_all_succeed(tmp_path):
    """Runs started together on one new folder race to create the store: each must see all of its
    tables or none (the schema is one transaction) and wait out the lock (no 'database is locked')."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # the child only opens SQLite: no torch threads to inherit
    for i in range(10):
        q = ctx.Queue()
        procs = [ctx.Process(target=_open_new, args=(tmp_path / str(i), q)) for _ in range(6)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [q.get() for _ in procs] == ["ok"] * 6


class _ConstBackend:
    """Every trial gets dev error 0.5 / sqrt(data size): enough for a summary."""

    def map(self, specs, device="cpu"):
        for s in specs:
            yield (
                s,
                {
                    "id": trial_id(s),
                    "status": "ok",
                    "min_dev_error": 0.5 / s["data_size"] ** 0.5,
                    "final_train_error": 0.0,
                    "params": 10,
                    "test_error": 0.1,
                    "history": [],
                },
            )


def test_trials_of_an_earlier_config_do_not_count(tiny_study, tmp_path):
    from scalinglab.config import parse_study
    from scalinglab.runner import run_study

    text = tiny_study.read_text()
    first = run_study(parse_study(text, "a.toml"), tmp_path, backend=_ConstBackend(), log=lambda m: None)
    changed = parse_study(text.replace("max_epochs = 15", "max_epochs = 9"), "a.toml")
    second = run_study(changed, tmp_path, backend=_ConstBackend(), log=lambda m: None)
    with Store(tmp_path) as s:
        assert s.count() == 2 * first["trials"]["total"]  # nothing deleted...
    assert second["trials"]["total"] == first["trials"]["total"]  # ...but only the current ones count
    assert len(load_results(tmp_path, "tiny")) == first["trials"]["total"]


def test_retry_failed_reruns_only_failed_trials(tiny_study, tmp_path):
    """A failed trial (an exception, not a diverged model) stays failed on a plain rerun and is run
    again, its row replaced, with retry_failed; ok trials are never rerun or overwritten."""
    from scalinglab.runner import run_study

    study, _ = load_study(str(tiny_study))

    class Flaky:  # fails every spec with seed 1 while `broken`; records what it was asked to run
        def __init__(self, broken):
            self.broken, self.ran = broken, []

        def map(self, specs, device="cpu"):
            for s in specs:
                self.ran.append(trial_id(s))
                bad = self.broken and s["seed"] == 1
                yield (
                    s,
                    {
                        "id": trial_id(s),
                        "status": "failed" if bad else "ok",
                        "min_dev_error": None if bad else 0.5 / s["data_size"] ** 0.3,
                        "final_train_error": None if bad else 0.0,
                        "params": 10,
                        "best_epoch": 1,
                        "epochs": 1,
                        "test_error": None if bad else 0.3,
                        "history": [],
                        "wall_time": 0.0,
                        "error": "RuntimeError: worker lost" if bad else None,
                    },
                )

    out = tmp_path / "out"
    first = Flaky(broken=True)
    run_study(study, out, backend=first, log=lambda m: None)
    n, failed = len(first.ran), {i for i, r in Store(out).result_index().items() if r["status"] == "failed"}
    assert n == 20 and len(failed) == 10
    plain = Flaky(broken=False)
    run_study(study, out, backend=plain, log=lambda m: None)
    assert plain.ran == []  # a rerun without the flag keeps failed trials as they are
    with Store(out) as s:
        ok_before = {r["id"]: r["finished_at"] for _, r in s.frame().iterrows() if r["status"] == "ok"}
    retry = Flaky(broken=False)
    summary = run_study(study, out, backend=retry, log=lambda m: None, retry_failed=True)
    assert set(retry.ran) == failed and len(retry.ran) == 10
    with Store(out) as s:
        df = s.frame()
        assert s.count() == 20 and (df["status"] == "ok").all()  # replaced in place: no duplicate rows
        assert {r["id"]: r["finished_at"] for _, r in df.iterrows() if r["id"] in ok_before} == ok_before
    assert summary["trials"].get("failed", 0) == 0
