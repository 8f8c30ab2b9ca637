"""The auxiliary-data weighting study: every data size x auxiliary weight w x model size x seed.

Each trial trains on the target subset plus the auxiliary set (`[aux]`), the auxiliary examples
weighing w in the loss (scalinglab/train/trial.py); dev and test are the target's. The analysis
(scalinglab/analysis/weighting.py) picks w on the dev set per model size and reports test error.
"""

from __future__ import annotations

import json

from scalinglab.config import Study
from scalinglab.search.grid import FixedPlan, base_spec


def aux_part(study: Study, data_size: int, weight: float) -> dict:
    """The spec's "aux" entry for one target data size and weight."""
    a = study.aux
    return {
        "data": {"name": a.name, "options": dict(a.options), "split_seed": a.split_seed},
        "size": a.n_aux(data_size),
        "weight": float(weight),
    }


def plan_weighting(study: Study) -> list[tuple[dict, dict]]:
    """Smallest data first; within a data size, smallest model first, then w, then seed."""
    out = []
    for n in study.sizes():
        for size in study.model.size_grid():
            for w in study.aux.weights:
                for seed in range(study.seeds):
                    spec = base_spec(study, n, size, seed)
                    spec["aux"] = aux_part(study, n, w)
                    out.append((spec, {"stage": "weighting", "weight": json.dumps(float(w))}))
    return out


class WeightingSearch(FixedPlan):
    def __init__(self, study: Study):
        super().__init__(plan_weighting(study))
