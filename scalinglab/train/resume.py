"""Rung snapshots: a survivor of successive halving goes on from its rung instead of from scratch.

A rung's trial (search/halving.py) is the first epochs of its candidate's full trial, so when it ends
at its budget the trainer leaves the model's whole training state here (weights, optimizer moments
and step count, the data order's generator, history, best state, patience counter), keyed by the id of
the full trial it is the prefix of; when that trial comes to be trained in this process, the trainer
takes the snapshot and trains only the remaining epochs. The result is the one training from scratch
gives (the same updates in the same order, up to floating-point reassociation as in a group), so the
trial stays a pure function of its spec: a snapshot is only a saving, held in memory, and a trial that
finds none (a resumed study, another worker process, a Ray node) trains from scratch.

Format, per model, shared by `train/trial.py` and `train/batched.py`: {"state": {name: tensor}
(parameters and floating buffers), "opt": {"t": steps, "m": [per parameter], "v": [...] or None},
"gen": generator state, "perm", "pos", "history", "best", "best_epoch", "since", "best_state",
"steps"}, every tensor a CPU copy.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

MAX_BYTES = 256 << 20  # the oldest snapshots go beyond this (the default study's ~100 hold a few MB)
_SNAPS: OrderedDict[str, tuple[dict, int]] = OrderedDict()  # full trial id -> (snapshot, bytes)


def continuation_id(spec: dict) -> str | None:
    """Id of the full trial that `spec` is a rung of (None: not a rung)."""
    from scalinglab.train.trial import trial_id  # (trial.py imports this module)

    rung = spec.get("rung")
    if not rung or "of" not in rung:
        return None
    full = copy.deepcopy(spec)
    del full["rung"]
    full["train"]["max_epochs"] = rung["of"]
    return trial_id(full)


def wants_snapshot(spec: dict, status: str) -> bool:
    """A rung that ended well: at its budget (its full trial goes on from there), or stopped early by
    patience (its full trial would have stopped at the same epoch: it only evaluates)."""
    return status == "ok" and continuation_id(spec) is not None


def finished(snap: dict | None, spec: dict) -> bool:
    """The snapshot's run had already stopped early: nothing is left to train."""
    return bool(snap) and snap["since"] >= spec["train"]["patience"]


def _bytes(x) -> int:
    if hasattr(x, "element_size"):
        return x.numel() * x.element_size()
    if isinstance(x, dict):
        return sum(_bytes(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return sum(_bytes(v) for v in x)
    return 0


def save(spec: dict, snap: dict) -> None:
    _SNAPS[continuation_id(spec)] = (snap, _bytes(snap))
    while sum(b for _, b in _SNAPS.values()) > MAX_BYTES and len(_SNAPS) > 1:
        _SNAPS.popitem(last=False)


def take(spec: dict) -> dict | None:
    """The snapshot this trial can go on from (removed: one continuation per rung), or None."""
    from scalinglab.train.trial import trial_id

    if spec.get("rung") or spec.get("aux") or not _SNAPS:
        return None
    return _SNAPS.pop(trial_id(spec), (None, 0))[0]


def peek(spec: dict) -> dict | None:
    """As `take`, but the snapshot stays (to sort a group's models by where they start)."""
    from scalinglab.train.trial import trial_id

    if spec.get("rung") or spec.get("aux") or not _SNAPS:
        return None
    return _SNAPS.get(trial_id(spec), (None, 0))[0]


def clear() -> None:
    _SNAPS.clear()
