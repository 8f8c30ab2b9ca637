"""Which trials a study runs.

A search has `next_trials(results) -> [(spec, tags)]`: what to run next given the finished trials
(trial id -> result). It returns trials already done too when convenient; the runner skips those.
An empty list means the search is finished. Both searches are pure functions of the study and the
store, which is what makes a killed run resumable.
"""

from scalinglab.search.grid import GridSearch, base_spec, plan_grid
from scalinglab.search.hestness import HestnessSearch


def make_search(study):
    if study.search.kind == "capacity":  # smallest width per depth that learns the task (search/capacity.py)
        from scalinglab.search.capacity import CapacitySearch

        return CapacitySearch(study)
    if study.search.kind == "weighting":  # auxiliary-data weighting study (search/weighting.py)
        from scalinglab.search.weighting import WeightingSearch

        return WeightingSearch(study)
    return HestnessSearch(study) if study.search.kind == "hestness" else GridSearch(study)


__all__ = ["GridSearch", "HestnessSearch", "base_spec", "make_search", "plan_grid"]
