"""Every forecast checked: backtests from the study's own prefixes, and the forecast ledger."""

import json
import textwrap

import numpy as np
import pytest

from scalinglab.analysis.backtest import MIN_POINTS, backtest_points, ledger_entries, score_ledger, score_rows
from scalinglab.cli.main import main
from scalinglab.store import Store


def planted_points(sizes, law, noise=0.02, seeds=3, rng=0):
    r = np.random.default_rng(rng)
    pts = []
    for m in sizes:
        errs = [float(law(m) * np.exp(noise * r.standard_normal())) for _ in range(seeds)]
        pts.append({"data_size": int(m), "error": float(np.median(errs)), "n_seeds": seeds, "seed_errors": errs})
    return pts


def test_backtest_rows_and_scores_on_a_planted_power_law():
    sizes = [64 * 2**i for i in range(9)]
    pts = planted_points(sizes, lambda m: 0.02 + 3.0 * m**-0.4)
    rows = backtest_points(pts, y0=0.9)
    n = len(pts)
    assert len(rows) == sum(n - k for k in range(MIN_POINTS, n))  # every prefix to every later point
    assert all(r["data_size"] > r["from_data_size"] for r in rows)
    r0 = rows[0]
    assert r0["from_points"] == MIN_POINTS and r0["factor"] == 2 and r0["measured"] == pts[MIN_POINTS]["error"]
    s = score_rows(rows)
    assert s["all"]["n"] == len(rows)
    assert s["all"]["coverage"] >= 0.8 and s["all"]["median_rel_error"] < 0.1  # a clean law extrapolates
    assert s["<=2x"]["n"] == n - MIN_POINTS  # one 2x step per prefix


def test_backtest_flags_a_curve_that_bends_away():
    # a power law to 2,048, then a floor the prefixes cannot see: the far forecasts must miss
    sizes = [64 * 2**i for i in range(9)]
    pts = planted_points(sizes, lambda m: 3.0 * m**-0.5 if m <= 2048 else 3.0 * 2048**-0.5, noise=0.005)
    rows = [r for r in backtest_points(pts, y0=0.9) if r["from_data_size"] <= 1024 and r["data_size"] >= 8192]
    assert rows and all(r["forecast"] < r["measured"] and r["rel_error"] > 0.2 for r in rows)


def test_ledger_scores_only_forecasts_measured_beyond_their_basis():
    basis = [{"data_size": m, "error": 1.0 / m} for m in (64, 128, 256, 512)]
    curve = {
        "form": "pow",
        "predictions": [
            {"data_size": 1024, "value": 0.001, "lo": 0.0008, "hi": 0.0012},
            {"data_size": 2048, "value": 0.0004, "lo": 0.0003, "hi": 0.00045},
        ],
    }
    entries = ledger_entries(curve, basis)
    forecasts = [{**e, "made_at": 1.0} for e in entries]
    later = [*basis, {"data_size": 1024, "error": 0.00098}, {"data_size": 2048, "error": 0.0005}]
    scored = score_ledger(forecasts, later)
    assert [(r["data_size"], r["inside"]) for r in scored] == [(1024, True), (2048, False)]
    assert scored[1]["rel_error"] == pytest.approx(0.2) and scored[0]["from_data_size"] == 512
    assert score_ledger(forecasts, basis) == []  # not measured yet


def test_ledger_keeps_a_forecast_once(tmp_path):
    e = {"data_size": 8, "value": 0.1, "lo": 0.05, "hi": 0.2, "form": "pow", "basis": [[1, 0.5], [2, 0.4]]}
    with Store(tmp_path) as s:
        s.add_forecasts("st", [e])
        s.add_forecasts("st", [e, {**e, "data_size": 16}])
        got = s.forecasts("st")
    assert [f["data_size"] for f in got] == [8, 16] and got[0]["basis"] == [[1, 0.5], [2, 0.4]]


PLANTED = textwrap.dedent("""
    def train(trial):
        n, w = trial.data_size, trial.model_size["width"]
        return {"dev": (0.03 + 2.0 * n ** -0.45) * (1 + 4.0 / w) * (1 + 0.01 * (trial.seed - 1)), "params": 10 * w}
""")
STUDY = """
name = "ledger"
seeds = 2
[train]
function = "planted:train"
[data]
kind = "indices"
pool_size = 20000
sizes = {{ min = 32, max = {max} }}
[metric]
name = "error"
[model]
sizes = [{{ width = 8 }}, {{ width = 32 }}]
[search]
kind = "grid"
"""


def test_a_longer_run_scores_the_forecasts_of_the_shorter_one(tmp_path, capsys):
    (tmp_path / "planted.py").write_text(PLANTED)
    study, out = tmp_path / "study.toml", tmp_path / "out"
    study.write_text(STUDY.format(max=512))  # 5 sizes; forecasts for 1,024 2,048 4,096
    assert main(["run", str(study), "--out", str(out), "--no-progress"]) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["forecast_ledger"] == [] and first["backtest"] is None  # 5 points: nothing to check yet
    study.write_text(STUDY.format(max=4096))
    assert main(["run", str(study), "--out", str(out), "--no-progress"]) == 0
    s = json.loads((out / "summary.json").read_text())
    ledger = s["forecast_ledger"]
    assert [r["data_size"] for r in ledger] == [1024, 2048, 4096]
    assert all(r["from_data_size"] == 512 and r["from_points"] == 5 for r in ledger)
    by_size = {p["data_size"]: p["error"] for p in s["points"]}
    assert all(r["measured"] == by_size[r["data_size"]] for r in ledger)
    assert s["backtest"]["score"]["all"]["n"] == sum(8 - k for k in range(MIN_POINTS, 8))
    html = (out / "report.html").read_text()
    assert "Forecasts checked" in html and "earlier runs of this study" in html
    capsys.readouterr()
    assert main(["backtest", str(out), "--plot", str(tmp_path / "bt.png"), "--csv", str(tmp_path / "bt.csv")]) == 0
    text = capsys.readouterr().out
    assert "3 of 3 inside" in text or "of 3 inside" in text
    assert (tmp_path / "bt.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "bt.csv").read_text().count("\n") == 7


@pytest.mark.parametrize(
    "args, needle",
    [(["--form", "bogus"], "--form: given 'bogus'"), (["--plot", "x.jpg"], "--plot: given 'x.jpg'")],
)
def test_backtest_bad_flags_are_one_line(tmp_path, capsys, args, needle):
    (tmp_path / "planted.py").write_text(PLANTED)
    study, out = tmp_path / "study.toml", tmp_path / "out"
    study.write_text(STUDY.format(max=512))
    assert main(["run", str(study), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["backtest", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["backtest", str(out)]) == 2  # 5 points: too few to backtest
    assert "more than 5" in capsys.readouterr().err
