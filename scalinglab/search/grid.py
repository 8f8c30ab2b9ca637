"""The plain grid: every data size x every listed model size x every seed."""

from __future__ import annotations

from scalinglab.config import Study


def base_spec(study: Study, data_size: int, size: dict, seed: int, **train_overrides) -> dict:
    """The trial spec for one (data size, model size, seed); the device is not part of it."""
    train = study.train.model_dump(exclude={"device"})
    train.update(train_overrides)
    return {
        "data": {"name": study.data.name, "options": dict(study.data.options),
                 "split_seed": study.data.split_seed},
        "data_size": int(data_size),
        "model": {"family": study.model.family, "size": dict(size), "batchnorm": study.model.batchnorm},
        "train": train,
        "seed": int(seed),
    }


def plan_grid(study: Study) -> list[tuple[dict, dict]]:
    """Smallest data first, so early results already give a (short) curve."""
    out = []
    for n in study.sizes():
        for size in study.model.size_grid():
            for seed in range(study.seeds):
                out.append((base_spec(study, n, size, seed), {"stage": "grid"}))
    return out
