"""Registry of model families. A family is a function `(size, input_shape, n_outputs, **opts) -> Module`
whose module has `n_params()` and `forward_flops()` (multiply-adds x 2 per example).

Training FLOPs per example = 3 x forward FLOPs (forward, and a backward that costs about twice the
forward: Kaplan et al. 2020, the usual "6N" rule for dense layers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from scalinglab.errors import UserError


@dataclasses.dataclass(frozen=True)
class FamilyEntry:
    name: str
    build: Callable
    knobs: tuple[str, ...]  # the size knobs, e.g. ("width", "depth")
    options: tuple[str, ...]  # other options, e.g. ("batchnorm",)
    doc: str


FAMILIES: dict[str, FamilyEntry] = {}


def register(name: str, *, knobs: tuple[str, ...], options: tuple[str, ...] = (), doc: str = ""):
    def deco(fn):
        if name in FAMILIES:
            raise ValueError(f"model family {name!r} is registered twice")
        FAMILIES[name] = FamilyEntry(name, fn, knobs, options, doc)
        return fn

    return deco


def family(name: str, where: str = "study") -> FamilyEntry:
    if name not in FAMILIES:
        raise UserError(f"{where}: model.family: given {name!r}; allowed: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def build(name: str, size: dict, input_shape, n_outputs: int, *, init: str | None = None, **options):
    """Build one model; `size` holds the family's knobs, e.g. {"width": 128, "depth": 2}. `init`
    re-initialises its weights (models/knobs.py INITS; None / "default": the framework's own); options
    (batchnorm, activation) go to the family's builder."""
    from scalinglab.models.knobs import apply_init

    if options.get("activation") is None:
        options.pop("activation", None)  # the family's own default (a family without the option too)
    model = family(name).build(size=size, input_shape=tuple(input_shape), n_outputs=n_outputs, **options)
    return apply_init(model, init)


def spec_options(ms: dict) -> dict:
    """The build options of a trial spec's "model" entry. activation and init are in a spec only when a
    study sets them (older specs, and so their trial ids, are unchanged)."""
    return {"batchnorm": ms.get("batchnorm", False), "activation": ms.get("activation"), "init": ms.get("init")}


def build_spec(ms: dict, input_shape, n_outputs: int):
    """Build the model of a trial spec's "model" entry: a registered family, or the user's factory
    ({"factory": "module:function", "sys_path": [...]}, models/factory.py) with measured size and FLOPs."""
    if ms.get("factory"):
        from scalinglab.models import factory

        return factory.build(ms["factory"], ms["size"], input_shape, n_outputs, ms.get("sys_path", ()))
    return build(ms["family"], ms["size"], input_shape, n_outputs, **spec_options(ms))


def describe_spec(ms: dict, input_shape, n_outputs: int) -> dict:
    """`describe` for a trial spec's "model" entry (families and factories alike)."""
    m = build_spec(ms, input_shape, n_outputs)
    fwd = m.forward_flops()
    return {"params": m.n_params(), "forward_flops": fwd, "train_flops_per_example": 3 * fwd}


def describe(name: str, size: dict, input_shape, n_outputs: int, **options) -> dict:
    """Parameter count and FLOPs of a model, without training it."""
    m = build(name, size, input_shape, n_outputs, **options)
    fwd = m.forward_flops()
    return {"params": m.n_params(), "forward_flops": fwd, "train_flops_per_example": 3 * fwd}


def size_label(size) -> str:
    """'width=128,depth=2' from a size dict (or its JSON)."""
    if isinstance(size, str):
        import json

        size = json.loads(size)
    return ",".join(f"{k}={v}" for k, v in size.items())
