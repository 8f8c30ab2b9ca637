"""Speed of the fitting engine on one core: a 20-point fit and 1000 bootstrap refits.

    taskset -c 0 python benchmarks/fit_speed.py     # (taskset optional; NumPy here is single-threaded
                                                    #  for these small arrays anyway)
Targets (issue 3): a 20-point fit < 50 ms; 1000 bootstrap refits < 3 s.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from scalinglab.fit import LAWS, fit_curve, fit_joint
from scalinglab.fit.bootstrap import bootstrap
from scalinglab.fit.engine import fit_form


def best_of(fn, reps=5, clock=time.perf_counter):
    ts = []
    for _ in range(reps):
        t = clock()
        fn()
        ts.append(clock() - t)
    return min(ts)


def main():
    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e6, 20)
    y = (5.0 * x**-0.35 + 0.05) * np.exp(rng.normal(0, 0.02, x.size))
    w = np.ones_like(x)
    print(f"{'form':<8}{'point fit':>11}{'+backtest':>11}{'(cpu)':>9}{'1000 boot':>11}{'fit_curve':>11}")
    for form in ("pow", "pow_c", "m4", "bnsl"):
        kw = {"y0": 0.9} if form == "m4" else {}
        t_point = best_of(lambda: fit_form(LAWS[form], x, y, w, kw.get("y0")))
        t_nob = best_of(lambda: fit_curve(x, y, form=form, n_boot=0, **kw))
        # process CPU time: what the fit costs when the core is shared with other work
        c_nob = best_of(lambda: fit_curve(x, y, form=form, n_boot=0, **kw), clock=time.process_time)
        core = fit_form(LAWS[form], x, y, w, kw.get("y0"))
        t_boot = best_of(lambda: bootstrap(core, 1000, np.random.default_rng(1)), reps=3)
        t_all = best_of(lambda: fit_curve(x, y, form=form, n_boot=1000, **kw), reps=3)
        print(
            f"{form:<8}{t_point * 1e3:>9.1f}ms{t_nob * 1e3:>9.1f}ms{c_nob * 1e3:>7.0f}ms"
            f"{t_boot * 1e3:>9.0f}ms"
            f"{t_all * 1e3:>9.0f}ms"
        )
    t_auto = best_of(lambda: fit_curve(x, y, n_boot=1000), reps=3)
    print(f"auto (backtest m4 + bnsl, fit, 1000 boot): {t_auto * 1e3:.0f} ms")
    print(
        "point fit = grid of starts + batched LM + least_squares polish; +backtest = what "
        "fit_curve does without bootstrap (3 prefix fits for interval calibration)"
    )
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e8, 1e11, 6)))
    L = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
    t_j = best_of(lambda: fit_joint(N, D, L, n_boot=0), reps=2)
    t_jb = best_of(lambda: fit_joint(N, D, L, n_boot=100), reps=1)
    print(f"joint, 36 points: fit {t_j * 1e3:.0f} ms; with 100 bootstrap refits {t_jb:.2f} s")


if __name__ == "__main__":
    main()
