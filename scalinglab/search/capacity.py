"""`kind = "capacity"`: how many parameters does each depth need to learn a task?

For every value v of a data option (`search.vary`, e.g. parity's bits n, `search.values`) and every
depth in `model.depths`, the widths of `model.widths` (channels for cnn1d) are tried smallest first,
each with all seeds; the first width whose median over seeds of the min dev error is at most
`search.target` is the answer for (v, depth), and the wider ones are never trained (with
`search.warm_start`, the default, a value's ladder starts near the previous value's answer: `_walk`). Every model
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
        """Yield (rung, done) for every rung planned so far. Per depth, values in order; a value's
        ladder starts one width below the previous value's answer (a value needs at least about what
        the one before needed: this skips the rungs that cannot succeed) and, when that start already
        succeeds, steps down until a width fails, so the answer is still the smallest that succeeds."""
        for d in self.depths:
            prev = None  # index of the previous value's answer
            for v in self.cfg.values:
                start = max(0, prev - 1) if prev is not None and self.cfg.warm_start else 0
                answer, pending = None, False
                i = start
                while 0 <= i < len(self.widths):
                    rung = self.rung(v, d, self.widths[i])
                    done = all(trial_id(s) in results for s, _ in rung)
                    yield rung, done
                    if not done:
                        pending = True
                        break
                    ok = self.reached(rung, results)
                    if ok:
                        answer = i
                    if i <= start and ok and i > 0:  # downwards from a successful start
                        i -= 1
                    elif i < start:  # downwards and it failed: the last success is the answer
                        break
                    elif ok:
                        break
                    else:
                        i += 1
                if pending:
                    break  # the next value's ladder starts from this one's answer
                prev = answer if answer is not None else len(self.widths) - 1

    def next_trials(self, results: dict) -> list[tuple[dict, dict]]:
        return [t for rung, done in self._walk(results) if not done for t in rung]

    def planned(self, results: dict) -> list[tuple[dict, dict]]:
        return [t for rung, _ in self._walk(results) for t in rung]

    def estimate_total(self) -> int:
        """At most every width for every (v, depth); the walk usually stops earlier."""
        return len(self.cfg.values) * len(self.depths) * len(self.widths) * self.study.seeds
