"""Result objects of a curve fit: parameters, intervals, regions, predictions; plain-JSON output.

The prediction interval at x combines three parts, in log space of the error:
  1. parameter uncertainty: the spread of the bootstrap refits at x;
  2. noise of one measurement: z * sigma, sigma = residual sd of the fit;
  3. extrapolation error: kappa * d, with d the distance beyond the fitted x range in units of that
     range (log x). kappa is calibrated on the curve itself (`select.backtest`): fit the first part
     of the curve, see how far the rest falls from the prediction. Without it the bootstrap alone
     gives intervals far too narrow once a curve bends (Besiroglu et al. 2024 made the same point
     for the Chinchilla fit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from scalinglab.fit.laws import LAWS
from scalinglab.fmt import finite

MIN_PAST_BEND = 2  # measured sizes past the small-data region a forecast needs (CurveFit.unsupported)
BARELY = 0.8  # an error >= BARELY x the random-guess error has barely left guessing


@dataclass
class Prediction:
    """Point predictions and interval bounds at `x` (arrays of the same shape)."""

    x: np.ndarray
    y: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    interval: float

    def __getitem__(self, key):  # allows pred["lo"] as well as pred.lo
        return getattr(self, key)

    def to_dict(self) -> dict:
        return {"x": _jl(self.x), "y": _jl(self.y), "lo": _jl(self.lo), "hi": _jl(self.hi), "interval": self.interval}


def _jl(a):
    return [float(v) for v in np.atleast_1d(a)]


@dataclass
class CurveFit:
    """A fitted learning curve (or model-size law) with bootstrap uncertainty.

    Attributes
    ----------
    form : name of the law in `LAWS`.
    params : user-facing parameters in original x units (e.g. alpha, beta, gamma for pow_c).
    ci : name -> (lo, hi) percentile bootstrap interval at `interval`.
    converged : False when the optimiser stopped without converging (see `message`).
    scores : form -> extrapolation score (mean held-out RMSLE) when form selection ran.
    regions : small_data_end, irreducible_start (x or None), floor and floor_ci.
    """

    form: str
    params: dict
    ci: dict
    converged: bool
    message: str
    scores: dict
    regions: dict
    interval: float
    n_points: int
    x_range: tuple
    y0: float | None
    calibration: dict
    # internal state used by predict(); not serialised
    _th: np.ndarray = field(repr=False, default=None)
    _th_boot: np.ndarray = field(repr=False, default=None)
    _x_scale: float = field(repr=False, default=1.0)
    _x: np.ndarray = field(repr=False, default=None)  # the fitted points (sorted by x), for plot()
    _y: np.ndarray = field(repr=False, default=None)

    def plot(self, ax=None, *, xlabel: str | None = None, ylabel: str | None = None):
        """The fitted points, the law with its 90% prediction band, its extrapolation to 8x the
        largest x, its regions and floor: the report's learning-curve figure, drawn on `ax` (a new
        matplotlib Figure's when None; object API, no display needed). Returns the Axes."""
        from scalinglab.report.display import plot_fit

        return plot_fit(self, ax, xlabel=xlabel, ylabel=ylabel)

    def _repr_html_(self) -> str:  # Jupyter: the parameters as a table and the plot
        from scalinglab.report.display import fit_html

        return fit_html(self)

    @property
    def law(self):
        return LAWS[self.form]

    @property
    def exponent(self) -> float:
        """Asymptotic power-law exponent (negative when error falls with data)."""
        return float(self.law.exponent(self._th))

    @property
    def exponent_ci(self) -> tuple:
        e = self.law.exponent(self._th_boot)
        q = (1 - self.interval) / 2
        return (float(np.quantile(e, q)), float(np.quantile(e, 1 - q)))

    @property
    def slope(self) -> dict:
        """The headline exponent: the log-log slope of the reducible error (y - floor) across the
        power-law region of the measured range, from where the small-data region ends (or the smallest
        x) to the largest x, with its bootstrap interval. This is what Hestness et al. report as beta_g
        (-0.07..-0.35); `exponent` is the form's asymptotic slope, which for m4 or a broken power law
        may hold only far beyond the data. With less than a doubling past the bend, the slope over the
        last doubling of the data, flagged `reached = False`."""
        xmin, xmax = self.x_range
        lo = max(xmin, self.regions.get("small_data_end") or xmin)
        reached = xmax / lo >= 2
        if not reached:
            lo = xmax / 2
        lx = np.log(np.array([lo, xmax]) / self._x_scale)

        def secant(th):
            th = np.atleast_2d(th)
            with np.errstate(all="ignore"):
                red = np.exp(self.law.logf(lx, th)) - self.law.floor(th)[:, None]
                return (np.log(red[:, 1]) - np.log(red[:, 0])) / math.log(xmax / lo)

        e = secant(self._th_boot)
        e = e[np.isfinite(e)]
        q = (1 - self.interval) / 2
        ci = (float(np.quantile(e, q)), float(np.quantile(e, 1 - q))) if e.size else (math.nan, math.nan)
        return {"value": float(secant(self._th)[0]), "ci": ci, "from": float(lo), "to": float(xmax), "reached": reached}

    @property
    def unsupported(self) -> str | None:
        """Why this curve cannot be extrapolated yet (None: it can): fewer than MIN_PAST_BEND measured
        sizes lie past the small-data region (beyond the fit's small_data_end, and, with a known
        random-guess error y0, below BARELY * y0). Before the bend the data do not show the power law
        a forecast continues; on the default study such forecasts missed by 2-8x."""
        if self._x is None or self.law.floor_kind == "none":
            return None
        xs = np.unique(self._x)
        ys = np.array([np.mean(self._y[self._x == v]) for v in xs])
        end = self.regions.get("small_data_end") or 0.0
        past = (xs >= end) & (ys < BARELY * self.y0 if self.y0 else True)
        if past.sum() >= MIN_PAST_BEND:
            return None
        return (
            f"only {int(past.sum())} measured size(s) past the small-data region"
            + (f" (it ends near x = {end:.3g})" if end else "")
            + ": the curve's power-law part is not measured yet, so its extrapolation is a guess"
        )

    def predict(self, x, interval=None):
        """Predicted y at x; with `interval` (e.g. 0.9) a `Prediction` with y, lo, hi."""
        x = np.asarray(x, dtype=float)
        lxn = np.log(x.ravel() / self._x_scale)
        ly = self.law.logf(lxn, self._th)
        # the guard: beyond the data, the forecast falls no faster than the measured curve ever did; the
        # law's own forecast stays inside the interval (it is not ruled out, only not supported)
        up = np.maximum(self._steepest_guard(x.ravel()) - ly, 0)
        if interval is None:
            return np.exp(ly + up).reshape(x.shape)
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval}")
        z = norm.ppf(0.5 + interval / 2)
        q = (1 - interval) / 2
        with np.errstate(all="ignore"):
            boot = self.law.logf(lxn, self._th_boot)  # (B, m)
        boot = boot[np.all(np.isfinite(boot), axis=1)]
        if len(boot):
            blo, bhi = np.quantile(boot, [q, 1 - q], axis=0)
            dlo, dhi = np.maximum(ly - blo, 0), np.maximum(bhi - ly, 0)
        else:
            dlo = dhi = np.zeros_like(ly)
        cal = self.calibration
        noise = z * cal["sigma"]
        xmin, xmax = self.x_range
        width = max(math.log(xmax / xmin), 1e-12)
        d = np.maximum(np.log(x.ravel() / xmax), np.log(xmin / x.ravel())).clip(0) / width
        # kappa was calibrated at the fit's own interval; other levels scale like a normal's z
        ext = cal["kappa"] * d * z / norm.ppf(0.5 + self.interval / 2)
        lo = ly - np.sqrt(dlo**2 + noise**2 + ext**2)
        hi = ly + np.sqrt(dhi**2 + noise**2 + ext**2)
        ly, hi = ly + up, hi + up  # lo stays: the law's own forecast is kept inside the interval
        shape = x.shape
        return Prediction(x, np.exp(ly).reshape(shape), np.exp(lo).reshape(shape), np.exp(hi).reshape(shape), interval)

    def _steepest_guard(self, x):
        """log y below which a forecast at x is not supported: the fitted value at the largest x,
        continued with the steepest log-log slope between neighbouring measured sizes (-inf inside
        the data, or with fewer than 3 sizes, or for a curve that rises)."""
        out = np.full(x.shape, -np.inf)
        if self._x is None or self.law.floor_kind == "none":  # a model-size law grows: no guard
            return out
        xs = np.unique(self._x)
        if xs.size < 3:
            return out
        ly = np.log(np.array([np.mean(self._y[self._x == v]) for v in xs]))
        steepest = float(np.min(np.diff(ly) / np.diff(np.log(xs))))
        if steepest >= 0:
            return out
        xmax = xs[-1]
        at_max = float(self.law.logf(np.log(np.array([xmax]) / self._x_scale), self._th)[0])
        beyond = x > xmax
        out[beyond] = at_max + steepest * np.log(x[beyond] / xmax)
        return out

    def to_dict(self) -> dict:
        """Plain JSON types only (the bootstrap draws are left out)."""
        slope = self.slope
        return {
            "form": self.form,
            "formula": self.law.formula,
            "params": {k: finite(v) for k, v in self.params.items()},
            "ci": {k: [finite(a), finite(b)] for k, (a, b) in self.ci.items()},
            "interval": self.interval,
            "exponent": finite(self.exponent),
            "exponent_ci": [finite(v) for v in self.exponent_ci],
            "slope": {
                **{k: finite(slope[k]) for k in ("value", "from", "to")},
                "ci": [finite(v) for v in slope["ci"]],
                "reached": bool(slope["reached"]),
            },
            "unsupported": self.unsupported,
            "converged": bool(self.converged),
            "message": self.message,
            "scores": {k: finite(v) for k, v in self.scores.items()},
            "regions": {
                "small_data_end": finite(self.regions["small_data_end"]),
                "irreducible_start": finite(self.regions["irreducible_start"]),
                "floor": finite(self.regions["floor"]),
                "floor_ci": None if self.regions["floor_ci"] is None else [finite(v) for v in self.regions["floor_ci"]],
            },
            "n_points": self.n_points,
            "x_range": [finite(v) for v in self.x_range],
            "y0": finite(self.y0),
            "calibration": {
                k: (finite(v) if isinstance(v, (int, float, np.floating)) else v) for k, v in self.calibration.items()
            },
        }

    def arrays(self) -> dict:
        """The state `predict`, the intervals and `plot` need beyond `to_dict` (fit-space parameters,
        bootstrap draws, x scale, the fitted points), as NumPy arrays: what `from_dict` takes back."""
        return {
            "th": np.asarray(self._th, float),
            "th_boot": np.asarray(self._th_boot, float),
            "x_scale": np.asarray(self._x_scale, float),
            "x": np.asarray(self._x, float),
            "y": np.asarray(self._y, float),
        }

    @classmethod
    def from_dict(cls, d: dict, arrays: dict) -> CurveFit:
        """The fit again from its `to_dict` and its `arrays()`: predictions and intervals equal the
        original's (summary.json holds the dict, fits.npz the arrays), without refitting."""
        reg = d["regions"]
        return cls(
            form=d["form"],
            params=dict(d["params"]),
            ci={k: tuple(v) for k, v in d["ci"].items()},
            converged=bool(d["converged"]),
            message=d.get("message", ""),
            scores=dict(d.get("scores") or {}),
            regions={**reg, "floor_ci": None if reg.get("floor_ci") is None else tuple(reg["floor_ci"])},
            interval=float(d["interval"]),
            n_points=int(d["n_points"]),
            x_range=tuple(d["x_range"]),
            y0=d.get("y0"),
            calibration=dict(d["calibration"]),
            _th=np.asarray(arrays["th"], float),
            _th_boot=np.asarray(arrays["th_boot"], float),
            _x_scale=float(arrays["x_scale"]),
            _x=np.asarray(arrays["x"], float),
            _y=np.asarray(arrays["y"], float),
        )

    def report(self) -> str:
        """A readable multi-line summary."""
        pct = f"{self.interval:.0%}"
        lines = [
            f"form: {self.form}   {self.law.formula}"
            + ("" if self.converged else f"   [NOT CONVERGED: {self.message}]")
        ]
        for k, v in self.params.items():
            lo, hi = self.ci.get(k, (float("nan"), float("nan")))
            lines.append(f"  {k:>8} = {v:.4g}   {pct} CI [{lo:.4g}, {hi:.4g}]")
        elo, ehi = self.exponent_ci
        lines.append(f"  exponent = {self.exponent:.4g}   {pct} CI [{elo:.4g}, {ehi:.4g}]")
        r = self.regions
        fl = "none" if r["floor"] is None else f"{r['floor']:.4g}"
        if r["floor_ci"] is not None:
            fl += f"  {pct} CI [{r['floor_ci'][0]:.4g}, {r['floor_ci'][1]:.4g}]"
        lines.append(f"  floor (irreducible error): {fl}")
        lines.append(
            f"  small-data region ends at x = {_fmt(r['small_data_end'])}; "
            f"irreducible region starts at x = {_fmt(r['irreducible_start'])}"
        )
        if self.scores:
            sc = ", ".join(
                f"{k} {_fmt(v)}" for k, v in sorted(self.scores.items(), key=lambda kv: (kv[1] is None, kv[1] or 0))
            )
            lines.append(f"  extrapolation scores (held-out RMSLE, lower is better): {sc}")
        lines.append(
            f"  {self.n_points} points, x in [{self.x_range[0]:.4g}, "
            f"{self.x_range[1]:.4g}]; calibration kappa = {self.calibration['kappa']:.3g}"
        )
        return "\n".join(lines)


def _fmt(v):
    return "n/a" if v is None else f"{v:.4g}"
