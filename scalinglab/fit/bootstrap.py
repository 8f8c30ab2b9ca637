"""Bootstrap refits of one fitted form, all at once.

Resampling: over points (case resampling, as multinomial weights, so x stays a fixed design and the
batched optimiser sees one array), and over seeds within each point when per-seed values are given.
With very few points case resampling leaves too few distinct x to identify the law, so we switch to
a wild bootstrap of the log residuals (random signs), which keeps every x.

Every refit warm-starts from the full-data fit: one start, a few Levenberg-Marquardt steps; this
is what makes 1000 refits take well under a second.
"""

from __future__ import annotations

import numpy as np

from scalinglab.fit.optim import lm_batch


def _seed_resample(y, groups_y, rng, B):
    """(B, n) values of y with each point's seeds resampled (median, rescaled to keep the centre)."""
    out = np.tile(y, (B, 1))
    for i, g in enumerate(groups_y):
        g = np.asarray(g, float)
        g = g[np.isfinite(g)]
        if g.size < 2:
            continue
        med = np.median(g)
        if med <= 0:
            continue
        draws = rng.choice(g, size=(B, g.size), replace=True)
        out[:, i] = y[i] * np.median(draws, axis=1) / med
    return np.clip(out, 1e-300, None)


def bootstrap(core, n_boot, rng, groups_y=None):
    """Refit `core` (an engine._Core) on `n_boot` resamples; returns (B', k) parameter draws."""
    law, lx, ly, w = core.law, core.lx, core.ly, core.w
    n, k_free = lx.size, int(core.free.sum())
    if n_boot <= 0:
        return core.th[None, :].copy()
    ly_b = np.tile(ly, (n_boot, 1))
    if groups_y is not None:
        ly_b = np.log(_seed_resample(np.exp(ly), groups_y, rng, n_boot))
    if n >= 2 * k_free + 2:
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)
        # a resample needs more distinct x than free parameters; redraw the few that do not
        for _ in range(20):
            bad = (counts > 0).sum(axis=1) <= k_free
            if not bad.any():
                break
            counts[bad] = rng.multinomial(n, np.full(n, 1.0 / n), size=int(bad.sum()))
        keep = (counts > 0).sum(axis=1) > k_free
        counts, ly_b = counts[keep], ly_b[keep]
        W = counts * w
    else:  # wild bootstrap: keep every x, flip the signs of the log residuals
        signs = rng.choice([-1.0, 1.0], size=(n_boot, n))
        # inflate the residuals for the degrees of freedom the fit used up
        infl = np.sqrt(n / max(n - k_free, 1))
        ly_b = ly_b + signs * core.resid * infl
        W = np.tile(w, (n_boot, 1))
    th0 = np.tile(core.th, (len(W), 1))
    th, cost = lm_batch(law, lx, ly_b, W, th0, core.lo, core.hi, core.free, fs=core.fs, iters=40)
    return th[np.isfinite(cost)]
