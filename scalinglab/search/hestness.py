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
3. Seeds: every candidate (extensions included) is trained with seed 0; the `promote` best get the
   other seeds. A candidate's score is the median over seeds of its minimum dev error.

Pruning (`search.prune`, the default; search/halving.py): the candidates of a subset first train for
short rung budgets (`rungs`, fractions of max_epochs), only the best 1/`eta` (never fewer than
`promote`) go on, and the survivors train in full; an lr-edge step goes on only while it would have
made each rung's cut. The promoted candidates' other seeds first train for the last rung's budget and
only the best 1/`eta` of them by median over seeds there get their seeds in full, so the best-fit point
is still the median over seeds of full runs. `prune = false` runs exactly the trials of the unpruned
search, and the survivors' full trials are the same trials (same ids) as the unpruned search's.

Each step is a pure function of the study and the trials already stored, so a killed search resumes
where it stopped and `next_trials` can be called again and again until it returns nothing new. Each
data size goes on as soon as its own trials are done, so one round mixes phases and data sizes and the
batched trainer gets bigger groups.
"""

from __future__ import annotations

import math

import numpy as np

from scalinglab.config import Study
from scalinglab.search.grid import base_spec, level_name, level_overrides, level_size
from scalinglab.search.halving import best_of, keep_count, rung_budgets, rung_spec
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
    def __init__(self, study: Study, sizes_params: list[tuple[dict, int]] | None = None, *, schedule: str = "subset"):
        """schedule: "subset" (each data size goes on as soon as its own trials are done: wider groups)
        or "phase" (every data size waits for the others at each phase; for before/after comparisons)."""
        if schedule not in ("subset", "phase"):
            raise ValueError(f"schedule: given {schedule!r}; allowed: subset, phase")
        self.schedule = schedule
        self.study = study
        self.cfg = study.search
        self.sizes = sizes_params or size_table(study)
        self.data_sizes = study.sizes()
        self.levels = list(self.cfg.levels) if self.cfg.factor else [None]
        self.lrs = self.cfg.lr_grid(study.train.lr)
        ref = dict(self.cfg.reference or {})
        self.ref_lr = float(ref.pop("lr", study.train.lr))
        self.ref_index = self._index_of(ref) if ref else len(self.sizes) - 1
        # successive halving: the rung budgets in epochs (none: every candidate trains in full)
        self.budgets = rung_budgets(study.train.max_epochs, self.cfg.rungs) if self.cfg.prune else []

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

    def _next_edge(self, best: tuple, tried: list[float]) -> tuple | None:
        """The lr-edge step after `best` (one grid ratio past the edge it sits on), or None."""
        up, down = self.lrs[-1] / self.lrs[-2], self.lrs[1] / self.lrs[0]
        if best[1] >= max(tried) * (1 - 1e-9):
            return (best[0], best[1] * up, best[2])
        if best[1] <= min(tried) * (1 + 1e-9):
            return (best[0], best[1] / down, best[2])
        return None

    # --- one subset, step by step -------------------------------------------------------------
    def subset_steps(self, level, k: int, small_i: int, results: dict[str, dict]) -> list[tuple]:
        """The trials of data size k (at one factor level), step by step, as far as the stored results
        make them known: [(phase, [(spec, tags)])]. Each step needs the results of the ones before it,
        so the list ends at the first step with unfinished trials (or when the subset is done).

        phase orders the steps across subsets for `schedule = "phase"` (every subset waits for the
        others at each phase, as the search first did): (0, r) stage-1 rungs and full, (1, r) lr-edge
        steps, (2, r) seeds."""
        n, lv = self.data_sizes[k], level_name(level)
        R = len(self.budgets)
        steps: list[tuple] = []

        def add(phase, trials) -> bool:  # True when every trial of the step is done
            steps.append((phase, trials))
            return all(trial_id(sp) in results for sp, _ in trials)

        def err(spec):
            r = results.get(trial_id(spec))
            return r["min_dev_error"] if r and r["status"] == "ok" else None

        def full(c, seed=0):
            return self.spec(n, c[0], c[1], c[2], seed, level)

        def rung(c, r, seed=0):
            return rung_spec(full(c, seed), self.budgets[r])

        def params(c):
            return self.sizes[c[0]][1]

        # stage 1: every candidate with seed 0, through the rungs; the survivors with the full budget
        cands = self.candidates(k, small_i)
        alive = list(range(len(cands)))
        for r, b in enumerate(self.budgets):
            tags = {"stage": "rung", "rung": b, "level": lv}
            if not add((0, r), [(rung(cands[j], r), {**tags, "candidate": j}) for j in alive]):
                return steps
            scored = [(e, params(cands[j]), j) for j in alive if (e := err(rung(cands[j], r))) is not None]
            alive = best_of(scored, keep_count(len(alive), self.cfg.eta, self.cfg.promote))
        if not add((0, R), [(full(cands[j]), {"stage": "candidate", "candidate": j, "level": lv}) for j in alive]):
            return steps
        finished = sorted(alive)  # indices into allc with a full seed-0 trial

        # lr edges: a best candidate on the grid's largest (smallest) lr is tried one grid ratio further
        # out, while that keeps improving; a step goes through the rungs too, and stops there unless
        # it would have made the cut (beats the worst stage-1 survivor at that rung)
        allc = list(cands)
        scored = [(e, params(allc[j]), j) for j in finished if (e := err(full(allc[j]))) is not None]
        if self.cfg.extend_lr and len(self.lrs) >= 2 and scored:
            (best_s, _, bj) = min(scored, key=lambda t: (t[0], t[1]))
            best_s, best = (best_s, params(allc[bj])), allc[bj]
            survivors = list(alive)
            for _ in range(self.cfg.extend_lr):
                nxt = self._next_edge(best, [c[1] for c in allc])
                if nxt is None:
                    break
                allc.append(nxt)
                j = len(allc) - 1
                tags = {"candidate": j, "level": lv}
                passed = True
                for r, b in enumerate(self.budgets):
                    if not add((1, r), [(rung(nxt, r), {**tags, "stage": "rung", "rung": b})]):
                        return steps
                    cut = [e for i in survivors if (e := err(rung(allc[i], r))) is not None]
                    e = err(rung(nxt, r))
                    if e is None or (cut and e >= max(cut)):
                        passed = False
                        break
                if not passed:
                    break
                if not add((1, R), [(full(nxt), {**tags, "stage": "lr-edge"})]):
                    return steps
                finished.append(j)
                e = err(full(nxt))
                if e is None or (e, params(nxt)) >= best_s:  # diverged, or no better: stop here
                    break
                best_s, best = (e, params(nxt)), nxt

        # stage 2: the `promote` best get the other seeds; pruned: first for the last rung's budget,
        # and only the best 1/eta by median over seeds at that budget go on to the full budget
        scored = [(e, params(allc[j]), j) for j in finished if (e := err(full(allc[j]))) is not None]
        promoted = best_of(scored, self.cfg.promote)
        seeds = range(1, self.study.seeds)
        if R and len(promoted) > 1 and len(seeds):
            trials = [
                (rung(allc[j], R - 1, s), {"stage": "rung", "rung": self.budgets[-1], "candidate": j, "level": lv})
                for j in promoted
                for s in seeds
            ]
            if not add((2, 0), trials):
                return steps
            med = []
            for j in promoted:
                errs = [err(rung(allc[j], R - 1, s)) for s in range(self.study.seeds)]
                if all(e is not None for e in errs):  # a seed that diverged drops its candidate
                    med.append((float(np.median(errs)), params(allc[j]), j))
            promoted = best_of(med, keep_count(len(promoted), self.cfg.eta, 1))
        add(
            (2, R),
            [(full(allc[j], s), {"stage": "seeds", "candidate": j, "level": lv}) for j in promoted for s in seeds],
        )
        return steps

    # --- driver ------------------------------------------------------------------------------
    def _all_steps(self, results: dict[str, dict]) -> list[list[tuple]] | None:
        """Every subset's steps (None while the overfit probes are not all done)."""
        small = {level_name(lv): self.small_end(results, lv) for lv in self.levels}
        if any(v is None for v in small.values()):
            return None
        return [
            self.subset_steps(level, k, small[level_name(level)], results)
            for level in self.levels
            for k in range(len(self.data_sizes))
        ]

    def planned(self, results: dict[str, dict]) -> list[tuple[dict, dict]]:
        """Every trial of every phase that the stored results make known."""
        out = [t for level in self.levels for t in self.overfit_trials(level)]
        for steps in self._all_steps(results) or []:
            out += [t for _, trials in steps for t in trials]
        return out

    def next_trials(self, results: dict[str, dict]) -> list[tuple[dict, dict]]:
        """The unfinished trials that can run now (empty when the search is done).

        results: trial id -> result dict of every finished trial in the store.
        schedule "subset" (the default): every subset's next step, whatever phase the others are in,
        so one round holds rungs, full runs and seeds of several data sizes together and the batched
        trainer gets bigger groups; "phase": only the subsets at the earliest phase."""
        probes = [t for level in self.levels for t in self.overfit_trials(level)]
        missing = [t for t in probes if trial_id(t[0]) not in results]
        if missing:
            return missing
        pending = []
        for steps in self._all_steps(results):
            if steps:
                phase, trials = steps[-1]
                todo = [t for t in trials if trial_id(t[0]) not in results]
                if todo:
                    pending.append((phase, todo))
        if self.schedule == "phase" and pending:
            first = min(p for p, _ in pending)
            pending = [(p, t) for p, t in pending if p == first]
        return [t for _, todo in pending for t in todo]

    def estimate_total(self) -> int:
        """Trials a finished search holds, about (lr-edge steps not counted)."""
        c, p, seeds = self.cfg.candidates, self.cfg.promote, self.study.seeds - 1
        per_subset, alive = 0, c
        for _ in self.budgets:  # each rung trains the survivors of the one before
            per_subset += alive
            alive = keep_count(alive, self.cfg.eta, p)
        promoted = min(alive, p)
        per_subset += alive + promoted * seeds
        if self.budgets and promoted > 1:  # the promoted seeds' rung, then the best 1/eta in full
            per_subset += promoted * seeds - (promoted - keep_count(promoted, self.cfg.eta, 1)) * seeds
        return (len(self.sizes) + len(self.data_sizes) * per_subset) * len(self.levels)
