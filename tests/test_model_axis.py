"""The model axis: a planted capacity cap L = E + A/N^alpha + B/m^beta must be found and named."""

import json
import textwrap

import pytest

from scalinglab.cli.main import main

# params N = 25 * width**2; error = E + A/N^alpha + B/m^beta with a 1% seed wobble
PLANTED = textwrap.dedent("""
    import os
    E, A, ALPHA, B, BETA = (float(v) for v in os.environ["PLANTED_LAW"].split(","))

    def train(trial):
        n, N = trial.data_size, 25 * trial.model_size["width"] ** 2
        wobble = 1 + 0.01 * ((trial.seed * 7 + n + N) % 3 - 1)
        return {"dev": (E + A / N**ALPHA + B / n**BETA) * wobble, "params": N}
""")
STUDY = """
name = "capped"
seeds = 2
[train]
function = "planted:train"
[data]
kind = "indices"
pool_size = 40000
sizes = { min = 128, max = 32768 }
[metric]
name = "error"
random_guess = 0.9
[model]
sizes = [{ width = 2 }, { width = 4 }, { width = 8 }, { width = 16 }, { width = 32 }]
[search]
kind = "grid"
"""
CAPPED = dict(E=0.02, A=2.0, alpha=0.5, B=4.0, beta=0.5)  # at N_max = 25,600 the N term is 0.0125


@pytest.fixture
def capped(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANTED_LAW", ",".join(str(v) for v in CAPPED.values()))
    (tmp_path / "planted.py").write_text(PLANTED)
    (tmp_path / "study.toml").write_text(STUDY)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "study.toml"), "--out", str(out), "--no-progress"]) == 0
    return out


def test_the_joint_law_recovers_the_planted_cap_and_names_the_floor(capped):
    s = json.loads((capped / "summary.json").read_text())
    ax = s["model_axis"]
    for k in ("A", "alpha", "B", "beta"):
        assert ax["params"][k] == pytest.approx(CAPPED[k], rel=0.15), (k, ax["params"])
    assert ax["params"]["E"] == pytest.approx(CAPPED["E"], abs=0.005)
    assert ax["capped"] and s["floor"]["kind"] == "capacity floor of the model grid"
    n_max = 25 * 32**2
    cap = CAPPED["E"] + CAPPED["A"] / n_max ** CAPPED["alpha"]
    assert ax["largest_model_params"] == n_max and ax["capacity_floor"]["value"] == pytest.approx(cap, rel=0.1)
    # (a) the largest model tried flattens; (b) the grown model keeps falling below it
    far = ax["predictions"][-1]
    assert far["largest_model"]["value"] > cap * 0.97 and far["grown"]["value"] < far["largest_model"]["value"]
    html = (capped / "report.html").read_text()
    assert "capacity floor of the model grid" in html


def test_plan_asks_for_a_bigger_model_when_the_cap_binds(capped, capsys):
    capsys.readouterr()
    target = 0.03  # below the grid's capacity floor (0.0325), above the irreducible 0.02
    assert main(["plan", str(capped), "--target-error", str(target), "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["capacity"]["capacity_floor"] > target and p["reachable_with_bigger_model"]
    assert "add larger models" in p["verdict"] and p["capacity"]["grown_params"] > 25 * 32**2
    # held against the planted law: the recommended data and model sizes give about the target
    m, c = p["capacity"]["grown_data_size"], CAPPED

    def truth(n):
        return c["E"] + c["A"] / n ** c["alpha"] + c["B"] / m ** c["beta"]

    assert truth(p["capacity"]["grown_params"]) == pytest.approx(target, rel=0.05)
    assert truth(p["capacity"]["min_params"]) == pytest.approx(target, rel=0.05)


def test_no_cap_when_the_model_term_is_small(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANTED_LAW", "0.02,0.05,0.5,4.0,0.5")  # N term <= 0.0005 at every size but the smallest
    (tmp_path / "planted.py").write_text(PLANTED)
    (tmp_path / "study.toml").write_text(STUDY)
    assert main(["run", str(tmp_path / "study.toml"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["model_axis"] is not None and not s["model_axis"]["capped"]
    assert s["floor"]["kind"] == "irreducible"
