"""Joint law in model size N and data D: L(N, D) = E + A / N**alpha + B / D**beta.

Fitted as Hoffmann et al. (2022, "Chinchilla", approach 3): in log space with the log-sum-exp form
    log L = LSE(a - alpha log N, b - beta log D, e),   A = e^a, B = e^b, E = e^e,
a Huber loss (delta = 1e-3) on log L, L-BFGS-B from the best points of a grid of starts. Besiroglu
et al. (2024) found the published fit had stopped before converging and its intervals were far too
narrow, so: tight tolerances, an explicit convergence check, and bootstrap intervals.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm

from scalinglab.errors import bad_value
from scalinglab.fit.engine import one_blas_thread
from scalinglab.fmt import finite

NAMES = ("E", "A", "alpha", "B", "beta")
# fit space: (e, a, alpha, b, beta); bounds keep the exponents positive and the scales sane
# (E may be far below 1: an error rate's floor of 0.1% is e = -6.9)
BOUNDS = [(-12.0, 5.0), (-10.0, 40.0), (0.0, 3.0), (-10.0, 40.0), (0.0, 3.0)]


def _terms(th, lN, lD):
    e, a, al, b, be = th
    return np.stack([np.full_like(lN, e), a - al * lN, b - be * lD])  # (3, n)


def _lse_softmax(T):
    """log-sum-exp over axis 0 and its gradient (softmax), in plain NumPy (SciPy's is slower here)."""
    m = T.max(axis=0)
    ex = np.exp(T - m)
    s = ex.sum(axis=0)
    return m + np.log(s), ex / s


def _objective(th, lN, lD, lL, w, delta):
    """Mean Huber loss of log-residuals, scaled by 1/delta^2 so that it is O(1); and its gradient."""
    T = _terms(th, lN, lD)
    lse, p = _lse_softmax(T)  # p = d lse / d term
    r = lse - lL
    absr = np.abs(r)
    hub = np.where(absr <= delta, 0.5 * r**2, delta * (absr - 0.5 * delta))
    dh = np.clip(r, -delta, delta) * w
    g = np.array(
        [np.sum(dh * p[0]), np.sum(dh * p[1]), -np.sum(dh * p[1] * lN), np.sum(dh * p[2]), -np.sum(dh * p[2] * lD)]
    )
    s = 1.0 / (np.sum(w) * delta**2)
    return float(np.sum(w * hub) * s), g * s


def _grid(lN, lD, lL, delta, top):
    """Hoffmann et al.'s grid of starts, scored at once; the best `top` of them."""
    grid = np.array(
        list(
            itertools.product(
                # Hoffmann et al.'s starts for E (language-model losses in nats) and, for small losses such
                # as error rates, starts below the smallest loss measured
                np.unique(np.r_[np.arange(-1.0, 1.5, 0.5), lL.min() - np.array([0.1, 1.0, 3.0])]),
                np.arange(0.0, 30.0, 5.0),
                np.arange(0.0, 2.5, 0.5),
                np.arange(0.0, 30.0, 5.0),
                np.arange(0.0, 2.5, 0.5),
            )
        )
    )
    e, a, al, b, be = (grid[:, i, None] for i in range(5))
    T = np.stack(np.broadcast_arrays(e, a - al * lN, b - be * lD))
    r = np.abs(_lse_softmax(T)[0] - lL)
    loss = np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)).sum(axis=1)
    return grid[np.argsort(loss)[:top]]


def _lbfgs(th0, args, maxiter, ftol=1e-15):
    res = minimize(
        _objective,
        th0,
        args=args,
        jac=True,
        method="L-BFGS-B",
        bounds=BOUNDS,
        options={"maxiter": maxiter, "maxfun": 4 * maxiter, "ftol": ftol, "gtol": 1e-9},
    )
    return res


@dataclass
class JointFit:
    """L(N, D) = E + A / N**alpha + B / D**beta with bootstrap intervals."""

    params: dict
    ci: dict
    converged: bool
    message: str
    interval: float
    n_points: int
    sigma: float  # residual sd of log L
    _th: np.ndarray = field(repr=False, default=None)
    _th_boot: np.ndarray = field(repr=False, default=None)
    _N: np.ndarray = field(repr=False, default=None)  # the fitted points, for plot()
    _D: np.ndarray = field(repr=False, default=None)
    _L: np.ndarray = field(repr=False, default=None)

    def plot(self, ax=None):
        """Loss against data, one line and its points per model size N (matplotlib object API, no
        display needed). Returns the matplotlib Axes (a new Figure's when `ax` is None)."""
        from scalinglab.report.display import plot_joint

        return plot_joint(self, ax)

    def _repr_html_(self) -> str:  # Jupyter: the parameters as a table and the plot
        from scalinglab.report.display import joint_html

        return joint_html(self)

    @staticmethod
    def _loss(th, N, D):
        e, a, al, b, be = (np.asarray(v)[..., None] for v in np.moveaxis(np.atleast_2d(th), -1, 0))
        return np.exp(e) + np.exp(a) / N**al + np.exp(b) / D**be

    def predict(self, N, D, interval=None):
        """Loss at (N, D); with `interval` a dict of arrays y, lo, hi (bootstrap + noise)."""
        N, D = np.broadcast_arrays(np.asarray(N, float), np.asarray(D, float))
        y = self._loss(self._th, N.ravel(), D.ravel())[0]
        if interval is None:
            return y.reshape(N.shape)
        q = (1 - interval) / 2
        boot = np.log(self._loss(self._th_boot, N.ravel(), D.ravel()))
        blo, bhi = np.quantile(boot, [q, 1 - q], axis=0)
        ly, noise = np.log(y), norm.ppf(0.5 + interval / 2) * self.sigma
        lo = np.exp(ly - np.hypot(np.maximum(ly - blo, 0), noise))
        hi = np.exp(ly + np.hypot(np.maximum(bhi - ly, 0), noise))
        return {"y": y.reshape(N.shape), "lo": lo.reshape(N.shape), "hi": hi.reshape(N.shape)}

    def compute_optimal(self, C_flops):
        """Loss-minimising N and D for a compute budget, assuming C = 6 N D (FLOPs of a dense
        transformer: 6 per parameter per token, Kaplan et al. 2020; Hoffmann et al. 2022).

        Closed form: N_opt = G (C/6)**(beta/(alpha+beta)), D_opt = (C/6) / N_opt,
        G = (alpha A / (beta B))**(1/(alpha+beta)). Returns a dict of arrays N_opt, D_opt, loss,
        with `*_ci` from the bootstrap draws.
        """
        C = np.asarray(C_flops, float)
        if np.any(~np.isfinite(C)) or np.any(C <= 0):
            raise bad_value("compute_optimal", "C_flops", C_flops, "FLOP budgets > 0")

        def opt(th):
            _e, a, al, b, be = np.moveaxis(np.atleast_2d(th), -1, 0)
            G = (al * np.exp(a) / (be * np.exp(b))) ** (1 / (al + be))
            n = G[:, None] * (C.ravel()[None] / 6) ** (be / (al + be))[:, None]
            return n, C.ravel()[None] / 6 / n

        n, d = opt(self._th)
        nb, db = opt(self._th_boot)
        q = (1 - self.interval) / 2
        out = {
            "N_opt": n[0].reshape(C.shape),
            "D_opt": d[0].reshape(C.shape),
            "loss": self.predict(n[0], d[0]).reshape(C.shape),
        }
        for k, v in (("N_opt", nb), ("D_opt", db)):
            out[k + "_ci"] = (
                np.quantile(v, q, axis=0).reshape(C.shape),
                np.quantile(v, 1 - q, axis=0).reshape(C.shape),
            )
        return out

    def to_dict(self) -> dict:
        return {
            "form": "joint",
            "formula": "L = E + A / N**alpha + B / D**beta",
            "params": {k: finite(v) for k, v in self.params.items()},
            "ci": {k: [finite(a), finite(b)] for k, (a, b) in self.ci.items()},
            "interval": self.interval,
            "converged": bool(self.converged),
            "message": self.message,
            "n_points": self.n_points,
            "sigma": finite(self.sigma),
        }

    def report(self) -> str:
        pct = f"{self.interval:.0%}"
        lines = [
            "form: joint   L = E + A / N**alpha + B / D**beta"
            + ("" if self.converged else f"   [NOT CONVERGED: {self.message}]")
        ]
        for k, v in self.params.items():
            lo, hi = self.ci[k]
            lines.append(f"  {k:>6} = {v:.4g}   {pct} CI [{lo:.4g}, {hi:.4g}]")
        return "\n".join(lines)


def _check(N, D, L):
    arrs = []
    for name, v in (("N", N), ("D", D), ("L", L)):
        try:
            a = np.asarray(v, dtype=float).ravel()
        except (TypeError, ValueError):
            raise bad_value("fit_joint", name, "non-numeric values", "numbers") from None
        if not np.all(np.isfinite(a)):
            raise bad_value("fit_joint", name, a[~np.isfinite(a)][0], "finite numbers")
        if np.any(a <= 0):
            raise bad_value("fit_joint", name, a[a <= 0][0], "values > 0")
        arrs.append(a)
    if not arrs[0].size == arrs[1].size == arrs[2].size:
        raise bad_value("fit_joint", "N, D, L", f"lengths {[a.size for a in arrs]}", "equal lengths")
    if arrs[0].size < 6 or np.unique(arrs[0]).size < 2 or np.unique(arrs[1]).size < 2:
        raise bad_value(
            "fit_joint",
            "points",
            f"{arrs[0].size} (N, D) pairs",
            "at least 6, with at least 2 distinct N and 2 distinct D",
        )
    return arrs


@one_blas_thread
def fit_joint(
    N, D, L, *, weights=None, n_boot=200, interval=0.9, delta=1e-3, n_starts=8, seed=0, maxiter=5000
) -> JointFit:
    """Fit L(N, D) = E + A / N**alpha + B / D**beta (Hoffmann et al. 2022, approach 3).

    Parameters
    ----------
    N, D, L : (n,) parameters, training tokens (or examples), final loss; all > 0.
    weights : (n,) optional weights (e.g. seeds per run).
    n_boot : bootstrap refits over runs (warm-started); interval : CI level.
    delta : Huber threshold on log-loss residuals (1e-3 as in Hoffmann et al.).
    n_starts : how many of the best grid points are refined by L-BFGS-B.
    maxiter : L-BFGS-B iteration cap; a fit that hits it is reported as not converged.
    """
    N, D, L = _check(N, D, L)
    w = np.ones_like(L) if weights is None else np.asarray(weights, float).ravel()
    if w.size != L.size or np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise bad_value("fit_joint", "weights", f"{w.size} values", f"{L.size} numbers > 0")
    lN, lD, lL = np.log(N), np.log(D), np.log(L)
    args = (lN, lD, lL, w, delta)
    best = None
    for th0 in _grid(lN, lD, lL, delta, n_starts):
        res = _lbfgs(th0, args, maxiter)
        if best is None or res.fun < best.fun:
            best = res
    # converged = the optimiser says so AND the projected gradient is small (not just "stopped")
    g = best.jac
    th = best.x
    lo, hi = np.array(BOUNDS).T
    free = ~(((th <= lo + 1e-9) & (g > 0)) | ((th >= hi - 1e-9) & (g < 0)))
    gnorm = float(np.max(np.abs(g[free]))) if free.any() else 0.0
    # L-BFGS-B's "ABNORMAL" line-search stop at ftol=1e-15 means it cannot improve in floating
    # point; with a small projected gradient that is a converged fit, otherwise it is not.
    stopped = best.success or "ABNORMAL" in str(best.message)
    converged = bool(stopped and best.nit < maxiter and gnorm < 1e-4)
    msg = (
        "converged"
        if converged
        else (f"did not converge: {best.message} (max |gradient| {gnorm:.2g} after {best.nit} iterations)")
    )

    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        idx = rng.integers(0, L.size, L.size)
        if np.unique(N[idx]).size < 2 or np.unique(D[idx]).size < 2:
            continue
        r = _lbfgs(th, (lN[idx], lD[idx], lL[idx], w[idx], delta), maxiter, ftol=1e-12)
        boot.append(r.x)
    th_boot = np.array(boot) if boot else th[None]
    q = (1 - interval) / 2

    def user(t):
        t = np.atleast_2d(t)
        return {"E": np.exp(t[:, 0]), "A": np.exp(t[:, 1]), "alpha": t[:, 2], "B": np.exp(t[:, 3]), "beta": t[:, 4]}

    params = {k: float(v[0]) for k, v in user(th).items()}
    ub = user(th_boot)
    ci = {k: (float(np.quantile(ub[k], q)), float(np.quantile(ub[k], 1 - q))) for k in NAMES}
    resid = lL - np.log(JointFit._loss(th, N, D)[0])
    sigma = float(np.sqrt(np.sum(w * resid**2) / np.sum(w) * L.size / max(L.size - 5, 1)))
    return JointFit(
        params={k: params[k] for k in NAMES},
        ci=ci,
        converged=converged,
        message=msg,
        interval=interval,
        n_points=int(L.size),
        sigma=sigma,
        _th=th,
        _th_boot=th_boot,
        _N=N,
        _D=D,
        _L=L,
    )
