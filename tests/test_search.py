"""The Hestness search's bookkeeping, on a fake trainer whose minimum dev error is a known function of
model size and data size (with seed noise)."""

import json
import math

import numpy as np
import pytest

from scalinglab.config import parse_study
from scalinglab.runner import run_study
from scalinglab.search import HestnessSearch
from scalinglab.train.trial import trial_id

WIDTHS = [4, 6, 8, 11, 16, 23, 32, 45, 64, 90, 128]
STUDY = f"""
name = "fake"
seeds = 3
[data]
name = "teacher"
options = {{ n_train = 20000, n_dev = 100, n_test = 100, dim = 8, n_classes = 4 }}
sizes = {{ min = 50, max = 12800, factor = 2 }}
[model]
family = "mlp"
widths = {WIDTHS}
depths = [2]
[train]
lr = 0.01
[search]
kind = "hestness"
candidates = 5
promote = 2
size_spread = 1
prune = false
"""
ALPHA, BETA, GAMMA = 0.9, -0.35, 0.03  # planted learning curve of the best model


class FakeBackend:
    """Minimum dev error = f(m) * (1 + 0.3 * log(N / N*(m))^2) * (1 + seed noise), where the best
    size N*(m) = sigma * m**beta_p runs from the smallest overfitting model at the smallest subset to
    the largest model at the largest. A model overfits the smallest subset when N >= P0."""

    def __init__(self, search: HestnessSearch, lr_penalty=True, lr_best=0.01):
        p = [pp for _, pp in search.sizes]
        m = search.data_sizes
        self.p0 = p[2]  # the third size is the smallest that overfits
        self.beta_p = math.log(p[-1] / self.p0) / math.log(m[-1] / m[0])
        self.sigma = self.p0 / m[0] ** self.beta_p
        self.params = {json.dumps(s, sort_keys=True): pp for s, pp in search.sizes}
        self.lr_penalty, self.lr_best = lr_penalty, lr_best
        self.diverge_at = math.inf  # trials with lr >= this diverge
        self.calls = 0

    def error(self, m, n_params, seed=None, lr=0.01):
        best = self.sigma * m**self.beta_p
        f = ALPHA * m**BETA + GAMMA
        e = f * (1 + 0.3 * math.log(n_params / best) ** 2)
        if self.lr_penalty:
            e *= 1 + 0.2 * abs(math.log10(lr / self.lr_best))
        if seed is not None:
            e *= 1 + 0.01 * np.random.default_rng([seed, m, int(n_params)]).standard_normal()
        return e

    def map(self, specs, device="cpu"):
        for s in specs:
            self.calls += 1
            n = self.params[json.dumps(s["model"]["size"], sort_keys=True)]
            m = s["data_size"]
            if s["train"]["lr"] >= self.diverge_at:
                yield (
                    s,
                    {
                        "id": trial_id(s),
                        "status": "diverged",
                        "min_dev_error": None,
                        "final_train_error": None,
                        "params": n,
                        "best_epoch": None,
                        "epochs": 1,
                        "test_error": None,
                        "history": [],
                        "wall_time": 0.0,
                    },
                )
                continue
            yield (
                s,
                {
                    "id": trial_id(s),
                    "status": "ok",
                    "min_dev_error": self.error(m, n, s["seed"], s["train"]["lr"]),
                    "final_train_error": 0.0 if n >= self.p0 else 0.2,
                    "params": n,
                    "best_epoch": 1,
                    "epochs": 1,
                    "test_error": 0.5,
                    "history": [],
                    "wall_time": 0.0,
                },
            )


@pytest.fixture
def study():
    return parse_study(STUDY, "fake.toml")


def test_smallest_overfit_end_point(study):
    search = HestnessSearch(study)
    fake = FakeBackend(search)
    results = {s_r[1]["id"]: s_r[1] for s_r in fake.map([s for s, _ in search.overfit_trials(None)])}
    assert search.small_end(results, None) == 2
    assert search.small_end({}, None) is None  # probes not finished: no answer yet


def test_search_finds_planted_best_sizes_and_laws(study, tmp_path):
    search = HestnessSearch(study)
    fake = FakeBackend(search)
    summary = run_study(study, tmp_path, backend=fake, log=lambda m: None)
    grid_params = [p for _, p in search.sizes]
    for pt in summary["points"]:
        truth = min(grid_params, key=lambda p: fake.error(pt["data_size"], p))
        assert pt["params"] == truth, pt
        assert pt["n_seeds"] == 3 and pt["lr"] == pytest.approx(0.01)
    sizes = [p["params"] for p in summary["points"]]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]  # best sizes grow with data
    msl = summary["model_size_law"]
    assert msl["params"]["beta_p"] == pytest.approx(fake.beta_p, abs=0.06)
    lo, hi = msl["ci"]["beta_p"]
    assert lo < hi
    assert summary["learning_curve"]["exponent"] < 0
    # trial budget: probes + candidates + lr-edge extensions + promoted seeds, nothing more
    n_sub = len(study.sizes())
    assert fake.calls <= len(WIDTHS) + n_sub * (5 + study.search.extend_lr + 2 * 2)
    # a rerun reuses everything; a bigger budget reuses every finished trial
    calls = fake.calls
    run_study(study, tmp_path, backend=fake, log=lambda m: None)
    assert fake.calls == calls
    bigger = parse_study(STUDY.replace("candidates = 5", "candidates = 7"), "fake.toml")
    fake2 = FakeBackend(HestnessSearch(bigger))
    run_study(bigger, tmp_path, backend=fake2, log=lambda m: None)
    assert 0 < fake2.calls <= n_sub * (2 + 2 * 2)


def test_learning_curve_exponent_recovered(study, tmp_path):
    search = HestnessSearch(study)
    fake = FakeBackend(search, lr_penalty=False)
    from scalinglab.analysis.summary import fit_learning_curve

    summary = run_study(study, tmp_path, backend=fake, log=lambda m: None, form="pow_c")
    fit = fit_learning_curve(summary["points"], y0=0.75, form="pow_c")
    # the best-fit error tracks f(m) up to the grid's discreteness (N off N* by < half a step)
    assert fit.params["beta"] == pytest.approx(BETA, abs=0.05)
    assert summary["learning_curve"]["form"] == "pow_c"


def test_candidates_are_stable_when_budget_grows(study):
    s5 = HestnessSearch(study)
    bigger = parse_study(STUDY.replace("candidates = 5", "candidates = 9"), "x.toml")
    s9 = HestnessSearch(bigger)
    for k in range(len(study.sizes())):
        assert s9.candidates(k, 2)[:5] == s5.candidates(k, 2)
        c = s5.candidates(k, 2)
        assert len(set(c)) == len(c)


def test_factor_levels_are_searched_and_compared(tmp_path, capsys):
    text = STUDY.replace("[search]", '[search]\nfactor = "optimizer"\nlevels = ["sgd", "adam"]')
    study = parse_study(text, "f.toml")
    search = HestnessSearch(study)
    fake = FakeBackend(search)
    summary = run_study(study, tmp_path, backend=fake, log=lambda m: None)
    levels = summary["factor"]["levels"]
    assert set(levels) == {"sgd", "adam"}
    for lv in levels.values():
        assert lv["learning_curve"]["exponent"] < 0
    # the fake ignores the optimizer: the two curves are the same up to seed noise
    assert summary["factor"]["comparison"]["exponents_overlap"] is True
    # `scalinglab status` shows one block of rows per level, each with that level's own trials
    from scalinglab.cli.main import main

    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.lstrip("│| ").startswith(("sgd", "adam"))]
    assert len(rows) == 2 * len(study.sizes()), out
    per_level = len(summary["factor"]["levels"]["sgd"]["points"])
    assert per_level == len(study.sizes())


@pytest.mark.parametrize("lr_best,found", [(0.1, 0.09), (0.001, 0.01 / 9)])
def test_lr_grid_edges_are_extended(study, tmp_path, lr_best, found):
    """The planted best lr lies outside the grid (0.01 x {1/3, 1, 3}): where a subset's best candidate
    sits on the grid's edge, the search steps past it (x3 or /3) while that keeps improving, so no
    subset ends on the edge; with extend_lr = 0 they stay there. (A subset whose best candidate has a
    mid-grid lr, because the Monte Carlo sample paired the best size only with it, is not extended.)"""
    edge = 0.03 if lr_best > 0.01 else 0.01 / 3
    fake = FakeBackend(HestnessSearch(study), lr_best=lr_best)
    summary = run_study(study, tmp_path / "ext", backend=fake, log=lambda m: None)
    lrs = [pt["lr"] for pt in summary["points"]]
    assert not any(lr == pytest.approx(edge) for lr in lrs), lrs
    assert sum(lr == pytest.approx(found) for lr in lrs) >= len(lrs) // 2, lrs
    calls = fake.calls  # a rerun redoes nothing: the extensions are a pure function of the store
    run_study(study, tmp_path / "ext", backend=fake, log=lambda m: None)
    assert fake.calls == calls
    off = parse_study(STUDY + "extend_lr = 0\n", "fake.toml")
    summary = run_study(
        off, tmp_path / "off", backend=FakeBackend(HestnessSearch(off), lr_best=lr_best), log=lambda m: None
    )
    lrs = [pt["lr"] for pt in summary["points"]]
    assert not any(lr == pytest.approx(found) for lr in lrs) and any(lr == pytest.approx(edge) for lr in lrs)


def test_diverged_candidates_do_not_block_lr_extension(study, tmp_path):
    """Candidates at the grid's top lr diverge; the best lies below the grid: the search still steps
    down past the bottom edge (a diverged candidate has no score, but its subset's stage 1 is done)."""
    fake = FakeBackend(HestnessSearch(study), lr_best=0.001)
    fake.diverge_at = 0.02
    summary = run_study(study, tmp_path, backend=fake, log=lambda m: None)
    lrs = [pt["lr"] for pt in summary["points"]]
    assert not any(lr == pytest.approx(0.01 / 3) for lr in lrs), lrs
    assert any(lr == pytest.approx(0.01 / 9) for lr in lrs), lrs
