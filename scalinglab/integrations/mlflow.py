"""MLflow: a study folder as MLflow runs, read from the store and summary.json only.

    from scalinglab.integrations.mlflow import export_study
    export_study("runs/smoke")                      # sqlite:///runs/smoke/mlflow.db
    export_study("runs/smoke", "http://mlflow:5000")

The study is one parent run in experiment `scalinglab-<study>`: config.json, summary.json and
report.html as artifacts, the fitted exponents and the floor as metrics. Each trial is a child run:
its spec flattened as params (`train.lr`, `model.size.width`, ...), its per-epoch history as metrics
stepped by epoch, its final numbers as metrics, its status as a tag and as the run's status, and its
wall time as the run's duration.

Exporting again adds only what is new: every run is tagged with its id (`scalinglab.trial_id`, the
hash of the spec; the parent with `scalinglab.study_key`), so a second export finds them and skips
them. A trial whose stored row changed since (a failed trial run again with `--retry-failed`) is
replaced; a child left half-written by an interrupted export (still RUNNING) is replaced too.
Needs `pip install 'scalinglab[mlflow]'`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
import warnings
from pathlib import Path

# MLflow's batch limits (log_batch): per call at most 1000 metrics, 100 params, 100 tags
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
TRIAL_METRICS = {
    "min_dev_error": "min_dev_error",
    "test_error": "test_error",
    "final_train_error": "final_train_error",
    "final_train_loss": "final_train_loss",
    "params": "n_params",
    "train_flops": "train_flops",
    "train_flops_per_example": "train_flops_per_example",
    "wall_time": "wall_time_s",
    "best_epoch": "best_epoch",
    "epochs": "epochs",
    "steps": "steps",
}


def default_uri(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / 'mlflow.db').resolve()}"


def flatten(d: dict, prefix: str = "") -> dict[str, str]:
    """{"train": {"lr": 0.003}} -> {"train.lr": "0.003"}; lists as JSON (MLflow params are text)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return out


def _finite(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def study_metrics(summary: dict) -> dict[str, float]:
    """The fitted numbers of summary.json worth a metric: exponents, their intervals, the floor."""
    from scalinglab.report.data import comparison_exponent, factor_levels

    m: dict[str, float | None] = {}
    lc = summary.get("learning_curve") or {}
    m["exponent"] = lc.get("exponent")
    lo, hi = (lc.get("exponent_ci") or [None, None])[:2]
    m["exponent_ci_lo"], m["exponent_ci_hi"] = lo, hi
    fl = summary.get("floor") or {}
    m["floor"] = fl.get("value")
    flo, fhi = (fl.get("ci90") or fl.get("ci") or [None, None])[:2]
    m["floor_ci_lo"], m["floor_ci_hi"] = flo, fhi
    m["model_size_exponent"] = (summary.get("model_size_law") or {}).get("exponent")
    for level in factor_levels(summary):
        e = comparison_exponent(summary, level) or {}
        m[f"exponent.{level}"] = e.get("exponent")
    for p in lc.get("predictions") or []:
        m[f"predicted_error.m{p.get('data_size')}"] = p.get("value")
    t = summary.get("trials") or {}
    for k in ("total", "ok", "diverged", "failed"):
        m[f"trials_{k}"] = t.get(k, 0 if k != "total" else None)
    m["wall_time_s"] = summary.get("wall_time_s")
    return {k: f for k, v in m.items() if (f := _finite(v)) is not None}


@contextlib.contextmanager
def _quiet():
    """MLflow and alembic log INFO lines and warnings (database set-up, deprecations) that have no
    place in our CLI's output: silence them while exporting."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic", "sqlalchemy")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _chunks(xs: list, n: int):
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


def _log(client, run_id, metrics=(), params=(), tags=()):
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        client.log_batch(run_id, metrics=metrics[:MAX_METRICS], params=params[:MAX_PARAMS], tags=tags[:MAX_TAGS])
        metrics, params, tags = metrics[MAX_METRICS:], params[MAX_PARAMS:], tags[MAX_TAGS:]


def _search(client, exp_id: str, filt: str) -> list:
    from mlflow.entities import ViewType

    runs, token = [], None
    while True:
        page = client.search_runs(
            [exp_id], filter_string=filt, run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _experiment(client, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    loc = None
    if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the working directory
        loc = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
    return client.create_experiment(name, artifact_location=loc)


def _trial_run(client, exp_id: str, parent_id: str, study: str, row: dict) -> None:
    from mlflow.entities import Metric, Param, RunStatus, RunTag

    from scalinglab.report.data import size_label

    spec, result, tags = json.loads(row["spec"]), json.loads(row["result"]), json.loads(row["tags"])
    end = int(row["finished_at"] * 1000)
    start = end - int(1000 * (_finite(row["wall_time"]) or 0.0))
    name = f"m={row['data_size']} {size_label(spec['model'].get('size', {}))} seed {row['seed']}"
    run_tags = {
        "mlflow.parentRunId": parent_id,
        "mlflow.runName": name,
        "scalinglab.study": study,
        "scalinglab.trial_id": row["id"],
        "scalinglab.finished_at": repr(row["finished_at"]),
        "scalinglab.status": row["status"],
        "status": row["status"],
    }
    if row.get("device"):
        run_tags["device"] = str(row["device"])
    if row.get("error"):
        run_tags["error"] = str(row["error"])[:5000]
    run_tags.update({f"scalinglab.search.{k}": str(v) for k, v in tags.items()})
    run = client.create_run(exp_id, start_time=start, tags=run_tags, run_name=name)
    rid = run.info.run_id
    metrics = [
        Metric(key, f, end, 0)
        for k, key in TRIAL_METRICS.items()
        if (f := _finite(result.get(k, row.get(k)))) is not None
    ]
    metrics += [
        Metric(k, f, start + i, int(h.get("epoch", i + 1)))  # one point per epoch, step = epoch
        for i, h in enumerate(result.get("history") or [])
        for k, v in h.items()
        if k != "epoch" and (f := _finite(v)) is not None
    ]
    params = [Param(k, v[:6000]) for k, v in flatten(spec).items()]
    _log(client, rid, metrics, params, [RunTag("mlflow.note.content", f"trial {row['id']} of {study}")])
    status = RunStatus.to_string(RunStatus.FAILED if row["status"] == "failed" else RunStatus.FINISHED)
    client.set_terminated(rid, status=status, end_time=end)


def export_study(folder, uri: str | None = None, *, study: str | None = None) -> dict:
    """Log the study in `folder` to MLflow at `uri` (default: sqlite beside the study). Returns
    {"uri", "experiment", "experiment_id", "parent_run_id", "added", "replaced", "skipped"}."""
    from scalinglab.errors import UserError
    from scalinglab.store import Store

    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise UserError(
            "export: --mlflow needs mlflow, which is not installed; pip install 'scalinglab[mlflow]'"
        ) from None
    folder = Path(folder)
    with Store.open_existing(folder) as store:
        studies = store.studies()
        if not studies:
            raise UserError(f"{folder}: the store holds no study yet; run `scalinglab run` first")
        names = [s["name"] for s in studies]
        name = study or names[0]
        if name not in names:
            raise UserError(f"{folder}: study: given {name!r}; allowed: {', '.join(names)}")
        srow = next(s for s in studies if s["name"] == name)
        df = store.frame(name, with_json=True)
    summary_path, report_path = folder / "summary.json", folder / "report.html"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    uri = uri or default_uri(folder)
    key = f"{name}@{srow['started_at']!r}"  # one study in one store: its name and when it began

    with _quiet():
        from mlflow.entities import Metric, RunStatus, RunTag
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        exp_id = _experiment(client, f"scalinglab-{name}", uri)
        parents = _search(client, exp_id, f"tags.`scalinglab.study_key` = '{key}'")
        if parents:
            parent_id = parents[0].info.run_id
        else:
            run = client.create_run(
                exp_id,
                start_time=int(srow["started_at"] * 1000),
                run_name=name,
                tags={
                    "scalinglab.study_key": key,
                    "scalinglab.study": name,
                    "scalinglab.folder": str(folder.resolve()),
                    "scalinglab.source": str(srow.get("source") or ""),
                },
            )
            parent_id = run.info.run_id
        # the parent's metrics, only where they changed (a second export adds no history points)
        old = client.get_run(parent_id).data.metrics
        now = int(time.time() * 1000)
        new = [Metric(k, v, now, 0) for k, v in study_metrics(summary).items() if old.get(k) != v]
        tags = [RunTag(f"scalinglab.info.{k}", str(v)[:5000]) for k, v in (srow.get("info") or {}).items()]
        _log(client, parent_id, new, [], tags)
        client.log_dict(parent_id, srow["config"], "config.json")
        for p in (summary_path, report_path):
            if p.exists():
                client.log_artifact(parent_id, str(p))

        children = {}
        for r in _search(client, exp_id, f"tags.`mlflow.parentRunId` = '{parent_id}'"):
            tid = r.data.tags.get("scalinglab.trial_id")
            if tid is None or tid in children or r.info.status == "RUNNING":  # half-written: redo
                client.delete_run(r.info.run_id)
            else:
                children[tid] = r
        added = replaced = skipped = 0
        for row in df.to_dict("records"):
            old_run = children.get(row["id"])
            if old_run is not None and old_run.data.tags.get("scalinglab.finished_at") == repr(row["finished_at"]):
                skipped += 1
                continue
            if old_run is not None:  # the stored row was replaced since (a failed trial run again)
                client.delete_run(old_run.info.run_id)
                replaced += 1
            else:
                added += 1
            _trial_run(client, exp_id, parent_id, name, row)
        client.set_terminated(
            parent_id, status=RunStatus.to_string(RunStatus.FINISHED), end_time=int(srow["updated_at"] * 1000)
        )
    return {
        "uri": uri,
        "experiment": f"scalinglab-{name}",
        "experiment_id": exp_id,
        "parent_run_id": parent_id,
        "added": added,
        "replaced": replaced,
        "skipped": skipped,
    }
