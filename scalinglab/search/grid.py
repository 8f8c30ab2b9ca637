"""The plain grid: every data size x every listed model size x every seed."""

from __future__ import annotations

import json

from scalinglab.config import Study


def base_spec(study: Study, data_size: int, size: dict, seed: int, **train_overrides) -> dict:
    """The trial spec for one (data size, model size, seed); the device is not part of it."""
    if study.train.user:
        return _user_spec(study, data_size, size, seed, train_overrides)
    train = study.train.builtin_dict()
    train.update(train_overrides)
    spec = {
        "data": {"name": study.data.name, "options": dict(study.data.options), "split_seed": study.data.split_seed},
        "data_size": int(data_size),
        "model": {"family": study.model.family, "size": dict(size), "batchnorm": study.model.batchnorm},
        "train": train,
        "seed": int(seed),
    }
    for key in ("activation", "init"):  # only when set: older studies keep their trial ids
        if getattr(study.model, key) is not None:
            spec["model"][key] = getattr(study.model, key)
    if study.model.factory is not None:  # byo: the user's factory, and the folder spawned workers import it from
        spec["model"].update(factory=study.model.factory, sys_path=list(study.model.sys_path))
    return spec


def _user_spec(study: Study, data_size: int, size: dict, seed: int, overrides: dict) -> dict:
    """A trial of the user's own trainer (train/user.py): "trainer" defines it (hashed), "env" says where
    it runs (not hashed)."""
    from scalinglab.metric import study_metric

    m = study_metric(study.to_dict())
    return {
        # "unit" is a label, not part of what a trial is
        "data": {
            "name": "indices",
            "options": {k: v for k, v in study.data.options.items() if k != "unit"},
            "split_seed": study.data.split_seed,
        },
        "data_size": int(data_size),
        "model": {"family": "user", "size": dict(size)},
        "train": {**study.train.hparams_dict(), **overrides},
        "seed": int(seed),
        "trainer": {**study.train.trainer_entry(), "metric": {"name": m.name, "goal": m.goal, "best": m.best}},
        "env": {"base_dir": study.train.base_dir},
    }


def level_overrides(study: Study, level) -> tuple[dict, dict]:
    """(train overrides, model overrides) that put a trial at one level of the study's factor."""
    f = study.search.factor
    if f is None:
        return {}, {}
    if f == "batchnorm":
        return {}, {"batchnorm": bool(level)}
    if f in ("activation", "init") and not study.train.user:
        return {}, {f: level}
    return {f: level}, {}  # depth of a built-in family: level_size (it changes the size dict)


def level_size(study: Study, size: dict, level) -> dict:
    """The size dict a trial at `level` trains: factor depth sets the depth knob (and, with
    search.match_params, the width: search/arch.py); other factors leave the size as listed."""
    if study.search.factor != "depth" or study.train.user or level is None:
        return size
    from scalinglab.search.arch import depth_size

    return depth_size(study, size, int(level))


def level_name(level):
    """Factor levels as strings (tags and summary keys are strings)."""
    return None if level is None else level if isinstance(level, str) else json.dumps(level)


def plan_grid(study: Study) -> list[tuple[dict, dict]]:
    """Smallest data first, so early results already give a (short) curve."""
    out = []
    levels = list(study.search.levels) if study.search.factor else [None]
    for n in study.sizes():
        for level in levels:
            tr, mo = level_overrides(study, level)
            for size in study.model.size_grid():
                for seed in range(study.seeds):
                    spec = base_spec(study, n, level_size(study, size, level), seed, **tr)
                    spec["model"].update(mo)
                    out.append((spec, {"stage": "grid", "level": level_name(level)}))
    return out


class FixedPlan:
    """A search whose trials are known up front (grid, weighting): run whatever is not done yet."""

    def __init__(self, trials: list[tuple[dict, dict]]):
        self.trials = trials

    def next_trials(self, results: dict) -> list[tuple[dict, dict]]:
        from scalinglab.train.trial import trial_id

        return [t for t in self.trials if trial_id(t[0]) not in results]

    def planned(self, results: dict) -> list[tuple[dict, dict]]:
        """Every trial the study consists of, given what is done."""
        return self.trials

    def estimate_total(self) -> int:
        return len(self.trials)


class GridSearch(FixedPlan):
    def __init__(self, study: Study):
        super().__init__(plan_grid(study))
