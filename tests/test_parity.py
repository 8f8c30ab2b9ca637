"""The parity data set, the capacity study's bookkeeping (fake trainer) and parity-smoke end to end."""

import json
import math

import numpy as np
import pytest

from scalinglab.config import parse_study, preset_text
from scalinglab.data import load
from scalinglab.errors import UserError
from scalinglab.models import describe_spec
from scalinglab.search import make_search
from scalinglab.search.capacity import CapacitySearch
from scalinglab.train.trial import trial_id


def _parity(x):
    return ((x < 0).sum(1) % 2).astype(np.int64)


# --- the generator -----------------------------------------------------------------------------


def test_cube_holds_every_input_once_with_correct_labels():
    ds = load("parity", {"n": 6})
    assert ds.x_train.shape == ds.x_dev.shape == ds.x_test.shape == (64, 6) and ds.n_classes == 2
    assert set(np.unique(ds.x_train)) == {-1.0, 1.0}
    codes = ((ds.x_train < 0) * (1 << np.arange(6))).sum(1)
    assert sorted(codes) == list(range(64))  # every input once
    for x, y in ((ds.x_train, ds.y_train), (ds.x_dev, ds.y_dev), (ds.x_test, ds.y_test)):
        assert (y == _parity(x)).all()
    assert ds.y_train.mean() == 0.5


def test_generator_is_deterministic_and_seeded():
    a, b = load("parity", {"n": 8, "seed": 1}), load("parity", {"n": 8, "seed": 1})
    c = load("parity", {"n": 8, "seed": 2})
    from scalinglab.data.parity import make_parity

    fresh = make_parity(n=8, noise=0.0, cube=True, n_train=1, n_dev=1, n_test=1, seed=1)  # not the cache
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_train, fresh.x_train)
    assert not np.array_equal(a.x_train, c.x_train)  # another order of the same cube


def test_label_noise_flips_training_labels_at_the_given_rate_only():
    ds = load("parity", {"n": 12, "cube": False, "noise": 0.1, "n_train": 40000, "n_dev": 2000, "n_test": 2000})
    flipped = (ds.y_train != _parity(ds.x_train)).mean()
    assert abs(flipped - 0.1) < 0.006  # 3 sigma of a binomial at 40000
    assert ds.meta["flipped_train"] == round(flipped * 40000) and ds.meta["label_noise"] == 0.1
    assert (ds.y_dev == _parity(ds.x_dev)).all() and (ds.y_test == _parity(ds.x_test)).all()  # clean


@pytest.mark.parametrize(
    "options,needle",
    [
        ("{ n = 30 }", "n: given 30; allowed: 1..20 bits with cube"),
        ("{ n = 8, noise = 0.5 }", "noise: given 0.5; allowed: [0, 0.5)"),
        ('{ n = "eight" }', "data.options.n: given 'eight'"),
    ],
)
def test_bad_parity_options_fail_at_load(options, needle):
    text = preset_text("parity-smoke").replace("options = { cube = true }", f"options = {options}")
    with pytest.raises(UserError) as e:
        parse_study(text, "p.toml")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_capacity_values_fail_at_load():
    text = preset_text("parity-smoke")
    with pytest.raises(UserError, match=r"search.values: data.options: n: given 25"):
        parse_study(text.replace("values = [3, 4, 5, 6]", "values = [3, 25]"), "p.toml")
    with pytest.raises(UserError, match=r"search.vary: given 'bits'; allowed: an option of data set 'parity'"):
        parse_study(text.replace('vary = "n"', 'vary = "bits"'), "p.toml")
    sized = text.replace("widths = [2, 4, 8, 16]", "sizes = [{ width = 4, depth = 1 }]").replace(
        "depths = [1, 3]\n", ""
    )
    with pytest.raises(UserError, match=r"model.sizes: given with kind capacity; allowed: widths"):
        parse_study(sized, "p.toml")
    with pytest.raises(UserError, match=r'kind = "capacity" needs vary'):
        parse_study(text.replace('vary = "n"\n', ""), "p.toml")


# --- the capacity search, on a fake trainer --------------------------------------------------------

WIDTHS = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256]
STUDY = f"""
name = "cap"
seeds = 3
[data]
name = "parity"
sizes = {{ list = [2, 1048576] }}
[model]
family = "mlp"
widths = {WIDTHS}
depths = [1, 4]
[search]
kind = "capacity"
vary = "n"
values = [4, 6, 8, 10, 12, 14]
"""


def need(n, depth):
    """Planted: depth 1 needs width 2^(n/2) (parameters ~ n 2^(n/2): exponential), depth 4 width n."""
    return 2 ** (n / 2) if depth == 1 else n


class CapacityFake:
    """Min dev error 0 at widths >= need(n, depth) (one seed of three fails at the threshold width),
    0.5 below; parameters of the real MLP."""

    def __init__(self):
        self.calls = []

    def map(self, specs, device="cpu"):
        for s in specs:
            n, size = s["data"]["options"]["n"], s["model"]["size"]
            self.calls.append((n, size["depth"], size["width"], s["seed"]))
            w, thr = size["width"], need(n, size["depth"])
            err = 0.0 if w >= thr else 0.5
            if w >= thr and s["seed"] == 2 and w < 1.5 * thr:
                err = 0.3  # a seed that misses: the median over 3 seeds still reaches
            p = describe_spec(s["model"], (n,), 2)["params"]
            yield (
                s,
                {
                    "id": trial_id(s),
                    "status": "ok",
                    "min_dev_error": err,
                    "final_train_error": err,
                    "params": p,
                    "best_epoch": 1,
                    "epochs": 1,
                    "test_error": err,
                    "history": [],
                    "wall_time": 0.0,
                },
            )


def test_capacity_finds_planted_widths_and_skips_the_rest(tmp_path):
    from scalinglab.runner import run_study

    study = parse_study(STUDY, "cap.toml")
    assert isinstance(make_search(study), CapacitySearch)
    fake = CapacityFake()
    summary = run_study(study, tmp_path, backend=fake, log=lambda m: None)
    cap = summary["capacity"]
    for d in (1, 4):
        got = {r["value"]: r["width"] for r in cap["depths"][str(d)]["answers"]}
        want = {n: min(w for w in WIDTHS if w >= need(n, d)) for n in study.search.values}
        assert got == want, (d, got, want)
        assert all(r["reached"] for r in cap["depths"][str(d)]["answers"])
    # every rung has all seeds; each model trains on the whole cube; far fewer than the full grid
    assert len(fake.calls) == len(set(fake.calls)) and len(fake.calls) % 3 == 0
    assert len(fake.calls) < 0.3 * len(WIDTHS) * 2 * 6 * 3
    import sqlite3

    sizes = sqlite3.connect(tmp_path / "results.sqlite").execute("SELECT spec FROM trials").fetchall()
    assert all(json.loads(s)["data_size"] == 2 ** json.loads(s)["data"]["options"]["n"] for (s,) in sizes)
    # the fits: depth 1 grows exponentially (rate ~ 1/2 doubling per bit, plus the n in n*w), depth 4 not
    e1, e4 = cap["depths"]["1"]["fit"]["exponential"], cap["depths"]["4"]["fit"]["exponential"]
    assert 0.4 < e1["rate"] < 0.8 and e1["rate_ci90"][0] > e4["rate_ci90"][1]
    assert cap["depths"]["1"]["fit"]["better"] == "exponential"
    assert "the shallow net's need grows faster" in cap["verdict"]


def test_capacity_walk_resumes_and_steps_down_below_the_previous_answer():
    study = parse_study(STUDY, "cap.toml")
    search = CapacitySearch(study)
    fake, results = CapacityFake(), {}
    rounds = 0
    while todo := search.next_trials(results):
        rounds += 1
        for _s, r in fake.map([s for s, _ in todo]):
            results[r["id"]] = r
    again = CapacitySearch(study)  # a fresh search on the stored results: nothing left to run
    assert again.next_trials(results) == [] and len(again.planned(results)) == len(results)
    # a value whose answer is below its predecessor's is still found (the ladder steps down)
    study2 = parse_study(STUDY.replace("depths = [1, 4]", "depths = [4]"), "cap.toml")
    s2, res2 = CapacitySearch(study2), {}

    class Down(CapacityFake):
        def map(self, specs, device="cpu"):
            for s, r in super().map(specs):
                n, w = s["data"]["options"]["n"], s["model"]["size"]["width"]
                r["min_dev_error"] = 0.0 if w >= (16 if n == 4 else 3) else 0.5
                yield s, r

    d = Down()
    while todo := s2.next_trials(res2):
        for _s, r in d.map([s for s, _ in todo]):
            res2[r["id"]] = r
    import pandas as pd

    from scalinglab.analysis.capacity import answers

    rows = [
        {
            "config": json.dumps({k: v for k, v in s.items() if k not in ("seed", "data_size")}),
            "status": "ok",
            "min_dev_error": res2[trial_id(s)]["min_dev_error"],
            "params": res2[trial_id(s)]["params"],
        }
        for s, _ in s2.planned(res2)
    ]
    got = {r["value"]: r["width"] for r in answers(pd.DataFrame(rows), study2.to_dict())[4]}
    assert got == {4: 16, 6: 3, 8: 3, 10: 3, 12: 3, 14: 3}
    assert rounds > 1


# --- end to end ------------------------------------------------------------------------------------


def test_parity_smoke_end_to_end(tmp_path, capsys):
    import scalinglab

    res = scalinglab.run("parity-smoke", out=tmp_path)
    cap = json.loads((tmp_path / "summary.json").read_text())["capacity"]
    assert set(cap["depths"]) == {"1", "3"}
    for sec in cap["depths"].values():
        assert [r["value"] for r in sec["answers"]] == [3, 4, 5, 6]
        assert all(r["reached"] and r["params"] > 0 for r in sec["answers"])
        assert sec["fit"] and "exponential" in sec["fit"] and math.isfinite(sec["fit"]["exponential"]["rate"])
    assert cap["verdict"].startswith("exponential fit P ∝ 2^(r·n) of the parameters needed: r = ")
    from scalinglab.report import write_report

    html = write_report(tmp_path).read_text()
    assert "Parameters needed per depth" in html and "data:image/png;base64" in html
    md = write_report(tmp_path, fmt="md").read_text()
    assert "| depth | n | smallest width |" in md and (tmp_path / "plots" / "capacity.png").exists()
    assert res is not None
    from scalinglab.cli.main import main

    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "search: capacity" in out and "median error" in out
    assert main(["diagnose", str(tmp_path)]) == 2  # no learning curve: one line, not a traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a capacity study" in err[0]
