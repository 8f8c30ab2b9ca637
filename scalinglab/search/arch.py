"""Depth as a factor: the size a trial at one depth level trains, optionally at equal parameters.

`[search] factor = "depth"` sets each trial's depth knob to the level. With `match_params = true` the
width knob (width; channels for cnn1d) is also chosen per level, so a deep-narrow and a shallow-wide
model of one listed size have about the same parameter count: the comparison is then depth vs width
at equal parameters, not "more layers = more parameters". The reference count is that of the listed
size built at the first level's depth; each other level takes the width whose count is nearest.
"""

from __future__ import annotations

import json

from scalinglab.config import Study

_CACHE: dict[str, dict] = {}  # (data, model, size, depth) -> size dict: plans call this per seed


def width_knob(family: str) -> str:
    return "channels" if family == "cnn1d" else "width"


def _params(study: Study, size: dict, shape, n_out) -> int:
    from scalinglab.models import describe_spec
    from scalinglab.search.grid import base_spec

    return describe_spec(base_spec(study, 1, size, 0)["model"], shape, n_out)["params"]


def depth_size(study: Study, size: dict, depth: int) -> dict:
    """`size` at `depth`; with search.match_params, at the width nearest the reference count."""
    out = {**size, "depth": depth}
    if not study.search.match_params:
        return out
    key = json.dumps([study.data.name, study.data.options, study.model.model_dump(), size, depth], sort_keys=True)
    if key in _CACHE:
        return dict(_CACHE[key])
    from scalinglab.data import load

    ds = load(study.data.name, study.data.options)
    knob = width_knob(study.model.family)
    target = _params(study, {**size, "depth": int(study.search.levels[0])}, ds.input_shape, ds.n_classes)
    # parameters grow with width: bisect for the last width at or below the target, then take the nearer
    lo, hi = 1, max(2, int(size.get(knob, 1)))
    while _params(study, {**out, knob: hi}, ds.input_shape, ds.n_classes) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _params(study, {**out, knob: mid}, ds.input_shape, ds.n_classes) <= target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda w: abs(_params(study, {**out, knob: w}, ds.input_shape, ds.n_classes) - target))
    out[knob] = best
    _CACHE[key] = out
    return dict(out)
