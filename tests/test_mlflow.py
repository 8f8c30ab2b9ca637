"""`scalinglab export DIR --mlflow`: the smoke study to MLflow and back through `mlflow.search_runs`."""

import json
import sqlite3

import pytest

from scalinglab.cli.main import main

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def exported(smoke_run, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["export", str(smoke_run.out), "--mlflow", uri]) == 0
    return uri, capsys.readouterr()


def runs(uri, name="scalinglab-smoke"):
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(experiment_names=[name])
    finally:
        mlflow.set_tracking_uri(None)


def test_round_trip(smoke_run, exported):
    uri, _ = exported
    df = runs(uri)
    trials = smoke_run.results
    parent = df[df["tags.scalinglab.study_key"].notna()]
    children = df[df["tags.scalinglab.trial_id"].notna()]
    assert len(parent) == 1 and len(children) == len(trials) == len(df) - 1
    assert (children["tags.mlflow.parentRunId"] == parent["run_id"].iloc[0]).all()
    assert set(children["tags.scalinglab.trial_id"]) == set(trials["id"])

    # the parent: fitted exponent and floor as metrics, config / summary / report as artifacts
    p = parent.iloc[0]
    s = smoke_run.summary
    assert p["metrics.exponent"] == pytest.approx(s["learning_curve"]["exponent"])
    assert p["metrics.floor"] == pytest.approx(s["floor"]["value"])
    assert p["metrics.model_size_exponent"] == pytest.approx(s["model_size_law"]["exponent"])
    client = mlflow.tracking.MlflowClient(uri)
    assert {a.path for a in client.list_artifacts(p["run_id"])} == {"config.json", "summary.json", "report.html"}
    with open(client.download_artifacts(p["run_id"], "config.json")) as f:
        cfg = json.load(f)
    assert cfg["name"] == "smoke"

    # a child: spec as params, final numbers as metrics, status, wall time as the run's duration
    row = trials.iloc[0]
    c = children[children["tags.scalinglab.trial_id"] == row["id"]].iloc[0]
    assert c["params.train.lr"] == "0.003" and c["params.data_size"] == str(row["data_size"])
    assert c["params.model.size.channels"] == str(row["size_channels"])
    assert c["metrics.min_dev_error"] == pytest.approx(row["min_dev_error"])
    assert c["metrics.n_params"] == row["params"]
    assert c["tags.status"] == row["status"] == "ok" and c["status"] == "FINISHED"
    dur = (c["end_time"] - c["start_time"]).total_seconds()
    assert dur == pytest.approx(row["wall_time"], abs=2e-3)

    # the per-epoch history as stepped metrics, equal to the stored one
    hist = json.loads(
        sqlite3.connect(smoke_run.out / "results.sqlite")
        .execute("SELECT result FROM trials WHERE id=?", (row["id"],))
        .fetchone()[0]
    )["history"]
    got = sorted((m.step, m.value) for m in client.get_metric_history(c["run_id"], "dev_error"))
    assert got == [(h["epoch"], pytest.approx(h["dev_error"])) for h in hist] and len(got) == row["epochs"]
    assert len(client.get_metric_history(c["run_id"], "train_loss")) == len(hist)


def test_export_twice_adds_nothing(smoke_run, exported, capsys):
    uri, out = exported
    n = len(smoke_run.results)
    assert f"{n} trial runs added, 0 already there" in out.err
    first = runs(uri)
    parent = first.loc[first["tags.scalinglab.study_key"].notna(), "run_id"].iloc[0]
    assert main(["export", str(smoke_run.out), "--mlflow", uri]) == 0
    assert f"0 trial runs added, {n} already there" in capsys.readouterr().err
    again = runs(uri)
    assert len(again) == len(first) == n + 1
    assert sorted(again["run_id"]) == sorted(first["run_id"])
    # the parent's metrics got no second history point
    client = mlflow.tracking.MlflowClient(uri)
    assert len(client.get_metric_history(parent, "exponent")) == 1


def test_half_written_child_is_redone(smoke_run, exported, capsys):
    """An export killed mid-trial leaves a RUNNING child: the next export replaces it."""
    uri, _ = exported
    client = mlflow.tracking.MlflowClient(uri)
    df = runs(uri)
    child = df[df["tags.scalinglab.trial_id"].notna()].iloc[0]
    client.update_run(child["run_id"], status="RUNNING")
    assert main(["export", str(smoke_run.out), "--mlflow", uri]) == 0
    assert "1 trial runs added" in capsys.readouterr().err
    df2 = runs(uri)
    assert len(df2) == len(df)
    assert (df2["tags.scalinglab.trial_id"] == child["tags.scalinglab.trial_id"]).sum() == 1


def test_default_uri_is_beside_the_study(smoke_run, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    assert main(["export", str(smoke_run.out), "--mlflow"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mlflow: sqlite:///")  # one line, no MLflow chatter
    assert (smoke_run.out / "mlflow.db").exists() and (smoke_run.out / "mlartifacts").is_dir()
    assert list(tmp_path.iterdir()) == []


def test_without_mlflow_one_line_and_exit_2(smoke_run, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)  # import mlflow -> ImportError
    assert main(["export", str(smoke_run.out), "--mlflow"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "scalinglab: error: export: --mlflow needs mlflow, which is not installed; pip install 'scalinglab[mlflow]'"
    )
