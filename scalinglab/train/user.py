"""The user's own training as the trial: a Python function or a command (docs/trainers.md).

scalinglab decides which trials run and stores them; the user's code trains one. A spec of such a
trial carries a "trainer" entry (what defines the trial, hashed into its id: the function's import
path or the command's argument template, a user-set `version`, and how the metric turns into an
error) and an "env" entry (where it runs: the study file's folder, the per-trial work folders; not
hashed). The user's code itself is not hashed: bump `version` when a change to it makes earlier
trials incomparable.

Function: `train(trial) -> {"dev": float, ...}`; `trial.report(epoch=, dev=, ...)` records history.
Command: run without a shell, placeholders such as `{data_size}` filled in; it prints JSON lines
(`{"epoch": 3, "dev": 0.21}`) and a final `{"dev": ...}`, or writes `{workdir}/metrics.json`.
Either way a result in the one schema of `train/result.py` comes back; a problem of the user's code
is a "failed" trial with its reason (and traceback or stderr tail), never a crash of the study.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from scalinglab.errors import UserError
from scalinglab.metric import Metric
from scalinglab.train.result import new_result

# Placeholders every command may use; the size knobs and hyperparameters of the study add theirs.
FIXED_PLACEHOLDERS = ("data_size", "indices_file", "indices_npy", "seed", "workdir", "device", "trial_id")
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
RETURN_KEYS = ("dev", "test", "train", "params", "flops")
STDERR_TAIL = 4000  # characters of a failed command's stderr kept in the store


def parse_timeout(v) -> float | None:
    """ "2h", "30m", "90s", "1.5h" or a number of seconds -> seconds (None: no limit)."""
    if v is None:
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        s = float(v)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|h|d)?\s*", str(v))
        if not m:
            raise ValueError(f'given {v!r}; allowed: seconds or a duration such as "90s", "30m", "2h"')
        s = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
    if not s > 0:
        raise ValueError(f"given {v!r}; allowed: a positive duration")
    return s


# --- the trial a user function sees ---------------------------------------------------------------


class StopTrial(Exception):
    """Raised by nobody in scalinglab; a trainer may raise it after `should_stop()` (it ends the trial
    as ok with what was reported so far)."""


class Trial:
    """What one run of the user's trainer gets (Optuna's `trial`, Ray Tune's `session`, for one point
    of a learning curve).

    data_size: examples in this trial's training subset; indices: their positions in the user's pool
    (a read-only int64 array: the first data_size entries of the study's fixed permutation);
    model_size: the size dict of [model] sizes; hparams: lr, weight_decay, batch_size, optimizer,
    momentum, max_epochs, patience and the study's own [train.hparams]; seed; device ("cpu"/"cuda");
    workdir: a folder of this trial's own (checkpoints, logs); id: the trial id.
    """

    def __init__(self, spec: dict, device: str, workdir: Path, indices):
        from scalinglab.train.trial import trial_id

        self.id = trial_id(spec)
        self.data_size = int(spec["data_size"])
        self.indices = indices
        self.model_size = dict(spec["model"]["size"])
        self.hparams = dict(spec["train"])
        self.seed = int(spec["seed"])
        self.device = device
        self.workdir = workdir
        self.history: list[dict] = []
        self._stop = False
        # a rung of successive halving (search/halving.py): stop after this many reported epochs
        self.budget = (spec.get("rung") or {}).get("epochs")

    def report(self, epoch: int | None = None, dev: float | None = None, **more) -> None:
        """Record one evaluation (per epoch, or per N steps): stored as the trial's history, plotted in
        the report. Values must be JSON numbers or strings."""
        row = {"epoch": int(epoch) if epoch is not None else len(self.history) + 1}
        if dev is not None:
            row["dev"] = float(dev)
        row.update(more)
        self.history.append(row)

    def should_stop(self) -> bool:
        """True when the search wants no more training of this trial: stop and return what you have.
        A rung of successive halving (the Hestness search with `prune = true`) says so once `report`
        has been called for its budget of epochs (also `hparams["max_epochs"]`); a survivor is run
        again with the full budget as its own trial."""
        return self._stop or (self.budget is not None and len(self.history) >= self.budget)

    @property
    def best_dev(self) -> float | None:
        """The best reported dev value so far (min; for a metric to maximise, the study converts)."""
        devs = [r["dev"] for r in self.history if "dev" in r]
        return min(devs) if devs else None

    def __repr__(self):
        return (
            f"Trial(data_size={self.data_size}, model_size={self.model_size}, seed={self.seed}, hparams={self.hparams})"
        )


def _metric(spec: dict) -> Metric:
    m = spec["trainer"].get("metric") or {}
    return Metric(name=m.get("name", "error"), goal=m.get("goal", "min"), best=float(m.get("best", 1.0)))


def _workdir(spec: dict, tid: str) -> Path:
    root = (spec.get("env") or {}).get("trials_dir")
    root = Path(root) if root else Path(tempfile.gettempdir()) / "scalinglab-trials"
    d = root / tid
    d.mkdir(parents=True, exist_ok=True)
    return d


def _finish(out: dict, spec: dict, final: dict, history: list[dict]) -> dict:
    """Fill `out` from the trainer's final metrics and history (raises ValueError for bad values)."""
    metric = _metric(spec)
    if not isinstance(final, dict):
        raise ValueError(
            f'the trainer returned {type(final).__name__}; allowed: a dict with a "dev" value, e.g. {{"dev": 0.12}}'
        )
    if "dev" not in final:
        raise ValueError(
            f'the trainer returned no "dev" value (keys: {sorted(final) or "none"}); '
            f'allowed: a dict with "dev" and optionally {", ".join(RETURN_KEYS[1:])}'
        )
    try:
        out["min_dev_error"] = metric.to_error(final["dev"])
        for key, col in (("test", "test_error"), ("train", "final_train_error")):
            if final.get(key) is not None:
                out[col] = metric.to_error(final[key])
    except (TypeError, ValueError) as e:
        raise ValueError(f"the trainer returned {e}") from None
    if metric.goal == "max":
        out["metric_value"] = float(final["dev"])
    if final.get("params") is not None:
        out["params"] = int(final["params"])
    if final.get("flops") is not None:
        out["train_flops"] = float(final["flops"])
    hist = []
    for row in history:
        row = dict(row)
        if isinstance(row.get("dev"), (int, float)) and math.isfinite(row["dev"]):
            e = row["dev"] if metric.goal == "min" else metric.best - row["dev"]
            row["dev_error"] = float(e)
        hist.append(row)
    out["history"] = hist
    out["epochs"] = len(hist)
    scored = [r for r in hist if "dev_error" in r]
    if scored:
        out["best_epoch"] = min(scored, key=lambda r: r["dev_error"])["epoch"]
    out["extra"] = {k: v for k, v in final.items() if k not in RETURN_KEYS and _jsonable(v)}
    out["status"] = "ok"
    return out


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def run_user_trial(spec: dict, device: str = "cpu") -> dict:
    """Run one trial of a user trainer (function or command); never raises for a problem of the
    user's code (a "failed" result with the reason)."""
    from scalinglab.data.indices import nested_indices
    from scalinglab.train.trial import trial_id

    t0 = time.perf_counter()
    tid = trial_id(spec)
    out = new_result(tid, device)
    try:
        workdir = _workdir(spec, tid)
        trial = Trial(spec, device, workdir, nested_indices(spec["data"], spec["data_size"]))
        if "function" in spec["trainer"]:
            final = _call_function(spec, trial)
        else:
            final = _run_command(spec, trial)
        _finish(out, spec, final, trial.history)
    except _Failed as e:
        out["error"], out["traceback"] = str(e), e.detail
    except Exception as e:  # the user's function raised: a failed trial, the study goes on
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc(limit=-8)
    out["wall_time"] = time.perf_counter() - t0
    return out


class _Failed(Exception):
    def __init__(self, msg: str, detail: str | None = None):
        super().__init__(msg)
        self.detail = detail


# --- a function ---------------------------------------------------------------------------------


def load_function(ref: str, base_dir: str | None):
    """The trainer function named `ref` ("module:function"), checked to take one argument (the trial)."""
    from scalinglab.usercode import import_object

    fn = import_object(ref, [base_dir] if base_dir else [], field="train.function")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn
    try:
        sig.bind(object())
    except TypeError:
        raise UserError(
            f"train.function: given {ref!r} with signature {sig}; allowed: a function of one "
            f'argument, the trial: def train(trial): ... return {{"dev": ...}}'
        ) from None
    return fn


def _call_function(spec: dict, trial: Trial) -> dict:
    fn = load_function(spec["trainer"]["function"], (spec.get("env") or {}).get("base_dir"))
    try:
        return fn(trial)
    except StopTrial:
        if trial.best_dev is None:
            raise
        return {"dev": trial.best_dev}


# --- a command ----------------------------------------------------------------------------------


def placeholders(template) -> set[str]:
    return {m for a in template for m in PLACEHOLDER.findall(a)}


def known_placeholders(size_keys, hparam_keys) -> list[str]:
    return list(FIXED_PLACEHOLDERS) + sorted(set(size_keys) | set(hparam_keys))


def _fill(template, values: dict) -> list[str]:
    return [PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), a) for a in template]


def die_with_parent():
    """In a child process (a command before exec, a pool worker): the kernel kills it when its parent
    dies, kill -9 included (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: Ctrl-C still kills the child's process group (see _run_command)
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _run_command(spec: dict, trial: Trial) -> dict:
    tr = spec["trainer"]
    env = spec.get("env") or {}
    wd = trial.workdir
    values = {
        "data_size": trial.data_size,
        "seed": trial.seed,
        "workdir": str(wd),
        "device": trial.device,
        "trial_id": trial.id,
        **trial.model_size,
        **trial.hparams,
    }
    used = placeholders(tr["command"])
    if "indices_file" in used:  # plain text, one index per line: readable from any language
        (wd / "indices.txt").write_text("\n".join(map(str, trial.indices.tolist())) + "\n")
        values["indices_file"] = str(wd / "indices.txt")
    if "indices_npy" in used:
        import numpy as np

        np.save(wd / "indices.npy", trial.indices)
        values["indices_npy"] = str(wd / "indices.npy")
    try:
        return _launch(_fill(tr["command"], values), tr.get("timeout"), env, trial)
    finally:  # the subset is reproducible from the spec: do not keep a copy per trial
        for f in ("indices.txt", "indices.npy"):
            (wd / f).unlink(missing_ok=True)


def _launch(args: list[str], timeout: float | None, env: dict, trial: Trial) -> dict:
    wd = trial.workdir
    metrics_file = wd / "metrics.json"
    metrics_file.unlink(missing_ok=True)  # a rerun must not read a previous attempt's metrics
    cenv = {**os.environ, "SCALINGLAB_TRIAL_ID": trial.id, "SCALINGLAB_WORKDIR": str(wd), "PYTHONUNBUFFERED": "1"}
    stderr = open(wd / "stderr.txt", "w+")
    try:
        proc = subprocess.Popen(
            args,
            cwd=env.get("base_dir") or None,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=cenv,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
    except OSError as e:
        stderr.close()
        raise _Failed(f"command {args[0]!r} could not be started ({type(e).__name__}: {e})") from None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        reader.join(5)
        stderr.close()
        raise _Failed(
            f"timeout: the command ran past {timeout:g} s (train.timeout) and was killed", _tail(wd / "stderr.txt")
        ) from None
    except BaseException:  # Ctrl-C, or the backend shutting down: the child goes with us
        _kill_group(proc)
        stderr.close()
        raise
    reader.join()
    stderr.close()
    (wd / "stdout.txt").write_text("".join(lines))
    if proc.returncode != 0:
        tail = _tail(wd / "stderr.txt")
        last = tail.strip().splitlines()[-1] if tail.strip() else "(no stderr)"
        raise _Failed(f"command exited with code {proc.returncode}: {last[:300]}", tail)
    final, bad = None, None
    for i, line in enumerate(lines, 1):
        s = line.strip()
        if not s.startswith("{"):
            continue  # the script's own prints
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            bad = bad or f"malformed metric JSON on stdout line {i} ({e.msg}): {s[:120]}"
            continue
        if not isinstance(obj, dict):
            continue
        if "epoch" in obj:
            trial.report(**obj)
        elif "dev" in obj:
            final = obj
    if metrics_file.exists():
        try:
            final = json.loads(metrics_file.read_text())
        except json.JSONDecodeError as e:
            raise _Failed(f"malformed {metrics_file.name} ({e.msg})", _tail(wd / "stderr.txt")) from None
    if final is None:
        raise _Failed(
            bad
            or f'no final metric: the command must print a JSON line such as {{"dev": 0.12}} or write {metrics_file}',
            _tail(wd / "stderr.txt"),
        )
    return final


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-STDERR_TAIL:]
    except OSError:
        return ""
