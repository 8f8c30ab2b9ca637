"""Study configuration: a TOML file validated into typed objects.

A study is one declarative file (see `scalinglab/presets/*.toml`). Unknown keys are errors. Every
problem is raised as a one-line `UserError` naming the file, the field, what was given and what is
allowed; `load_study` also checks the size range against the data pool before anything is written.
"""

from __future__ import annotations

import json
import math
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalinglab.errors import UserError, show

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sizes(_Strict):
    """Training-set sizes: `min`/`max`/`factor` (spaced by factor) or an explicit `list`."""

    min: int | None = Field(None, gt=0)
    max: int | None = Field(None, gt=0)
    factor: float = Field(2.0, gt=1.0)
    list: tuple[int, ...] | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.list is not None:
            if self.min is not None or self.max is not None:
                raise ValueError("give either list or min/max, not both")
            if len(self.list) < 2 or any(n <= 0 for n in self.list):
                raise ValueError("list needs at least 2 positive sizes")
            if list(self.list) != sorted(set(self.list)):
                raise ValueError("list must be strictly increasing")
        else:
            if self.min is None or self.max is None:
                raise ValueError("give min and max (or list)")
            if self.min >= self.max:
                raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self

    def values(self) -> list[int]:
        from scalinglab.data.subsets import nested_sizes

        return list(self.list) if self.list is not None else nested_sizes(self.min, self.max, self.factor)


class DataConfig(_Strict):
    name: str
    options: dict = Field(default_factory=dict)
    sizes: Sizes
    split_seed: int = 0  # seed of the stratified permutation that defines the nested subsets


class ModelConfig(_Strict):
    family: str
    widths: tuple[int, ...] | None = None  # mlp
    channels: tuple[int, ...] | None = None  # cnn1d
    depths: tuple[int, ...] = (2,)
    batchnorm: bool = False
    # Hidden activation and weight init of a built-in family (names: models/knobs.py; checked at load).
    # None: the family's own (ReLU, GELU in the transformer) and torch's default init.
    activation: str | None = None
    init: str | None = None
    # Your own model (models/factory.py, scalinglab/byo.py): `factory = "module:function"` sets
    # family = "factory"; `sizes` lists the size dicts explicitly (any family; required for a factory);
    # `sys_path` is the folder the factory module was found in (filled in by the study loader).
    factory: str | None = None
    sizes: tuple[dict, ...] | None = None
    sys_path: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _factory(self):  # byo: a factory and family "factory" go together
        if (self.factory is not None) != (self.family == "factory"):
            raise ValueError(
                'family "factory" needs factory = "module:function", and factory needs family "factory" (or no family)'
            )
        if self.sizes is not None and (not self.sizes or any(not s for s in self.sizes)):
            raise ValueError("sizes must be a non-empty list of non-empty size tables, e.g. [{ width = 32 }]")
        return self

    @field_validator("widths", "channels", "depths")
    @classmethod
    def _positive(cls, v):
        if v is not None and (len(v) == 0 or any(x <= 0 for x in v)):
            raise ValueError("must be a non-empty list of positive integers")
        return v

    def size_grid(self) -> list[dict]:
        """Every size in the grid, as the family's knob dict, smallest first."""
        if self.sizes is not None:  # byo: explicit size dicts, as listed
            return [dict(s) for s in self.sizes]
        if self.family == "user":
            raise ValueError(
                "model.sizes is required with your own trainer, e.g. sizes = [{ width = 64 }, "
                "{ width = 256 }] (each size dict is passed to it)"
            )
        if self.factory is not None:
            raise ValueError("model.sizes is required with a factory, e.g. sizes = [{ width = 32 }, { width = 128 }]")
        knob, values = ("channels", self.channels) if self.family == "cnn1d" else ("width", self.widths)
        if values is None:
            raise ValueError(f"model.{knob} is required for family {self.family!r}")
        return [{knob: v, "depth": d} for d in self.depths for v in values]


class TrainConfig(_Strict):
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    batch_size: int = Field(128, gt=0)
    max_epochs: int = Field(100, gt=0)
    # An "epoch" for early stopping is max(one pass, min_steps_per_epoch steps): a 16-example subset
    # would otherwise get one optimizer step per evaluation.
    min_steps_per_epoch: int = Field(10, gt=0)
    patience: int = Field(10, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Your own training (train/user.py, docs/trainers.md): a function "module:function" or a command
    # (argument list, run without a shell); `version` is hashed into the trial ids (bump it when your
    # code changes what a trial means); `hparams` are fixed values passed to your trainer; `timeout`
    # (commands) is seconds or "90s" / "30m" / "2h". `base_dir` is the study file's folder (filled in
    # by the loader): where the function's module is found and where the command runs.
    function: str | None = None
    command: tuple[str, ...] | None = None
    timeout: float | str | None = None
    version: str = ""
    hparams: dict = Field(default_factory=dict)
    base_dir: str | None = None

    @model_validator(mode="after")
    def _user(self):
        if self.function is not None and self.command is not None:
            raise ValueError("give function or command, not both")
        if self.function is not None and (":" not in self.function or self.function.startswith(":")):
            raise ValueError('function must be "module:function", e.g. "my_train:train"')
        if self.command is not None and (not self.command or not self.command[0]):
            raise ValueError('command must be a non-empty list of arguments, e.g. ["python", "train.py"]')
        if self.timeout is not None:
            if self.command is None:
                raise ValueError("timeout applies to a command; a function runs in scalinglab's process")
            from scalinglab.train.user import parse_timeout

            try:
                parse_timeout(self.timeout)
            except ValueError as e:
                raise ValueError(f"timeout: {e}") from None
        if (self.hparams or self.version) and not self.user:
            raise ValueError("hparams and version are for your own trainer (train.function or train.command)")
        return self

    @property
    def user(self) -> bool:
        """True for the user's own trainer (function or command)."""
        return self.function is not None or self.command is not None

    def trainer_entry(self) -> dict:
        """What defines a user trainer, as hashed into trial ids (not the folder it runs in)."""
        from scalinglab.train.user import parse_timeout

        if self.function is not None:
            return {"function": self.function, "version": self.version}
        return {"command": list(self.command), "timeout": parse_timeout(self.timeout), "version": self.version}

    def hparams_dict(self) -> dict:
        """What a user trainer's `trial.hparams` holds (before the search's overrides)."""
        keep = ("optimizer", "lr", "weight_decay", "momentum", "batch_size", "max_epochs", "patience")
        return {**{k: getattr(self, k) for k in keep}, **self.hparams}

    def builtin_dict(self) -> dict:
        """The built-in loop's settings as they go into its trial specs (unchanged since wave 1)."""
        return self.model_dump(exclude={"device", "function", "command", "timeout", "version", "hparams", "base_dir"})


class MetricConfig(_Strict):
    """`[metric]` of a study with your own trainer: what `dev` is. goal "max" (accuracy, BLEU) is fitted
    as the error best - value (docs/trainers.md)."""

    name: str = Field(min_length=1, max_length=60)
    goal: Literal["min", "max"] = "min"
    random_guess: float | None = Field(None, gt=0)  # the error of guessing (an upper bound of the curve)
    best: float = 1.0  # goal "max": the perfect score (1 for accuracy, 100 for BLEU in percent)
    rate: bool | None = None  # a fraction shown as %; default: true for goal "max" with best 1


FACTORS = ("optimizer", "batchnorm", "lr", "weight_decay", "batch_size", "depth", "activation", "init")
MODEL_FACTORS = ("batchnorm", "depth", "activation", "init")  # levels that change the model, not training


class SearchConfig(_Strict):
    """Which trials to run. `grid`: every listed size x every seed. `hestness`: the procedure of
    Hestness et al. (2017): end points, a Monte Carlo grid per subset, seeds for the promising ones."""

    kind: Literal["grid", "hestness", "weighting", "capacity"] = "grid"  # weighting: needs [aux] (AuxConfig)
    candidates: int = Field(6, gt=0, le=1000)  # candidates per subset, trained with one seed first
    promote: int = Field(2, gt=0)  # the best candidates per subset then get all seeds
    overfit_threshold: float = Field(0.01, ge=0, lt=1)  # "can overfit": final train error at most this
    lrs: tuple[float, ...] | None = None  # learning-rate grid; default train.lr x {1/3, 1, 3}
    weight_decays: tuple[float, ...] = (0.0,)
    size_spread: int = Field(1, ge=0)  # grid steps around the interpolated centre size
    # when a subset's best candidate has the grid's largest (smallest) lr, try that candidate again
    # with the lr one grid ratio further, up to this many steps while it keeps improving (0: never)
    extend_lr: int = Field(2, ge=0, le=10)
    reference: dict | None = None  # the full set's reference model: size knobs and optionally lr
    # a categorical factor compared level by level: one of FACTORS, or with your own trainer also a
    # key of [train.hparams] (checked by Study)
    factor: str | None = None
    levels: tuple | None = None
    # factor "depth": each level's width (channels) is chosen so its model has about the parameters of
    # the same listed size at the first level's depth: depth vs width at equal parameters (search/arch.py)
    match_params: bool = False
    seed: int = 0  # seed of the Monte Carlo sampling
    # kind "capacity" (search/capacity.py): per value of `vary` (a data option, e.g. parity's bits n)
    # and per depth in model.depths, the smallest listed width whose median-over-seeds min dev error
    # is at most `target`; every model trains on the largest data size
    vary: str | None = None
    values: tuple[int, ...] | None = None
    target: float = Field(0.01, gt=0, lt=1)
    warm_start: bool = True  # start each value's width ladder near the previous value's answer
    # successive halving inside the Hestness search (search/halving.py): candidates train for the
    # `rungs` budgets (fractions of max_epochs) first, and only the best 1/eta go on (`--no-prune`: off)
    prune: bool = True
    rungs: tuple[float, ...] = (1 / 6,)
    eta: float = Field(3.0, gt=1)

    @model_validator(mode="after")
    def _check(self):
        if any(not 0 < f < 1 for f in self.rungs) or list(self.rungs) != sorted(set(self.rungs)):
            raise ValueError("rungs: increasing fractions of max_epochs, each in (0, 1)")
        if (self.factor is None) != (self.levels is None):
            raise ValueError("give factor and levels together")
        if self.levels is not None and len(self.levels) < 2:
            raise ValueError("levels needs at least 2 values")
        if self.match_params and self.factor != "depth":
            raise ValueError('match_params applies to factor = "depth"')
        if (self.kind == "capacity") != (self.vary is not None and self.values is not None):
            raise ValueError('kind = "capacity" needs vary (a data option) and values, and they need it')
        if self.kind == "capacity" and self.factor is not None:
            raise ValueError('kind = "capacity" compares the depths in model.depths; give no factor')
        if self.values is not None and (len(self.values) < 2 or list(self.values) != sorted(set(self.values))):
            raise ValueError("values must be at least 2 strictly increasing integers")
        return self

    @field_validator("lrs")
    @classmethod
    def _lrs(cls, v):
        if v is not None and (not v or any(not 0 < x <= 10 for x in v)):
            raise ValueError("a non-empty list of learning rates in (0, 10]")
        return v

    def lr_grid(self, lr: float) -> list[float]:
        return sorted(self.lrs) if self.lrs else [lr / 3, lr, lr * 3]


class AuxConfig(_Strict):
    """Auxiliary training data of another distribution, for a `kind = "weighting"` study (Ng, Machine
    Learning Yearning): each auxiliary example weighs `w` in the loss, target examples weigh 1; dev and
    test stay on the target distribution. The study runs every w x model size x seed at each data size.
    The auxiliary set is the first `size` examples (or `ratio` x the target subset size) of the
    stratified order of `name`'s train pool (with `options`)."""

    name: str
    options: dict = Field(default_factory=dict)
    size: int | None = Field(None, gt=0)  # number of auxiliary examples
    ratio: float | None = Field(None, gt=0)  # or: auxiliary examples per target example
    weights: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    split_seed: int = 0

    @model_validator(mode="after")
    def _check(self):
        if (self.size is None) == (self.ratio is None):
            raise ValueError("give exactly one of size (examples) or ratio (x the target size)")
        if not self.weights or any(not 0 <= w <= 1e3 for w in self.weights):
            raise ValueError("weights must be a non-empty list of numbers in [0, 1000]")
        if list(self.weights) != sorted(set(self.weights)):
            raise ValueError("weights must be strictly increasing")
        return self

    def n_aux(self, data_size: int) -> int:
        return int(self.size) if self.size is not None else max(1, round(self.ratio * data_size))


class ResourcesConfig(_Strict):
    """What one group of trials asks of a Ray cluster (--backend ray; --num-cpus/--num-gpus override)."""

    num_cpus: float | None = Field(None, gt=0)  # default 1
    num_gpus: float | None = Field(None, ge=0)  # fractions share a GPU; default 1 with cuda, else 0

    def options(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None}


# A study name becomes the folder runs/<name>/ and is printed and put in reports: a plain slug only
# (no "/", "..", NUL, absolute paths, 300-character names). `--out` is the way to choose a folder.
NAME_RE = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,99}")
NAME_ALLOWED = (
    "letters, digits, '-', '_' and '.', not starting with '.', at most 100 characters "
    "(choose the output folder with --out)"
)


class Study(_Strict):
    name: str
    description: str = Field("", max_length=10_000)
    seeds: int = Field(3, gt=0, le=100)
    metric: Literal["error"] | MetricConfig = "error"  # a [metric] table with your own trainer
    data: DataConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    search: SearchConfig = SearchConfig()
    aux: AuxConfig | None = None  # auxiliary data of a weighting study
    resources: ResourcesConfig = ResourcesConfig()  # per group on a Ray cluster

    @field_validator("name")
    @classmethod
    def _slug(cls, v):
        if not NAME_RE.fullmatch(v):
            raise ValueError(NAME_ALLOWED)
        return v

    @model_validator(mode="after")
    def _grid(self):
        self.model.size_grid()  # raises when the family's knob is missing
        if (self.search.kind == "weighting") != (self.aux is not None):
            raise ValueError('search.kind = "weighting" needs an [aux] table, and [aux] needs it')
        return self

    def sizes(self) -> list[int]:
        return self.data.sizes.values()

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")


# --- loading -----------------------------------------------------------------------------------


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("scalinglab.presets").iterdir() if p.name.endswith(".toml"))


def preset_text(name: str) -> str:
    return resources.files("scalinglab.presets").joinpath(f"{name}.toml").read_text()


def _field_path(loc) -> str:
    # pydantic names a union's branches in the path ("literal['error']", "MetricConfig"): not a field
    return (
        ".".join(
            str(p)
            for p in loc
            if not str(p).startswith(("function-", "literal[")) and not (isinstance(p, str) and p[:1].isupper())
        )
        or "(top level)"
    )


def _one_line(where: str, err: ValidationError, raw: dict) -> UserError:
    errors = err.errors()
    e = errors[0]
    if e["type"] == "literal_error" and isinstance(e.get("input"), dict) and len(errors) > 1:
        e = errors[1]  # a table where a name or a table is allowed (metric): the table's own error
    field = _field_path(e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    if e["type"] == "extra_forbidden":
        return UserError(
            f"{where}: {field}: unknown key (given {e['input']!r}); see `scalinglab presets` for valid studies"
        )
    if e["type"] == "missing":
        return UserError(f"{where}: {field}: missing; it is required")
    given = e.get("input")
    if isinstance(given, dict):
        key, _, rest = msg.partition(": ")  # a table's validator names the key it refuses ("timeout: ...")
        if rest and key in given:
            return UserError(f"{where}: {field}.{key}: {rest}")
        return UserError(f"{where}: {field}: {msg}")
    return UserError(f"{where}: {field}: given {show(given)}; allowed: {msg}")


def parse_study(text: str, where: str, base_dir=None) -> Study:
    """base_dir: the folder relative data paths and factory modules are found in (default: cwd)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{where}: not valid TOML: {e}") from None
    return validate_study(raw, where, base_dir)


def validate_study(raw: dict, where: str, base_dir=None) -> Study:
    """A study from its raw dict (a parsed TOML file, or what `scalinglab.Study(...)` builds): aliases
    resolved, every value checked, each problem one line naming `where` and the field (UserError)."""
    from scalinglab import byo

    raw = byo.resolve(raw, base_dir, where)  # byo: data kind alias, absolute data path, factory folder
    try:
        study = Study.model_validate(raw)
    except ValidationError as e:
        raise _one_line(where, e, raw) from None
    _check_against_registries(study, where)
    return study


def _check_user_trainer(study: Study, where: str) -> None:
    """Your own trainer: everything that can be known before a trial runs (docs/trainers.md)."""
    user, indices = study.train.user, study.data.name == "indices"
    if user != indices:
        raise UserError(
            f"{where}: "
            + (
                "data.kind: given " + repr(study.data.name) + " with train.function/"
                'command; allowed: "indices" (your code reads the subsets scalinglab picks)'
                if user
                else 'train: data kind "indices" needs your own trainer; allowed: train.function = '
                '"module:function" or train.command = [...]'
            )
        )
    f = study.search.factor
    if f is not None and f not in FACTORS and not (user and f in study.train.hparams):
        raise UserError(
            f"{where}: search.factor: given {f!r}; allowed: {', '.join(FACTORS)}"
            + (", or a key of [train.hparams]" if user else "")
        )
    if isinstance(study.metric, MetricConfig) and not user:
        raise UserError(
            f"{where}: metric: given a [metric] table; allowed: only with your own trainer (the "
            f"built-in data sets measure their own error)"
        )
    if not user:
        return
    if study.model.family != "user":
        raise UserError(
            f"{where}: model.family: given {study.model.family!r} with your own trainer; allowed: "
            f"none (list sizes = [{{ width = 64 }}, ...]; each size dict is passed to your trainer)"
        )
    if f == "batchnorm":
        raise UserError(
            f"{where}: search.factor: given 'batchnorm' with your own trainer; allowed: lr, "
            f"weight_decay, batch_size, optimizer or a key of [train.hparams]"
        )
    if study.aux is not None:
        raise UserError(f"{where}: aux: given with your own trainer; allowed: only with the built-in loop")
    from scalinglab.data.indices import check_options

    check_options(study.data.options, where)
    from scalinglab.train import user as user_mod

    if study.train.function is not None:
        try:
            user_mod.load_function(study.train.function, study.train.base_dir)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        return
    sizes, hp = study.model.size_grid(), study.train.hparams_dict()
    known = user_mod.known_placeholders({k for s in sizes for k in s}, hp)
    for name in sorted(user_mod.placeholders(study.train.command)):
        if name not in known:
            raise UserError(
                f"{where}: train.command: given the placeholder {{{name}}}; allowed: "
                f"{', '.join('{' + k + '}' for k in known)}"
            )
        missing = [s for s in sizes if name not in s and name not in hp and name not in user_mod.FIXED_PLACEHOLDERS]
        if missing:
            raise UserError(
                f"{where}: train.command: given the placeholder {{{name}}}; model size {missing[0]} "
                f"has no {name!r}; allowed: a key every size has"
            )
    exe = study.train.command[0]
    if not user_mod.placeholders([exe]):
        import os
        import shutil

        path = Path(study.train.base_dir or ".") / exe
        found = shutil.which(exe) if os.sep not in exe else (str(path) if path.exists() else None)
        if found is None:
            raise UserError(
                f"{where}: train.command: given {exe!r}; allowed: a program on PATH or a path "
                f"relative to the study file's folder (not found)"
            )
        if not os.access(found, os.X_OK):
            raise UserError(
                f"{where}: train.command: given {exe!r}; allowed: an executable file ({found} is not "
                f'executable: chmod +x it, or run it through its interpreter, e.g. ["python", ...])'
            )


OPTIMIZERS = ("adam", "adamw", "sgd")  # train/trial.py make_optimizer


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_arch(study: Study, where: str) -> None:
    """model.activation / model.init name a known knob of a built-in family; factor depth owns the
    depth; kind capacity varies a real data option."""
    from scalinglab.models import FAMILIES
    from scalinglab.models.knobs import ACTIVATIONS, INITS  # the names, defined once

    m, f = study.model, study.search.factor
    builtin = not study.train.user and m.factory is None
    for key, allowed in (("activation", ACTIVATIONS), ("init", INITS)):
        v = getattr(m, key)
        if v is None:
            continue
        if not builtin:
            raise UserError(
                f"{where}: model.{key}: given {show(v)} with your own model or trainer; allowed: only with a "
                f"built-in family ({', '.join(sorted(FAMILIES))})"
            )
        if v not in allowed:
            raise UserError(f"{where}: model.{key}: given {show(v)}; allowed: {', '.join(allowed)}")
    if f in ("activation", "init") and not builtin:
        raise UserError(
            f"{where}: search.factor: given {f!r} with your own model or trainer; allowed: only with a built-in "
            f"family (your trainer can take it as a key of [train.hparams])"
        )
    if f in ("activation", "init") and getattr(m, f) is not None:
        raise UserError(f"{where}: model.{f}: given {show(getattr(m, f))} with factor {f}; allowed: one of them")
    if f == "depth" and builtin and m.sizes is None and len(m.depths) > 1:
        raise UserError(
            f"{where}: model.depths: given {show(list(m.depths))} with factor depth; allowed: one depth (the "
            f"levels set it)"
        )
    if study.search.match_params and (not builtin or m.family not in ("mlp", "cnn1d")):
        raise UserError(f"{where}: search.match_params: given true; allowed: only with model.family mlp or cnn1d")
    if study.search.kind == "capacity":
        from scalinglab.data.registry import resolve_options

        opts = resolve_options(study.data.name, study.data.options, where)
        if study.search.vary not in opts:
            raise UserError(
                f"{where}: search.vary: given {study.search.vary!r}; allowed: an option of data set "
                f"{study.data.name!r}: {', '.join(sorted(opts))}"
            )
        if not builtin or m.family not in ("mlp", "cnn1d"):
            raise UserError(f'{where}: search.kind: given "capacity"; allowed: only with model.family mlp or cnn1d')
        if m.sizes is not None:
            raise UserError(
                f"{where}: model.sizes: given with kind capacity; allowed: widths (channels) and depths, the "
                f"ladder the study walks"
            )


def _check_levels(study: Study, where: str) -> None:
    """Factor levels are trained as given: each must be a value the built-in loop accepts (an unknown
    optimizer trained as Adam, a negative lr as gradient ascent, before this check)."""
    from scalinglab.models.knobs import ACTIVATIONS, INITS

    f, levels = study.search.factor, study.search.levels
    if f is None:
        return
    field = "search.levels"
    for v in levels:
        if f == "optimizer" and not study.train.user and v not in OPTIMIZERS:
            raise UserError(f"{where}: {field}: given {show(v)} for factor optimizer; allowed: {', '.join(OPTIMIZERS)}")
        if f == "lr" and not (_is_num(v) and 0 < v <= 10):
            raise UserError(f"{where}: {field}: given {show(v)} for factor lr; allowed: learning rates in (0, 10]")
        if f == "weight_decay" and not (_is_num(v) and v >= 0):
            raise UserError(f"{where}: {field}: given {show(v)} for factor weight_decay; allowed: numbers >= 0")
        if f == "batch_size" and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise UserError(f"{where}: {field}: given {show(v)} for factor batch_size; allowed: integers > 0")
        if f == "batchnorm" and not isinstance(v, bool):
            raise UserError(f"{where}: {field}: given {show(v)} for factor batchnorm; allowed: true, false")
        if study.train.user:
            continue  # your own trainer reads depth / activation / init from trial.hparams as given
        if f == "depth" and not (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1000):
            raise UserError(f"{where}: {field}: given {show(v)} for factor depth; allowed: integers in 1..1000")
        if f == "activation" and v not in ACTIVATIONS:
            raise UserError(
                f"{where}: {field}: given {show(v)} for factor activation; allowed: {', '.join(ACTIVATIONS)}"
            )
        if f == "init" and v not in INITS:
            raise UserError(f"{where}: {field}: given {show(v)} for factor init; allowed: {', '.join(INITS)}")
    if len({json.dumps(v, sort_keys=True) for v in levels}) != len(levels):
        raise UserError(f"{where}: {field}: given {show(list(levels))}; allowed: distinct levels")


def _check_sizes(study: Study, where: str) -> None:
    """A built-in family's size tables hold only its knobs, each a positive integer (`widht = 64` was
    ignored and the default width built)."""
    from scalinglab.models.registry import FAMILIES

    entry = FAMILIES.get(study.model.family)
    if entry is None:
        return
    for i, size in enumerate(study.model.sizes or ()):
        for k, v in size.items():
            if k not in entry.knobs:
                raise UserError(
                    f"{where}: model.sizes[{i}].{k}: unknown key for family {entry.name!r} "
                    f"(given {show(v)}); allowed: {', '.join(entry.knobs)}"
                )
            if not (isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1_000_000):
                raise UserError(f"{where}: model.sizes[{i}].{k}: given {show(v)}; allowed: an integer in 1..1000000")
    ref = study.search.reference
    if ref is not None:
        for k, v in ref.items():
            if k != "lr" and k not in entry.knobs:
                raise UserError(
                    f"{where}: search.reference.{k}: unknown key for family {entry.name!r} "
                    f"(given {show(v)}); allowed: {', '.join(entry.knobs)}, lr"
                )
        if "lr" in ref and not (_is_num(ref["lr"]) and 0 < ref["lr"] <= 10):
            raise UserError(
                f"{where}: search.reference.lr: given {show(ref['lr'])}; allowed: a learning rate in (0, 10]"
            )
        knobs = {k: v for k, v in ref.items() if k != "lr"}
        if knobs and not any(all(s.get(k) == v for k, v in knobs.items()) for s in study.model.size_grid()):
            raise UserError(f"{where}: search.reference: given {show(knobs)}; allowed: one of the listed model sizes")


def _check_against_registries(study: Study, where: str) -> None:
    from scalinglab.data.registry import pool_size
    from scalinglab.models.registry import family

    _check_user_trainer(study, where)
    _check_arch(study, where)
    _check_levels(study, where)
    _check_sizes(study, where)
    if study.train.user:
        n_pool = study.data.options["pool_size"]
        if study.sizes()[-1] > n_pool:
            raise UserError(
                f"{where}: data.sizes: given a largest size of {study.sizes()[-1]}; allowed: at most "
                f"data.pool_size, {n_pool} examples"
            )
        return
    if study.model.factory is not None:  # byo: the user's factory must import (one-line error if not)
        from scalinglab.models.factory import check

        try:
            check(study.model.factory, study.model.sys_path)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
    else:
        family(study.model.family, where)
    n_pool = pool_size(study.data.name, study.data.options, where)
    sizes = study.sizes()
    if study.search.kind == "capacity":  # trains on min(largest size, pool at each value): each must exist
        for v in study.search.values:
            pool_size(study.data.name, {**study.data.options, study.search.vary: v}, f"{where}: search.values")
    elif sizes[-1] > n_pool:
        raise UserError(
            f"{where}: data.sizes: given a largest size of {sizes[-1]}; allowed: at most the "
            f"train pool of {study.data.name!r}, {n_pool} examples"
        )
    if study.model.factory is not None:  # the factory once, on the data's shape (models/factory.py smoke)
        from scalinglab.data.registry import load
        from scalinglab.models.factory import smoke

        ds = load(study.data.name, study.data.options, where=where)
        try:
            smoke(study.model.factory, study.model.size_grid()[0], ds.input_shape, ds.n_classes, study.model.sys_path)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
    if study.aux is not None:  # weighting study: the auxiliary set must exist and fit its pool
        aux_pool = pool_size(study.aux.name, study.aux.options, where)
        need = study.aux.n_aux(sizes[-1])
        if aux_pool == 0 or need > aux_pool:
            raise UserError(
                f"{where}: aux: given {need} auxiliary examples of {study.aux.name!r}; "
                f"allowed: 1 to its train pool of {aux_pool} examples"
            )


def load_study(arg: str | None) -> tuple[Study, str]:
    """A preset name or a path to a TOML file -> (study, where). No argument: the `default` preset."""
    arg = arg or "default"
    if arg in preset_names():
        return parse_study(preset_text(arg), f"preset {arg}"), f"preset {arg}"
    path = Path(arg)
    if not path.exists():
        raise UserError(f"{arg}: no such study file or preset; presets: {', '.join(preset_names())}")
    if path.is_dir():
        raise UserError(f"{arg}: is a folder; give a study .toml file or a preset name")
    if not path.is_file():  # a FIFO would block the read forever, a device never end
        raise UserError(f"{arg}: not a regular file; give a study .toml file or a preset name")
    try:
        with open(path, "rb") as f:
            blob = f.read(MAX_STUDY_BYTES + 1)
    except OSError as e:
        raise UserError(f"{arg}: cannot read the study file ({e.strerror or e})") from None
    if len(blob) > MAX_STUDY_BYTES:
        raise UserError(f"{arg}: larger than {MAX_STUDY_BYTES // 1000} kB; a study file is a short TOML text")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{arg}: not a text file (not UTF-8 at byte {e.start}); give a study .toml file") from None
    if "\x00" in text:
        raise UserError(f"{arg}: not a text file (it holds NUL bytes); give a study .toml file")
    return parse_study(text, str(path), base_dir=path.parent), str(path)


MAX_STUDY_BYTES = 1_000_000
