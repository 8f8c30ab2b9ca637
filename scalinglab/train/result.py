"""The result of one trial: one schema, whoever trained it.

Every runner (the built-in loop, the batched group trainer, a user's function or command) and every
backend that has to report a trial it could not run returns a dict made by `new_result` and filled in.
The store, the search, the fits and the report read only these keys, so none of them needs to know
which runner ran a trial.

- status: "ok" | "diverged" (a non-finite loss: a result, kept out of fits) | "failed" (an exception,
  a crashed command, a lost worker: `--retry-failed` runs it again).
- min_dev_error: the value the study minimises, on dev: an error rate, bits per symbol, or a user
  metric turned into an error (`scalinglab.metric.Metric.to_error`); the user's raw value is kept
  under "metric_value" when it differs.
- history: one dict per epoch (or per `trial.report` call) with at least "epoch" and "dev_error".
- min_dev_top5_error (and "dev_top5_error" per epoch): only for classification with many classes
  (train/trial.py TOP5_MIN_CLASSES), trained by the built-in loop; kept in the result JSON, no column.
"""

from __future__ import annotations

STATUSES = ("ok", "diverged", "failed")


def new_result(trial_id: str, device: str | None) -> dict:
    """A result that says "failed" until a runner fills it in."""
    return {
        "id": trial_id,
        "status": "failed",
        "min_dev_error": None,
        "best_epoch": None,
        "epochs": 0,
        "final_train_error": None,
        "final_train_loss": None,
        "test_error": None,
        "params": None,
        "train_flops_per_example": None,
        "train_flops": None,
        "history": [],
        "error": None,
        "device": device,
        "wall_time": None,
    }


def failed_result(trial_id: str, reason: str, device: str | None = None, traceback: str | None = None) -> dict:
    """A trial that could not be run or did not finish, with the reason shown by `status`."""
    out = new_result(trial_id, device)
    out["error"] = reason
    if traceback:
        out["traceback"] = traceback
    return out
