"""`kind = "capacity"`: how many parameters does each depth need to learn a task?

For every value v of a data option (`search.vary`, e.g. parity's bits n, `search.values`) and every
depth in `model.depths`, the widths of `model.widths` (channels for cnn1d) are tried smallest first,
each with all seeds; the first width whose median over seeds of the min dev error is at most
`search.target` is the answer for (v, depth), and the wider ones are never trained. Every model
trains on min(data.sizes' largest, the train pool at v): for parity's cube, every input.
(analysis/capacity.py turns the answers into parameters-needed-vs-v fits.)

Like the other searches, `next_trials` is a pure function of the study and the stored results, so a
killed run resumes where it stopped.
"""

from __future__ import annotations

import statistics

from scalinglab.config import Study
from scalinglab.search.grid import base_spec
from scalinglab.train.trial import trial_id


def trial_error(result: dict | None) -> float:
    """A trial's min dev error; a diverged or failed trial counts as not learned (1.0)."""
    if not result or result.get("status") != "ok" or result.get("min_dev_error") is None:
        return 1.0
    return float(result["min_dev_error"])


class CapacitySearch:
    def __init__(self, study: Study):
        from scalinglab.data.registry import pool_size
        from scalinglab.search.arch import width_knob

        self.study, self.cfg = study, study.search
        self.knob = width_knob(study.model.family)
        self.widths = sorted(study.model.widths or study.model.channels or ())
        self.depths = list(study.model.depths)
        largest = study.sizes()[-1]
        opts = study.data.options
        self.n = {v: min(largest, pool_size(study.data.name, {**opts, self.cfg.vary: v})) for v in self.cfg.values}

    def spec(self, v: int, depth: int, width: int, seed: int) -> dict:
        spec = base_spec(self.study, self.n[v], {self.knob: width, "depth": depth}, seed)
        spec["data"]["options"][self.cfg.vary] = v
        return spec

    def rung(self, v: int, depth: int, width: int) -> list[tuple[dict, dict]]:
        tags = {"stage": "capacity", self.cfg.vary: v, "depth": depth, "width": width}
        return [(self.spec(v, depth, width, s), dict(tags)) for s in range(self.study.seeds)]

    def reached(self, rung, results: dict) -> bool:
        return statistics.median(trial_error(results.get(trial_id(s))) for s, _ in rung) <= self.cfg.target

    def _walk(self, results: dict):
        """Per (v, depth): the rungs planned so far and whether the next one is still to run."""
        for v in self.cfg.values:
            for d in self.depths:
                for w in self.widths:
                    rung = self.rung(v, d, w)
                    done = all(trial_id(s) in results for s, _ in rung)
                    yield rung, done
                    if not done or self.reached(rung, results):
                        break

    def next_trials(self, results: dict) -> list[tuple[dict, dict]]:
        return [t for rung, done in self._walk(results) if not done for t in rung]

    def planned(self, results: dict) -> list[tuple[dict, dict]]:
        return [t for rung, _ in self._walk(results) for t in rung]

    def estimate_total(self) -> int:
        """At most every width for every (v, depth); the walk usually stops earlier."""
        return len(self.cfg.values) * len(self.depths) * len(self.widths) * self.study.seeds
