"""The trial seam: which runner trains a spec, and the units of work that backends schedule.

Runners, one per kind of trainer, each `(spec, device) -> result` in the one schema of
`train/result.py`:
- "builtin": our training loop for a registered family or a byo factory (`train/trial.py:run_trial`);
- "batched": a group of same-shape built-in specs trained as one stacked model (`train/batched.py`);
- "function" / "command": the user's own training (`train/user.py`).

Backends (in-process, process pool, Ray) only schedule units: `plan_units` cuts the specs into units
(groups for the batched trainer, single specs otherwise) and `run_unit` runs one, in whatever process
the backend chose. Search, store, fits and report never know which runner ran a trial.
"""

from __future__ import annotations


def runner_kind(spec: dict) -> str:
    tr = spec.get("trainer")
    if tr:
        return "function" if "function" in tr else "command"
    return "builtin"


def run_spec(spec: dict, device: str = "cpu") -> dict:
    """Run one trial with the runner its spec names."""
    if runner_kind(spec) == "builtin":
        from scalinglab.train.trial import run_trial

        return run_trial(spec, device)
    from scalinglab.train.user import run_user_trial

    return run_user_trial(spec, device)


def plan_units(specs: list[dict], device: str, batched: bool, max_group: int) -> list[list[dict]]:
    """The units of work: groups from `pack` for built-in specs when batching is on, else single specs."""
    builtin = [s for s in specs if runner_kind(s) == "builtin"]
    if not batched or not builtin:
        return [[s] for s in specs]
    from scalinglab.train.packing import default_memory_budget, pack

    return [[s] for s in specs if runner_kind(s) != "builtin"] + pack(
        builtin, max_group=max_group, memory_budget=default_memory_budget(device)
    )


def run_unit(specs: list[dict], device: str) -> list[dict]:
    """One unit: `run_spec` for a single spec, `run_group` for a group (picklable by name)."""
    if len(specs) == 1:
        return [run_spec(specs[0], device)]
    from scalinglab.train.batched import run_group

    return run_group(specs, device)
