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


# --- successive halving (prune = true) ------------------------------------------------------------

PRUNED = STUDY.replace("prune = false", "prune = true")


class BudgetFake(FakeBackend):
    """FakeBackend whose candidates converge over epochs: after b of max_epochs epochs the minimum dev
    error is the full one times 1 + 0.5 * (1 - b / max_epochs) * speed, where the planted best lr
    learns *slower* than the others early on (speed 1.2 vs 1), so a rung that ranked by the first
    epochs alone could lose it. Records every trial id it trains and the epochs it spends."""

    def __init__(self, search, stop_after=None, **kw):
        super().__init__(search, **kw)
        self.ids, self.epochs, self.stop_after = [], 0, stop_after

    def map(self, specs, device="cpu"):
        for s, r in super().map(specs, device):
            if self.stop_after is not None and len(self.ids) >= self.stop_after:
                raise KeyboardInterrupt  # a kill: what was yielded so far is committed
            b, full = s["train"]["max_epochs"], s.get("rung", {}).get("epochs")
            full_epochs = 100  # STUDY's max_epochs (the TrainConfig default)
            if r["status"] == "ok" and full is not None:
                speed = 1.2 if abs(s["train"]["lr"] - self.lr_best) < 1e-12 else 1.0
                r = {**r, "min_dev_error": r["min_dev_error"] * (1 + 0.5 * speed * (1 - b / full_epochs))}
            self.ids.append(r["id"])
            self.epochs += b
            yield s, {**r, "epochs": b, "train_flops": float(r["params"] * b)}


def test_planted_best_survives_pruning(tmp_path):
    """With pruning on (the default), every data size's best-fit point is the planted best size at the
    planted lr, with all seeds, as in the unpruned search; and it costs far fewer epochs."""
    study = parse_study(PRUNED, "fake.toml")
    assert study.search.prune and parse_study(STUDY.replace("prune = false\n", ""), "f.toml").search.prune
    search = HestnessSearch(study)
    assert search.budgets == [17]  # 1/6 of max_epochs = 100
    fake = BudgetFake(search)
    summary = run_study(study, tmp_path / "pruned", backend=fake, log=lambda m: None)
    grid_params = [p for _, p in search.sizes]
    for pt in summary["points"]:
        assert pt["params"] == min(grid_params, key=lambda p: fake.error(pt["data_size"], p)), pt
        assert pt["n_seeds"] == 3 and pt["lr"] == pytest.approx(0.01)
    full_study = parse_study(STUDY, "fake.toml")
    full = BudgetFake(HestnessSearch(full_study))
    unpruned = run_study(full_study, tmp_path / "full", backend=full, log=lambda m: None)
    assert [p["params"] for p in summary["points"]] == [p["params"] for p in unpruned["points"]]
    assert fake.epochs < 0.7 * full.epochs  # every trial of the fake runs its whole budget (no early stop)
    # a rung trial is no best-fit candidate: the points are medians of full-budget trials only
    from scalinglab.store import load_results

    df = load_results(tmp_path / "pruned")
    rungs = df[df["tag_stage"] == "rung"]
    assert len(rungs) and (rungs["epochs"] == 17).all()
    best_ids = set(df[df["tag_stage"] != "rung"]["id"])
    assert len(best_ids) < len(full.ids)  # fewer full-budget trials than the unpruned search


def test_rung_trial_is_its_own_trial():
    """The trial id covers the budget: a rung is a different trial from its candidate's full run, and
    the survivor's full run is the unpruned search's very trial."""
    from scalinglab.search.halving import keep_count, rung_budgets, rung_spec

    pruned, full = HestnessSearch(parse_study(PRUNED, "f.toml")), HestnessSearch(parse_study(STUDY, "f.toml"))
    sp = pruned.spec(100, 3, 0.01, 0.0, 0, None)
    assert trial_id(sp) == trial_id(full.spec(100, 3, 0.01, 0.0, 0, None))
    r = rung_spec(sp, 17)
    assert trial_id(r) != trial_id(sp) and r["train"]["max_epochs"] == 17 and sp["train"]["max_epochs"] == 100
    assert rung_budgets(60, (1 / 9, 1 / 3)) == [7, 20] and rung_budgets(3, (0.1, 0.2)) == [1]
    assert keep_count(4, 3, 2) == 2 and keep_count(9, 3, 2) == 3 and keep_count(1, 3, 2) == 1


@pytest.mark.parametrize("kill_after", [14, 40, 75])
def test_resumed_pruned_study_repeats_no_trial(tmp_path, kill_after):
    """Killed after `kill_after` trials (probes, a rung round, the seeds' rung) and resumed: the second
    session trains only trials the first did not, and the two together train exactly the trials of an
    uninterrupted run, with the same summary."""
    study = parse_study(PRUNED, "fake.toml")
    ref = BudgetFake(HestnessSearch(study))
    want = run_study(study, tmp_path / "ref", backend=ref, log=lambda m: None)
    first = BudgetFake(HestnessSearch(study), stop_after=kill_after)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, tmp_path / "run", backend=first, log=lambda m: None)
    assert len(first.ids) == kill_after
    second = BudgetFake(HestnessSearch(study))
    got = run_study(study, tmp_path / "run", backend=second, log=lambda m: None)
    assert not set(first.ids) & set(second.ids)
    assert len(second.ids) == len(set(second.ids))
    assert sorted(first.ids + second.ids) == sorted(ref.ids)
    assert [(p["data_size"], p["params"], p["error"]) for p in got["points"]] == [
        (p["data_size"], p["params"], p["error"]) for p in want["points"]
    ]
    third = BudgetFake(HestnessSearch(study))  # a third run: nothing left to do
    run_study(study, tmp_path / "run", backend=third, log=lambda m: None)
    assert third.ids == []


def test_no_prune_is_the_old_search_and_shares_survivors(tmp_path):
    """prune = false runs no rung trial; after a pruned run in the same folder it trains only what the
    pruned search left out (the survivors' full trials are the same trials)."""
    pruned = parse_study(PRUNED, "fake.toml")
    first = BudgetFake(HestnessSearch(pruned))
    run_study(pruned, tmp_path, backend=first, log=lambda m: None)
    off = parse_study(STUDY, "fake.toml")
    alone = BudgetFake(HestnessSearch(off))
    run_study(off, tmp_path / "alone", backend=alone, log=lambda m: None)
    after = BudgetFake(HestnessSearch(off))
    run_study(off, tmp_path, backend=after, log=lambda m: None)
    shared = set(alone.ids) & set(first.ids)
    assert shared and set(after.ids) == set(alone.ids) - shared
    from scalinglab.store import load_results

    assert "rung" not in set(load_results(tmp_path / "alone")["tag_stage"])


def test_schedules_run_the_same_trials_in_no_more_rounds(tmp_path):
    """schedule "subset" (each data size goes on alone) and "phase" (all wait at each phase) train the
    same trials; "subset" needs no more rounds (here, where every subset keeps pace, as many), so its
    rounds (the batched trainer's groups) are at least as big."""
    study = parse_study(PRUNED, "fake.toml")
    rounds = {}
    for sched in ("subset", "phase"):
        search = HestnessSearch(study, schedule=sched)
        fake, done, n = BudgetFake(search), {}, 0
        while todo := search.next_trials(done):
            n += 1
            done.update((r["id"], r) for _, r in fake.map([s for s, _ in todo]))
        rounds[sched] = (n, set(done))
    assert rounds["subset"][1] == rounds["phase"][1]
    assert rounds["subset"][0] <= rounds["phase"][0]


def test_no_prune_flag(monkeypatch, tmp_path):
    """`scalinglab run --no-prune` runs the study with [search] prune = false."""
    seen = {}

    class Seen(Exception):  # stops the command before it trains anything
        pass

    def fake_run_study(study, out, **kw):
        seen["prune"] = study.search.prune
        raise Seen

    monkeypatch.setattr("scalinglab.runner.run_study", fake_run_study)
    from scalinglab.cli.main import main

    for flag, want in (["--no-prune"], False), ([], True):
        with pytest.raises(Seen):
            main(["run", "default", "--out", str(tmp_path / "x"), "--no-progress", *flag])
        assert seen["prune"] is want


def test_user_trainer_rung_should_stop():
    """A user trainer's `should_stop()` turns True once a rung's budget of epochs is reported."""
    from scalinglab.train.user import Trial

    spec = {"data_size": 10, "model": {"size": {}}, "train": {"max_epochs": 3}, "seed": 0, "rung": {"epochs": 3}}
    t = Trial(spec, "cpu", None, None)
    for e in range(1, 4):
        assert not t.should_stop()
        t.report(epoch=e, dev=0.5)
    assert t.should_stop()
    assert not Trial({**spec, "rung": None}, "cpu", None, None).should_stop()
