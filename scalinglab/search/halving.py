"""Successive halving for the Hestness search (Li et al.'s Hyperband / ASHA, inside a scaling study).

A rung trains a candidate for a short budget of epochs (a fraction of `max_epochs`; an epoch is one
pass over the subset, so the budget in steps grows with the subset size); only the best fraction 1/eta
goes on to the next rung, and the last survivors train with the full budget, exactly as without
pruning.

What the trial id covers: a rung's trial is its candidate's spec with `train.max_epochs` set to the
rung budget and a `rung` entry naming it, so it is a trial of its own, stored and skipped on resume
like any other. Training is a prefix of the full run (the same init, data order and patience; only
the stop differs), so the rung's result is the full trial's first epochs, and the full trial of a
survivor has the very spec (and id) of the unpruned search's trial: a pruned and an unpruned study in
one folder share it. In one process the survivor's full trial goes on from the rung's snapshot
(train/resume.py) and pays only its remaining epochs; elsewhere (a resumed study, another worker) it
trains from scratch, with the same result.
"""

from __future__ import annotations

import copy
import math


def rung_budgets(max_epochs: int, fractions) -> list[int]:
    """Epoch budgets of the rungs below the full budget, increasing, each < max_epochs."""
    out = []
    for f in fractions:
        b = max(1, round(max_epochs * f))
        if b < max_epochs and (not out or b > out[-1]):
            out.append(b)
    return out


def rung_spec(spec: dict, epochs: int) -> dict:
    """The trial that trains `spec` for `epochs` epochs only (its own id; see the module docstring)."""
    out = copy.deepcopy(spec)
    out["train"]["max_epochs"] = int(epochs)
    # the marker (a partial budget, never a best-fit candidate) and the full budget it is a prefix of
    out["rung"] = {"epochs": int(epochs), "of": int(spec["train"]["max_epochs"])}
    return out


def keep_count(n: int, eta: float, at_least: int) -> int:
    """Survivors of a rung of n: the best ceil(n / eta), and never fewer than `at_least` (nor than n)."""
    return min(n, max(at_least, math.ceil(n / eta)))


def best_of(scored: list[tuple], keep: int) -> list:
    """scored: [(error, params, item)] of the trials that finished ok; the `keep` best items (ties to
    fewer parameters, then the earlier item)."""
    return [item for _, _, item in sorted(scored, key=lambda s: (s[0], s[1]))[:keep]]
