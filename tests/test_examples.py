"""The examples/ studies in their smoke form, through the CLI (as a user runs them)."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# One torch thread per process: on a shared 2-core machine, 2 spinning intra-op threads per process
# make small models many times slower.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "scalinglab.cli.main", *args], capture_output=True, text=True, env=ENV, cwd=cwd
    )


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_npz_example(tmp_path):
    ex = shutil.copytree(EXAMPLES / "npz", tmp_path / "npz")
    subprocess.run([sys.executable, str(ex / "make_data.py")], check=True, capture_output=True, env=ENV)
    r = cli("run", str(ex / "study.toml"), "--out", str(tmp_path / "out"), "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = summary(tmp_path / "out")
    assert s["trials"]["ok"] == s["trials"]["total"] == 20
    assert s["learning_curve"]["exponent"] < 0
    assert s["random_guess_error"] == 1 - 1 / 3


def test_custom_model_example_in_spawned_workers(tmp_path):
    # run from another folder with 2 worker processes: the factory module is found next to the study
    # file, and spawned workers import it from the folder recorded in the spec
    r = cli(
        "run",
        str(EXAMPLES / "custom_model" / "study.toml"),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "2",
        "--no-progress",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    s = summary(tmp_path / "out")
    assert s["trials"]["ok"] == s["trials"]["total"] == 20
    params = sorted({p["params"] for p in s["points"]})
    assert params and all(n > 0 for n in params)


def test_charlm_example_smoke(tmp_path):
    r = cli("run", str(EXAMPLES / "charlm" / "smoke.toml"), "--out", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 0, r.stderr
    s = summary(tmp_path / "out")
    assert s["trials"]["ok"] == s["trials"]["total"] == 4
    assert "bits per character" in s["metric"] and s["data_unit"] == "characters"
    assert math.isclose(s["random_guess_error"], math.log2(97))
    errs = [p["error"] for p in s["points"]]
    assert all(1.0 < e < math.log2(97) for e in errs)  # bits/char: above 1 (no error rate), below guessing
    assert s["learning_curve"] is not None and s["learning_curve"]["exponent"] < 0


# --- the user's own trainer (train/user.py): a function, a Lightning module, a command ------------


def _user_example(tmp_path, name, *args, total):
    r = cli(
        "run", str(EXAMPLES / name / "study.toml"), "--out", str(tmp_path / "out"), "--no-progress", *args, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    s = summary(tmp_path / "out")
    assert s["trials"]["ok"] == s["trials"]["total"] == total
    errs = [p["error"] for p in s["points"]]
    assert errs[-1] < 0.1 < errs[0] < 0.9  # real learning on digits: from near guessing to a few %
    assert s["learning_curve"]["exponent"] < -0.3 and s["data_unit"] == "images"
    return s


def test_sklearn_function_example(tmp_path):
    s = _user_example(tmp_path, "sklearn_function", total=6 * 3 * 2)
    assert {p["model_size"]["n_estimators"] for p in s["points"]} <= {5, 20, 80}
    assert s["model_size_law"] is not None  # params from the trees' leaves: a model-size law


def test_lightning_example_in_two_workers(tmp_path):
    _user_example(tmp_path, "lightning", "--workers", "2", total=5 * 2)


def test_command_script_example_in_two_workers(tmp_path):
    _user_example(tmp_path, "command_script", "--workers", "2", total=5 * 2)
