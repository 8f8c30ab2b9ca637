"""Which trials a study runs. `plan(study)` -> list of (spec, tags), the order they should run in."""

from scalinglab.search.grid import base_spec, plan_grid

__all__ = ["base_spec", "plan_grid"]
