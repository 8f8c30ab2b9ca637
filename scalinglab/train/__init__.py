"""Training: one pure function `run_trial(spec) -> result` that every backend schedules."""

from scalinglab.train.trial import resolve_device, run_trial, trial_id

__all__ = ["resolve_device", "run_trial", "trial_id"]
