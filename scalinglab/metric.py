"""What a study measures: the metric as data (name, direction, random-guess level, unit).

Everything downstream of a trial (the score, the fits, diagnose, plan, the report's labels) works on
one quantity that goes down as a model gets better and is >= 0: the *error*. A metric to minimise
(error rate, WER, bits per character, a loss) is its own error. A metric to maximise (accuracy,
BLEU, F1) is fitted as the error it implies, **error = best - value**, where `best` is the metric's
perfect score (1 for accuracy and F1, 100 for BLEU in percent). The raw value the user's trainer
returned is stored beside it (`metric_value`).

The built-in data sets are instances of the same rule: an error rate (random guess 1 - 1/K) or, for
the character LM, bits per character (random guess log2 of the vocabulary).
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str = "error"  # what the trainer measures: "error", "wer", "accuracy", "bits per character"
    goal: str = "min"  # "min" or "max"
    random_guess: float | None = None  # the error of guessing (M4's eps_0, the small-data bound)
    best: float = 1.0  # goal "max": the perfect score; error = best - value
    rate: bool = True  # a fraction in [0, 1]: shown as % in the report
    description: str = "dev error rate (median over seeds of each trial's minimum)"

    @property
    def label(self) -> str:
        """The axis label of the fitted quantity, e.g. "dev error", "dev 1 - accuracy"."""
        if self.goal == "max":
            return f"dev {self.best:g} - {self.name}"
        return f"dev {self.name}"

    def to_error(self, value: float) -> float:
        """The fitted error of a measured value (raises ValueError for a value the metric cannot take)."""
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{self.name} = {value!r} is not a finite number")
        e = self.best - v if self.goal == "max" else v
        if e < 0:
            raise ValueError(
                f"{self.name} = {v:g} is "
                + (
                    f"above its best value {self.best:g}"
                    if self.goal == "max"
                    else "negative; a metric to minimise must be >= 0"
                )
            )
        return e

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "label": self.label}

    @classmethod
    def from_dict(cls, d: dict) -> Metric:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


def study_metric(config: dict) -> Metric:
    """The metric of a study (its config dict, as stored): the [metric] table of a user trainer's study,
    else the built-in data set's own (error rate, or bits per character for the character LM)."""
    m = config.get("metric")
    if isinstance(m, dict):  # [metric] table
        desc = (
            f"dev {m['name']} (median over seeds of each trial's minimum)"
            if m.get("goal", "min") == "min"
            else f"dev {m.get('best', 1.0):g} - {m['name']} (median over seeds of each trial's best)"
        )
        goal, best, rg = m.get("goal", "min"), float(m.get("best", 1.0)), m.get("random_guess")
        rate = m.get("rate")
        if rate is None:  # a fraction: 1 - accuracy, or a metric whose random guess is at most 1 (WER)
            rate = (goal == "max" and best == 1.0) or (rg is not None and rg <= 1)
        return Metric(name=m["name"], goal=goal, random_guess=rg, best=best, rate=bool(rate), description=desc)
    if config["data"]["name"] == "indices":  # a user trainer with the default metric: an error rate
        return Metric()
    from scalinglab.data import load

    ds = load(config["data"]["name"], config["data"].get("options", {}))  # cached on disk
    name = ds.meta.get("metric_name")  # a data set's own name: "bits per token" (translation), "WER" (speech)
    if ds.metric == "bits":
        name = name or "bits per character"
        return Metric(
            name=name,
            random_guess=ds.random_guess_error,
            rate=False,
            description=f"dev cross-entropy in {name} (median over seeds of each trial's minimum)",
        )
    if name:
        return Metric(
            name=name,
            random_guess=ds.random_guess_error,
            description=f"dev {name} (median over seeds of each trial's minimum)",
        )
    return Metric(random_guess=ds.random_guess_error)


def stored_metric(folder, config: dict) -> Metric:
    """The metric a finished study recorded in its summary.json (no data set reloaded); the study's
    own (`study_metric`) for a folder without one (a run killed before its summary)."""
    import json
    from pathlib import Path

    p = Path(folder) / "summary.json"
    try:
        info = json.loads(p.read_text()).get("metric_info")
    except (OSError, ValueError, AttributeError):
        info = None
    return Metric.from_dict(info) if isinstance(info, dict) else study_metric(config)
