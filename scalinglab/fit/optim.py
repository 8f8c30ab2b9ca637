"""Local optimisers for the curve laws: a batched Levenberg-Marquardt and a SciPy polish.

Why two: the coarse grid of starts and the bootstrap both need *many* small fits of the same law on
the same x. A Levenberg-Marquardt step vectorised over a batch of problems (shape (B, n, k)) does all
of them at once in NumPy, about 100x faster than a Python loop of `least_squares` calls. The single
best start of the main fit is then polished with `scipy.optimize.least_squares` (trust-region,
bounded), whose status tells us honestly whether the fit converged.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares


def _robust(r2, fs):
    """soft-L1 loss (as least_squares' "soft_l1"): value rho(r^2) and IRLS weight rho'(r^2)."""
    if fs is None:
        return r2, np.ones_like(r2)
    z = r2 / fs**2
    s = np.sqrt(1 + z)
    return fs**2 * 2 * (s - 1), 1 / s


def lm_batch(law, lx, ly, w, th0, lo, hi, free, *, fs=None, iters=60, tol=1e-10):
    """Fit `law` to B weighted problems at once.

    Parameters
    ----------
    lx, ly : (n,) log x (normalised) and log y; or (B, n), one row per problem (the backtest fits
        the prefixes of one curve, each normalised by its own largest x, in one batch).
    w : (B, n) or (n,) weights (bootstrap counts times seed counts); 0 drops a point (its residual
        may then be anything, even inf).
    th0 : (B, k) starting points; lo, hi : (k,) or (B, k) box bounds; free : (k,) bool, False =
        held fixed.
    fs : soft-L1 scale in log units, or None for plain least squares.

    Returns
    -------
    th : (B, k) fitted parameters; cost : (B,) final cost.
    """
    th = np.clip(np.array(th0, dtype=float), lo, hi)
    B, k = th.shape
    w = np.broadcast_to(np.asarray(w, float), (B, np.shape(lx)[-1]))
    dropped = w <= 0
    fixed = ~np.asarray(free)
    lam = np.full(B, 1e-2)

    def evaluate(t):
        with np.errstate(all="ignore"):
            f, J = law.value_jac(lx, t)  # (B, n), (B, n, k)
            r = f - ly
        r = np.where(dropped, 0.0, r)
        rho, wr = _robust(r * r, fs)
        cost = 0.5 * np.sum(w * rho, axis=-1)
        J = np.where(np.isfinite(J), J, 0.0)
        J[..., fixed] = 0.0
        return r, np.where(np.isfinite(cost), cost, np.inf), wr, J

    r, cost, wr, J = evaluate(th)
    eye = np.eye(k)
    for _ in range(iters):
        ww = (w * wr)[..., None]
        A = np.einsum("bni,bnj->bij", J * ww, J)
        g = np.einsum("bni,bn->bi", J * ww, np.where(np.isfinite(r), r, 0.0))
        diag = np.einsum("bii->bi", A)
        # Marquardt scaling by diag(A); fixed params get an identity row and zero gradient
        D = np.where(fixed, 1.0, np.maximum(diag, 1e-12))
        M = A + (lam[:, None] * D)[:, :, None] * eye + fixed * eye
        try:
            step = -np.linalg.solve(M, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -g / D
        new = np.clip(th + step, lo, hi)
        new[:, fixed] = th[:, fixed]
        r2, c2, wr2, J2 = evaluate(new)
        ok = c2 < cost
        # converged: the step changes the cost by less than tol (whether or not it was taken; an
        # exact start, e.g. pow's log-log line, only ever proposes steps that change nothing)
        with np.errstate(invalid="ignore"):
            still = np.abs(cost - c2) <= tol * np.maximum(cost, 1e-300)
        th = np.where(ok[:, None], new, th)
        r = np.where(ok[:, None], r2, r)
        wr = np.where(ok[:, None], wr2, wr)
        J = np.where(ok[:, None, None], J2, J)
        cost = np.where(ok, c2, cost)
        lam = np.where(ok, lam / 3, lam * 4)
        lam = np.clip(lam, 1e-12, 1e12)
        if np.all(still | (lam >= 1e12)):
            break
    return th, cost


def polish(law, lx, ly, w, th0, lo, hi, free, *, fs=None, max_nfev=None):
    """Bounded trust-region least squares from one start; returns (th, cost, converged, message)."""
    free = np.asarray(free)
    sw = np.sqrt(np.asarray(w, float))
    base = np.array(th0, dtype=float)

    def full(z):
        t = base.copy()
        t[free] = z
        return t

    cache = {}  # least_squares asks for J at the point whose residuals it just took

    def fun(z):
        with np.errstate(all="ignore"):
            f, J = law.value_jac(lx, full(z))
            r = sw * (f - ly)
            cache["z"], cache["J"] = z.copy(), J
        return np.where(np.isfinite(r), r, 1e6)

    def jac(z):
        if "z" in cache and np.array_equal(cache["z"], z):
            J = cache["J"]
        else:
            with np.errstate(all="ignore"):
                J = law.jac(lx, full(z))
        J = J[:, free] * sw[:, None]
        return np.where(np.isfinite(J), J, 0.0)

    lo_f, hi_f = lo[free], hi[free]
    # least_squares needs a strictly interior start
    z0 = np.clip(base[free], lo_f, hi_f)
    span = hi_f - lo_f
    z0 = np.clip(z0, lo_f + 1e-9 * span, hi_f - 1e-9 * span)
    res = least_squares(
        fun,
        z0,
        jac=jac,
        bounds=(lo_f, hi_f),
        method="trf",
        x_scale="jac",
        loss="linear" if fs is None else "soft_l1",
        f_scale=fs or 1.0,
        max_nfev=max_nfev,
        xtol=1e-10,
        ftol=1e-12,
        gtol=1e-10,
    )
    # status 0 = ran out of evaluations; -1 = bad input. Both are "did not converge".
    converged = bool(res.status > 0 and np.all(np.isfinite(res.x)))
    msg = "converged" if converged else f"did not converge: {res.message}"
    return full(res.x), float(res.cost), converged, msg
