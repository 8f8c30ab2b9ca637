"""The Hestness et al. (2017) search, as phases that each look at the store and say what to run next.

1. End points. The full set's reference model is the largest listed size (or `search.reference`).
   For the smallest subset, the smallest model that can overfit it: every size is trained once on
   it (cheap: it is the smallest subset) and the smallest whose final train error is at most
   `overfit_threshold` is the small end point.
2. Monte Carlo grid per subset: the centre moves in log space from the small end point to the large
   one as data grows; the first candidate is the centre, the rest are sampled around it (size within
   `size_spread` grid steps, learning rate and weight decay from their grids). Candidates are drawn
   in a fixed order from a per-subset RNG, so a bigger `candidates` budget keeps the earlier ones and
   a rerun reuses their trials.
   Learning-rate edges: when a subset's best candidate uses the grid's largest (smallest) learning
   rate, the optimum may lie outside the grid, so that candidate is tried again with the learning
   rate one grid ratio further out, and again while it keeps improving, up to `extend_lr` steps.
3. Successive halving on seeds: every candidate (extensions included) is trained with seed 0; the
   `promote` best get the other seeds. A candidate's score is the median over seeds of its minimum
   dev error.

Each phase is a pure function of the study and the trials already stored, so a killed search resumes
where it stopped and `next_trials` can be called again and again until it returns nothing new.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglab.config import Study
from scalinglab.search.grid import base_spec, level_name, level_overrides, level_size
from scalinglab.train.trial import trial_id


def size_table(study: Study) -> list[tuple[dict, int]]:
    """(size knobs, parameter count) of every listed size, smallest model first.

    Your own trainer's models are not built here, so their sizes keep the listed order (list them
    smallest first) with a stand-in count: the size's own "params" key if it has one, else 2**i for
    the i-th listed size (the search only uses the counts to order sizes and to move between them in
    log space)."""
    if study.train.user:
        return [(s, int(s.get("params", 2**i))) for i, s in enumerate(study.model.size_grid())]
    from scalinglab.data import load
    from scalinglab.models import describe_spec

    ds = load(study.data.name, study.data.options)
    # describe_spec: a registered family or a byo factory (the spec's model entry names it)
    rows = [
        (s, describe_spec(base_spec(study, 1, s, 0)["model"], ds.input_shape, ds.n_classes)["params"])
        for s in study.model.size_grid()
    ]
    return sorted(rows, key=lambda r: r[1])


class HestnessSearch:
    def __init__(self, study: Study, sizes_params: list[tuple[dict, int]] | None = None):
        self.study = study
        self.cfg = study.search
        self.sizes = sizes_params or size_table(study)
        self.data_sizes = study.sizes()
        self.levels = list(self.cfg.levels) if self.cfg.factor else [None]
        self.lrs = self.cfg.lr_grid(study.train.lr)
        ref = dict(self.cfg.reference or {})
        self.ref_lr = float(ref.pop("lr", study.train.lr))
        self.ref_index = self._index_of(ref) if ref else len(self.sizes) - 1

    # --- helpers -----------------------------------------------------------------------------
    def _index_of(self, knobs: dict) -> int:
        for i, (s, _) in enumerate(self.sizes):
            if all(s.get(k) == v for k, v in knobs.items()):
                return i
        raise ValueError(f"search.reference {knobs} is not one of the listed model sizes")

    def spec(self, n: int, size_i: int, lr: float, wd: float, seed: int, level) -> dict:
        tr, mo = level_overrides(self.study, level)
        tr = {"lr": float(lr), "weight_decay": float(wd), **tr}
        spec = base_spec(self.study, n, level_size(self.study, self.sizes[size_i][0], level), seed, **tr)
        spec["model"].update(mo)
        return spec

    @staticmethod
    def _nearest(grid: list[float], v: float) -> float:
        return min(grid, key=lambda g: abs(math.log(g) - math.log(v)) if g > 0 and v > 0 else abs(g - v))

    # --- phase 1: the smallest model that can overfit the smallest subset ------------------------
    def overfit_trials(self, level) -> list[tuple[dict, dict]]:
        """One probe per size on the smallest subset, trained for the whole epoch budget: early
        stopping on dev error would stop it before it had a chance to fit the training set."""
        n = self.data_sizes[0]
        out = []
        for i in range(len(self.sizes)):
            spec = self.spec(n, i, self.study.train.lr, self.cfg.weight_decays[0], 0, level)
            spec["train"]["patience"] = spec["train"]["max_epochs"]
            out.append((spec, {"stage": "overfit", "level": level_name(level)}))
        return out

    def small_end(self, results: dict[str, dict], level) -> int | None:
        """Index of the smallest size that overfits the smallest subset (None: probes not all done)."""
        probes = self.overfit_trials(level)
        if any(trial_id(s) not in results for s, _ in probes):
            return None
        rs = [results[trial_id(s)] for s, _ in probes]
        for i, r in enumerate(rs):
            if (
                r["status"] == "ok"
                and r["final_train_error"] is not None
                and r["final_train_error"] <= self.cfg.overfit_threshold
            ):
                return i
        if not any(r["status"] == "ok" and r["final_train_error"] is not None for r in rs):
            return 0  # a user trainer that reports no train error: start small (small data, small models)
        return len(self.sizes) - 1  # nothing overfits: the biggest model is the best we have

    # --- phase 2: Monte Carlo candidates per subset -------------------------------------------
    def candidates(self, k: int, small_i: int) -> list[tuple[int, float, float]]:
        """(size index, lr, weight decay) of the candidates for data size index k."""
        n_sub = len(self.data_sizes)
        t = (
            0.0
            if n_sub == 1
            else math.log(self.data_sizes[k] / self.data_sizes[0]) / math.log(self.data_sizes[-1] / self.data_sizes[0])
        )
        lp = [math.log(p) for _, p in self.sizes]
        centre_lp = (1 - t) * lp[small_i] + t * lp[self.ref_index]
        c = min(range(len(lp)), key=lambda i: abs(lp[i] - centre_lp))
        lr_c = self._nearest(self.lrs, math.exp((1 - t) * math.log(self.study.train.lr) + t * math.log(self.ref_lr)))
        lo, hi = max(0, c - self.cfg.size_spread), min(len(self.sizes) - 1, c + self.cfg.size_spread)
        space = [(i, lr, wd) for i in range(lo, hi + 1) for lr in self.lrs for wd in self.cfg.weight_decays]
        first = (c, lr_c, self.cfg.weight_decays[0])
        rest = [x for x in space if x != first]
        rng = np.random.default_rng([self.cfg.seed, k])
        order = rng.permutation(len(rest))
        return ([first] + [rest[j] for j in order])[: self.cfg.candidates]

    def lr_extensions(self, k: int, cands: list, results: dict[str, dict], level) -> list[tuple[int, float, float]]:
        """Extra (size index, lr, weight decay) candidates of subset k beyond the lr grid's edges, as far
        as the stored results make them known: each step needs the previous step's result."""
        if not self.cfg.extend_lr or len(self.lrs) < 2:
            return []
        n = self.data_sizes[k]

        def result(c):
            return results.get(trial_id(self.spec(n, c[0], c[1], c[2], 0, level)))

        def score(c):  # seed-0 min dev error; ties to fewer parameters (as stage 2 ranks them)
            r = result(c)
            return (r["min_dev_error"], self.sizes[c[0]][1]) if r and r["status"] == "ok" else None

        if any(result(c) is None for c in cands):  # stage 1 of this subset is not finished
            return []
        scored = [(score(c), c) for c in cands]
        scored = [(s, c) for s, c in scored if s is not None]  # a diverged or failed candidate has no score
        if not scored:
            return []
        best_s, best = min(scored)
        up, down = self.lrs[-1] / self.lrs[-2], self.lrs[1] / self.lrs[0]
        ext = []
        for _ in range(self.cfg.extend_lr):
            tried = [c[1] for c in cands + ext]
            if best[1] >= max(tried) * (1 - 1e-9):
                nxt = (best[0], best[1] * up, best[2])
            elif best[1] <= min(tried) * (1 + 1e-9):
                nxt = (best[0], best[1] / down, best[2])
            else:
                break
            ext.append(nxt)
            s = score(nxt)
            if s is None or s >= best_s:  # not run yet, diverged, or no better: stop here
                break
            best_s, best = s, nxt
        return ext

    def all_candidates(self, k: int, small_i: int, results: dict[str, dict], level) -> list:
        cands = self.candidates(k, small_i)
        return cands + self.lr_extensions(k, cands, results, level)

    def extension_trials(self, small: dict, results: dict[str, dict]) -> list[tuple[dict, dict]]:
        out = []
        for level in self.levels:
            for k, n in enumerate(self.data_sizes):
                cands = self.candidates(k, small[level_name(level)])
                for e, (i, lr, wd) in enumerate(self.lr_extensions(k, cands, results, level)):
                    out.append(
                        (
                            self.spec(n, i, lr, wd, 0, level),
                            {"stage": "lr-edge", "candidate": len(cands) + e, "level": level_name(level)},
                        )
                    )
        return out

    def stage1_trials(self, small: dict) -> list[tuple[dict, dict]]:
        out = []
        for level in self.levels:
            for k, n in enumerate(self.data_sizes):
                for j, (i, lr, wd) in enumerate(self.candidates(k, small[level_name(level)])):
                    out.append(
                        (
                            self.spec(n, i, lr, wd, 0, level),
                            {"stage": "candidate", "candidate": j, "level": level_name(level)},
                        )
                    )
        return out

    # --- phase 3: seeds for the promising candidates ------------------------------------------
    def stage2_trials(self, small: dict, results: dict[str, dict]) -> list[tuple[dict, dict]]:
        out = []
        for level in self.levels:
            for k, n in enumerate(self.data_sizes):
                cands = self.all_candidates(k, small[level_name(level)], results, level)
                scored = []
                for j, (i, lr, wd) in enumerate(cands):
                    r = results.get(trial_id(self.spec(n, i, lr, wd, 0, level)))
                    if r and r["status"] == "ok":
                        scored.append((r["min_dev_error"], self.sizes[i][1], j))
                for _, _, j in sorted(scored)[: self.cfg.promote]:
                    i, lr, wd = cands[j]
                    for seed in range(1, self.study.seeds):
                        out.append(
                            (
                                self.spec(n, i, lr, wd, seed, level),
                                {"stage": "seeds", "candidate": j, "level": level_name(level)},
                            )
                        )
        return out

    # --- driver ------------------------------------------------------------------------------
    def planned(self, results: dict[str, dict]) -> list[tuple[dict, dict]]:
        """Every trial of every phase that the stored results make known."""
        out = [t for level in self.levels for t in self.overfit_trials(level)]
        small = {level_name(lv): self.small_end(results, lv) for lv in self.levels}
        if all(v is not None for v in small.values()):
            out += (
                self.stage1_trials(small) + self.extension_trials(small, results) + self.stage2_trials(small, results)
            )
        return out

    def next_trials(self, results: dict[str, dict]) -> list[tuple[dict, dict]]:
        """The trials of the first phase that is not finished (empty when the search is done).

        results: trial id -> result dict of every finished trial in the store.
        """
        probes = [t for level in self.levels for t in self.overfit_trials(level)]
        missing = [t for t in probes if trial_id(t[0]) not in results]
        if missing:
            return missing
        small = {level_name(lv): self.small_end(results, lv) for lv in self.levels}
        # extensions come one step per round (each step needs the previous one's result)
        for phase in (
            lambda: self.stage1_trials(small),
            lambda: self.extension_trials(small, results),
            lambda: self.stage2_trials(small, results),
        ):
            missing = [t for t in phase() if trial_id(t[0]) not in results]
            if missing:
                return missing
        return []

    def estimate_total(self) -> int:
        per_level = len(self.sizes) + len(self.data_sizes) * (
            self.cfg.candidates + self.cfg.promote * (self.study.seeds - 1)
        )
        return per_level * len(self.levels)
