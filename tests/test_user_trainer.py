"""The user's own trainer as the trial: a function or a command (train/user.py).

The trainers here are tiny and planted: their dev error is a known law of the data size, so the study
must recover it; their failures are chosen per data size, so each kind of failure must be stored with
its reason while the study goes on.
"""

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli.main import main
from scalinglab.store import load_results

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# dev = 0.05 + 2 / sqrt(n) * (1 + 8 / width), with a small seed-dependent wobble: planted exponent -0.5
PLANTED = textwrap.dedent("""
    import json, math, os, time
    from pathlib import Path

    HERE = Path(__file__).parent
    FAIL = {32: "raise", 64: "nodev", 128: "nan", 256: "negative"}

    def law(n, width, seed):
        return 0.05 + 2.0 / math.sqrt(n) * (1 + 8.0 / width) * (1 + 0.01 * ((seed * 7 + n) % 3 - 1))

    def train(trial):
        n, w = trial.data_size, trial.model_size["width"]
        with open(HERE / "calls.log", "a") as f:
            f.write(trial.id + "\\n")
        time.sleep(float(os.environ.get("PLANTED_SLEEP", "0")))
        (trial.workdir / "indices.json").write_text(json.dumps(trial.indices.tolist()))
        how = FAIL.get(n) if (HERE / "broken.flag").exists() else None
        if how == "raise":
            raise RuntimeError("planted failure at n=32")
        if how == "nodev":
            return {"loss": 1.0}
        dev = law(n, w, trial.seed)
        for epoch in range(1, 4):
            trial.report(epoch=epoch, dev=dev * (1 + 1.0 / epoch), train_loss=1.0 / epoch)
        if how == "nan":
            dev = float("nan")
        if how == "negative":
            dev = -0.5
        if trial.hparams.get("goal") == "max":
            return {"dev": 1 - dev, "params": 10 * w}
        return {"dev": dev, "train": 0.0, "params": 10 * w, "flops": 1e3 * n * w, "note": "planted"}
""")

FUNCTION_STUDY = """
name = "planted"
seeds = 2
[train]
function = "planted:train"
lr = 0.01
[data]
kind = "indices"
pool_size = 600
sizes = {{ min = 32, max = 512 }}
unit = "sentences"
{data_extra}
[metric]
name = "{metric}"
{metric_extra}
[model]
sizes = [{{ width = 8 }}, {{ width = 32 }}]
[search]
kind = "grid"
{search_extra}
"""


def function_study(
    tmp_path, *, metric="wer", metric_extra="random_guess = 1.0", data_extra="", search_extra="", train_extra=""
):
    (tmp_path / "planted.py").write_text(PLANTED)
    text = FUNCTION_STUDY.format(
        metric=metric, metric_extra=metric_extra, data_extra=data_extra, search_extra=search_extra
    )
    if train_extra:
        text = text.replace("lr = 0.01\n", "lr = 0.01\n" + train_extra + "\n")
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


def run(study, out, *args):
    return main(["run", str(study), "--out", str(out), "--no-progress", *args])


def summary(out) -> dict:
    return json.loads((Path(out) / "summary.json").read_text())


def test_function_trainer_recovers_the_planted_law_and_stores_its_history(tmp_path):
    study = function_study(tmp_path)
    assert run(study, tmp_path / "out") == 0
    s = summary(tmp_path / "out")
    assert s["trials"]["ok"] == s["trials"]["total"] == 5 * 2 * 2
    assert s["metric_info"]["name"] == "wer" and s["data_unit"] == "sentences"
    assert s["random_guess_error"] == 1.0
    # the best-fit point per size is the wide model, at the median of its two seeds
    for p in s["points"]:
        n = p["data_size"]
        want = float(np.median([0.05 + 2 / math.sqrt(n) * 1.25 * (1 + 0.01 * ((sd * 7 + n) % 3 - 1)) for sd in (0, 1)]))
        assert p["model_size"] == {"width": 32} and math.isclose(p["error"], want, rel_tol=1e-9)
    lc = s["learning_curve"]
    assert lc["exponent"] == pytest.approx(-0.5, abs=0.08), lc
    df = load_results(tmp_path / "out")
    assert set(df["status"]) == {"ok"} and set(df["params"]) == {80, 320}
    row = df.iloc[0]
    assert row["train_flops"] == 1e3 * row["data_size"] * row["size_width"]
    # history: what trial.report() got, per epoch, with the fitted error beside the raw value
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        hist = json.loads(db.execute("SELECT result FROM trials LIMIT 1").fetchone()[0])["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3] and all("dev_error" in h and "train_loss" in h for h in hist)


def test_indices_are_nested_prefixes_identical_across_seeds(tmp_path):
    study = function_study(tmp_path)
    assert run(study, tmp_path / "out") == 0
    seen = {}
    for f in (tmp_path / "out" / "trials").glob("*/indices.json"):
        idx = json.loads(f.read_text())
        seen.setdefault(len(idx), set()).add(tuple(idx))
    assert sorted(seen) == [32, 64, 128, 256, 512]
    assert all(len(v) == 1 for v in seen.values())  # same subset for every seed and width
    full = next(iter(seen[512]))
    assert len(set(full)) == 512 and all(0 <= i < 600 for i in full)
    for n, v in seen.items():
        assert next(iter(v)) == full[:n]  # nested: each subset is a prefix of the next


def test_stratified_prefixes_keep_the_class_mix(tmp_path):
    labels = np.repeat(np.arange(3), [400, 150, 50])  # 2/3, 1/4, 1/12
    np.random.default_rng(0).shuffle(labels)
    np.save(tmp_path / "labels.npy", labels)
    study = function_study(tmp_path, data_extra='stratify = "labels.npy"')
    assert run(study, tmp_path / "out") == 0
    for f in (tmp_path / "out" / "trials").glob("*/indices.json"):
        idx = np.array(json.loads(f.read_text()))
        counts = np.bincount(labels[idx], minlength=3)
        want = len(idx) * np.array([400, 150, 50]) / 600
        assert np.all(np.abs(counts - want) <= 1.0), (len(idx), counts, want)


def test_max_metric_is_fitted_as_best_minus_value(tmp_path):
    study = function_study(
        tmp_path, metric="accuracy", metric_extra='goal = "max"', train_extra='hparams = { goal = "max" }'
    )
    assert run(study, tmp_path / "out") == 0
    s = summary(tmp_path / "out")
    assert s["metric_info"]["goal"] == "max" and s["metric_info"]["label"] == "dev 1 - accuracy"
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        rows = [json.loads(r) for (r,) in db.execute("SELECT result FROM trials")]
    # stored: the accuracy the trainer returned and the error it implies, 1 - accuracy
    assert len(rows) == 20 and all(math.isclose(r["min_dev_error"], 1 - r["metric_value"]) for r in rows)
    assert s["learning_curve"]["exponent"] == pytest.approx(-0.5, abs=0.08)


def test_failed_trials_are_stored_with_their_reason_and_retried(tmp_path, capsys):
    study = function_study(tmp_path)
    (tmp_path / "broken.flag").write_text("")
    assert run(study, tmp_path / "out") == 0  # the study goes on
    df = load_results(tmp_path / "out")
    by_size = {n: set(g["status"]) for n, g in df.groupby("data_size")}
    assert by_size == {32: {"failed"}, 64: {"failed"}, 128: {"failed"}, 256: {"failed"}, 512: {"ok"}}
    reasons = {n: g["error"].iloc[0] for n, g in df[df["status"] == "failed"].groupby("data_size")}
    assert "RuntimeError: planted failure at n=32" in reasons[32]
    assert 'no "dev" value' in reasons[64]
    assert "is not a finite number" in reasons[128]
    assert "negative" in reasons[256]
    capsys.readouterr()
    assert main(["status", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "16 failed" in out and "planted failure at n=32" in out and "(4 trials)" in out
    # a plain rerun keeps them failed; --retry-failed runs them again once the cause is fixed
    calls = (tmp_path / "calls.log").read_text().count("\n")
    assert run(study, tmp_path / "out") == 0
    assert (tmp_path / "calls.log").read_text().count("\n") == calls
    (tmp_path / "broken.flag").unlink()
    assert run(study, tmp_path / "out", "--retry-failed") == 0
    assert (tmp_path / "calls.log").read_text().count("\n") == calls + 16
    df = load_results(tmp_path / "out")
    assert len(df) == 20 and set(df["status"]) == {"ok"}


COMMAND = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    n, width = int(args["--n"]), int(args["--width"])
    idx = [int(l) for l in Path(args["--indices"]).read_text().split()]
    assert len(idx) == n, (len(idx), n)
    how = {32: "exit", 64: "badjson", 128: "nofinal", 256: "sleep"}.get(n) if Path("broken.flag").exists() else None
    print("a script's own chatter, not JSON")
    for epoch in (1, 2):
        print(json.dumps({"epoch": epoch, "dev": 1.0 / (epoch * n ** 0.5)}), flush=True)
    if how == "exit":
        print("CUDA out of memory (planted)", file=sys.stderr)
        sys.exit(3)
    if how == "badjson":
        print('{"dev": 0.1,,}')
        sys.exit(0)
    if how == "nofinal":
        sys.exit(0)
    if how == "sleep":
        Path(args["--out"], "pid").write_text(str(__import__("os").getpid()))
        time.sleep(60)
    final = {"dev": 0.5 / n ** 0.5, "params": width}
    if n == 512:  # the other convention: a metrics file in the work folder
        Path(args["--out"], "metrics.json").write_text(json.dumps(final))
    else:
        print(json.dumps(final))
""")

COMMAND_STUDY = """
name = "cmd"
seeds = 1
[train]
command = ["{python}", "cmd_train.py", "--n", "{{data_size}}", "--indices", "{{indices_file}}",
           "--width", "{{width}}", "--out", "{{workdir}}"]
timeout = "{timeout}"
[data]
kind = "indices"
pool_size = 512
sizes = {{ min = 32, max = 512 }}
[model]
sizes = [{{ width = 4 }}]
[search]
kind = "grid"
"""


def command_study(tmp_path, timeout="30s"):
    (tmp_path / "cmd_train.py").write_text(COMMAND)
    p = tmp_path / "study.toml"
    p.write_text(COMMAND_STUDY.format(python=sys.executable, timeout=timeout))
    return p


def test_command_trainer_reads_json_lines_and_metrics_file(tmp_path):
    study = command_study(tmp_path)
    assert run(study, tmp_path / "out") == 0
    s = summary(tmp_path / "out")
    assert s["trials"]["ok"] == s["trials"]["total"] == 5
    for p in s["points"]:
        assert math.isclose(p["error"], 0.5 / math.sqrt(p["data_size"]))
    assert s["learning_curve"]["exponent"] == pytest.approx(-0.5, abs=0.05)
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        hist = json.loads(db.execute("SELECT result FROM trials LIMIT 1").fetchone()[0])["history"]
    assert [h["epoch"] for h in hist] == [1, 2]
    # the per-trial folder keeps the command's output, not a copy of the subset
    wd = next((tmp_path / "out" / "trials").iterdir())
    assert (wd / "stdout.txt").exists() and not (wd / "indices.txt").exists()


def test_command_failures_are_failed_trials_with_reasons(tmp_path):
    study = command_study(tmp_path, timeout="2s")
    (tmp_path / "broken.flag").write_text("")
    t0 = time.perf_counter()
    assert run(study, tmp_path / "out") == 0
    assert time.perf_counter() - t0 < 30  # the sleeping command was killed at its timeout
    df = load_results(tmp_path / "out")
    reasons = dict(zip(df["data_size"], df["error"].fillna("")))
    assert dict(zip(df["data_size"], df["status"])) == {
        32: "failed",
        64: "failed",
        128: "failed",
        256: "failed",
        512: "ok",
    }
    assert "exited with code 3" in reasons[32] and "CUDA out of memory (planted)" in reasons[32]
    assert "malformed metric JSON on stdout line" in reasons[64]
    assert "no final metric" in reasons[128]
    assert "timeout" in reasons[256] and "2 s" in reasons[256]
    pid = int(next((tmp_path / "out" / "trials").glob("*/pid")).read_text())
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state  # a zombie is dead (only not yet reaped)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (('function = "planted:train"', 'function = "nowhere:train"'), "importing 'nowhere' failed"),
        (('function = "planted:train"', 'function = "planted:nope"'), "has no attribute 'nope'"),
        (('function = "planted:train"', 'function = "planted:FAIL"'), "not callable"),
        (('function = "planted:train"', 'function = "planted:law"'), "a function of one argument"),
        (('function = "planted:train"', 'function = "planted"'), "module:function"),
        (('function = "planted:train"', ""), "needs your own trainer"),
        (("pool_size = 600", "pool_size = 100"), "pool_size"),
        (('unit = "sentences"', 'unit = "sentences"\nstratify = "missing.npy"'), "missing.npy"),
        (('kind = "grid"', 'kind = "grid"\nfactor = "colour"\nlevels = [1, 2]'), "colour"),
        (('name = "wer"', 'name = "wer"\ngoal = "up"'), "goal"),
        (("lr = 0.01", 'lr = 0.01\ntimeout = "soon"'), "timeout"),
    ],
)
def test_function_study_load_errors_are_one_line(tmp_path, capsys, edit, needle):
    study = function_study(tmp_path)
    text = study.read_text()
    assert edit[0] in text
    study.write_text(text.replace(edit[0], edit[1], 1))
    _one_line_error(study, tmp_path, capsys, needle)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (('"{width}"', '"{widht}"'), "given the placeholder {widht}"),
        (('"{width}"', '"{widht}"'), "allowed: {data_size}, {indices_file}"),
        ((f'"{sys.executable}"', '"no-such-program-xyz"'), "no-such-program-xyz"),
        ((f'"{sys.executable}"', '"./cmd_train.py"'), "not executable"),
        (('timeout = "30s"', "timeout = -1"), "timeout"),
    ],
)
def test_command_study_load_errors_are_one_line(tmp_path, capsys, edit, needle):
    (tmp_path / "cmd_train.py").write_text(COMMAND)
    text = COMMAND_STUDY.format(python=sys.executable, timeout="30s")
    assert edit[0] in text
    p = tmp_path / "study.toml"
    p.write_text(text.replace(edit[0], edit[1], 1))
    _one_line_error(p, tmp_path, capsys, needle)


def _one_line_error(study, tmp_path, capsys, needle):
    capsys.readouterr()
    assert run(study, tmp_path / "out") == 2
    err = capsys.readouterr()
    msg = (err.err + err.out).strip()
    assert needle in msg and "\n" not in msg and "Traceback" not in msg, msg
    assert str(study) in msg
    assert not (tmp_path / "out").exists()


def _cli(*args, cwd=None, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "scalinglab.cli.main", *args],
        cwd=cwd,
        env={**ENV, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_function_trainer_in_two_worker_processes(tmp_path):
    study = function_study(tmp_path)
    p = _cli("run", str(study), "--out", str(tmp_path / "out"), "--workers", "2", "--no-progress")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    s = summary(tmp_path / "out")
    assert s["trials"]["ok"] == 20
    # the same trials in-process give the same points, to the digit
    (tmp_path / "calls.log").unlink()
    assert run(study, tmp_path / "inproc") == 0
    assert summary(tmp_path / "inproc")["points"] == s["points"]


def test_kill_9_mid_study_then_resume_loses_and_duplicates_nothing(tmp_path):
    study = function_study(tmp_path)
    out = tmp_path / "out"
    p = _cli("run", str(study), "--out", str(out), "--no-progress", env={"PLANTED_SLEEP": "0.3"})
    deadline = time.time() + 120
    while time.time() < deadline and _rows(out) < 5:
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = _rows(out)
    assert 5 <= done < 20
    p = _cli("run", str(study), "--out", str(out), "--no-progress")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    df = load_results(out)
    assert len(df) == 20 and df["id"].is_unique and set(df["status"]) == {"ok"}
    calls = (tmp_path / "calls.log").read_text().split()
    assert len(calls) <= 20 + 1  # at most the one trial in flight at the kill ran twice
    assert len(set(calls)) == 20


def test_kill_9_leaves_no_orphaned_command(tmp_path):
    study = command_study(tmp_path, timeout="1m")
    (tmp_path / "broken.flag").write_text("")
    out = tmp_path / "out"
    p = _cli("run", str(study), "--out", str(out), "--no-progress", cwd=tmp_path)
    deadline = time.time() + 120
    pid_files = []
    while time.time() < deadline and not pid_files:
        pid_files = list((out / "trials").glob("*/pid")) if (out / "trials").exists() else []
        time.sleep(0.1)
    assert pid_files, "the sleeping command never started"
    time.sleep(0.2)
    pid = int(pid_files[0].read_text())
    assert _alive(pid)
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 5
    while time.time() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid), "the command outlived scalinglab"


def _rows(out: Path) -> int:
    try:
        with sqlite3.connect(f"file:{out / 'results.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_hestness_search_and_a_factor_of_the_users_own_hparams(tmp_path):
    study = function_study(tmp_path, train_extra="hparams = { dropout = 0.0 }")
    study.write_text(
        study.read_text().replace(
            'kind = "grid"',
            'kind = "hestness"\ncandidates = 3\nlrs = [0.003, 0.01, 0.03]\nfactor = "dropout"\nlevels = [0.0, 0.5]',
        )
    )
    assert run(study, tmp_path / "out") == 0
    s = summary(tmp_path / "out")
    assert s["trials"]["ok"] == s["trials"]["total"] > 20
    assert s["factor"]["name"] == "dropout" and sorted(s["factor"]["levels"]) == ["0.0", "0.5"]
    # the planted law does not depend on dropout: both levels recover the same exponent
    for lv in s["factor"]["levels"].values():
        assert lv["learning_curve"]["exponent"] == pytest.approx(-0.5, abs=0.08)
