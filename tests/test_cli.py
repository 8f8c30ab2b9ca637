"""End to end: the smoke preset through the CLI, then export and re-run (all trials reused)."""

import json
import subprocess
import sys

import pandas as pd
import pytest


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "scalinglab.cli.main", *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    r = cli("run", "smoke", "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
def test_smoke_end_to_end(smoke_dir):
    assert (smoke_dir / "results.sqlite").exists()
    s = json.loads((smoke_dir / "summary.json").read_text())
    assert s["study"] == "smoke" and s["trials"]["ok"] == s["trials"]["total"] > 0
    assert len(s["points"]) >= 4
    for p in s["points"]:
        assert {"data_size", "model_size", "params", "error", "n_seeds"} <= set(p)
    lc = s["learning_curve"]
    assert lc["form"] and lc["params"] and lc["exponent"] < 0
    errs = [p["error"] for p in s["points"]]
    assert errs[-1] < errs[0]  # more data helped
    assert all(lo <= v <= hi for v, lo, hi in ((q["value"], q["lo"], q["hi"]) for q in lc["predictions"]))


@pytest.mark.slow
def test_export_and_rerun_reuses_everything(smoke_dir):
    r = cli("export", str(smoke_dir), "--csv")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(smoke_dir / "trials.csv")
    assert len(df) == json.loads((smoke_dir / "summary.json").read_text())["trials"]["total"]
    assert {"data_size", "seed", "min_dev_error", "status", "params"} <= set(df.columns)
    r = cli("run", "smoke", "--out", str(smoke_dir), "--no-progress")
    assert r.returncode == 0 and "resuming" in r.stderr


def test_presets_and_help():
    r = cli("presets")
    assert r.returncode == 0 and "default" in r.stdout and "smoke" in r.stdout
    r = cli("--help")
    assert r.returncode == 0 and "run" in r.stdout
    r = cli("export", "/nonexistent/folder")
    assert r.returncode == 2 and "no results.sqlite" in r.stderr and "Traceback" not in r.stderr
