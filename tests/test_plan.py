"""`plan`: inverting a known learning curve, the compute arithmetic, the floor, the joint law's
compute-optimal allocation, and bad input."""

import numpy as np
import pytest

import scalinglab.analysis.plan as plan_mod
from scalinglab.analysis.diagnose import load_trials
from scalinglab.analysis.plan import invert_curve, plan
from scalinglab.cli.main import main
from scalinglab.config import parse_study
from scalinglab.errors import UserError
from scalinglab.fit import fit_curve
from scalinglab.runner import run_study
from scalinglab.train.trial import trial_id

A, B, C = 2.0, -0.5, 0.05  # planted learning curve: error = A * m**B + C

STUDY = """
name = "fake"
seeds = 2
[data]
name = "teacher"
options = { n_train = 20000, n_dev = 100, n_test = 100, dim = 8, n_classes = 4 }
sizes = { min = 64, max = 16384, factor = 2 }
[model]
family = "mlp"
widths = [4, 8, 16, 32, 64, 128]
depths = [1]
"""


def law(m):
    return A * m**B + C


class FakeBackend:
    """The best width grows as m**0.5 (params = 10 x width); other widths pay a log-squared penalty.
    5 epochs, 6 FLOPs per parameter per example, 1e6 FLOP/s."""

    def map(self, specs, device="cpu"):
        for s in specs:
            m, w = s["data_size"], s["model"]["size"]["width"]
            best_w = 4 * (m / 64) ** 0.5
            e = law(m) * (1 + 0.3 * np.log(w / best_w) ** 2)
            e *= 1 + 0.003 * np.random.default_rng([s["seed"], m, w]).standard_normal()
            p = 10 * w
            yield (
                s,
                {
                    "id": trial_id(s),
                    "status": "ok",
                    "min_dev_error": e,
                    "final_train_error": 0.0,
                    "params": p,
                    "best_epoch": 1,
                    "epochs": 5,
                    "test_error": e,
                    "history": [],
                    "train_flops_per_example": 6.0 * p,
                    "train_flops": 6.0 * p * 5 * m,
                    "wall_time": 6.0 * p * 5 * m / 1e6,
                },
            )


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan")
    run_study(parse_study(STUDY, "fake.toml"), out, backend=FakeBackend(), form="pow_c", log=lambda m: None)
    return out, *load_trials(out)[1:]


def test_invert_a_known_curve():
    m = np.geomspace(100, 10000, 8)
    rng = np.random.default_rng(0)
    fit = fit_curve(m, law(m) * (1 + 0.005 * rng.standard_normal(m.size)), form="pow_c", n_boot=200)
    target = law(5e4)  # 5x beyond the data (close to the floor the inversion is very sensitive)
    inv = invert_curve(fit, target, m.max())
    assert abs(np.log(inv["data_size"] / 5e4)) < np.log(1.5)
    assert inv["data_size_lo"] <= 5e4 <= inv["data_size_hi"]


def test_plan_on_a_fake_study(fake):
    _, config, df = fake
    target = law(20000)
    p = plan(df, config, target, form="pow_c")
    assert p["reachable"] and p["data_size_lo"] <= 20000 <= p["data_size_hi"]
    assert abs(np.log(p["data_size"] / 20000)) < np.log(1.5)
    # model-size law: params = 10 * 4 * (m / 64)**0.5 at the best width
    assert p["params_ci"][0] <= 40 * (20000 / 64) ** 0.5 <= p["params_ci"][1]
    assert p["joint"] is None  # fitted only for a --max-flops budget
    cm = p["compute_model"]
    assert cm["epochs"] == pytest.approx(5) and cm["flops_per_param_per_example"] == pytest.approx(6)
    assert cm["throughput_flops_per_s"] == pytest.approx(1e6)
    assert p["flops"] == pytest.approx(6 * p["params"] * p["data_size"] * 5)
    assert p["hours"] == pytest.approx(p["flops"] / 1e6 / 3600)


def test_target_below_the_floor_cannot_be_reached(fake):
    _, config, df = fake
    p = plan(df, config, 0.03, form="pow_c")
    assert not p["reachable"] and "cannot be reached" in p["verdict"]


def test_compute_optimal_with_a_budget(fake, monkeypatch):
    _, config, df = fake
    monkeypatch.setattr(plan_mod, "JOINT_BOOT", 5)
    p = plan(df, config, 0.1, max_flops=1e12, form="pow_c")
    b = p["joint"]["budget"]
    # C = 6 N D epochs: the allocation spends the budget
    assert 6 * b["params"] * b["data_size"] * 5 == pytest.approx(1e12, rel=1e-6)
    assert b["error_ci"][0] <= b["error"] <= b["error_ci"][1]


@pytest.mark.parametrize(
    "argv",
    [
        ["--target-error", "0"],
        ["--target-error", "1.5"],
        ["--target-error", "-0.1"],
        ["--target-error", "0.1", "--max-flops", "-1"],
    ],
)
def test_bad_target_is_one_line(fake, capsys, argv):
    assert main(["plan", str(fake[0]), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("--target-error" in err or "--max-flops" in err)


def test_plan_function_checks_the_target(fake):
    with pytest.raises(UserError):
        plan(fake[2], fake[1], 1.0)


def test_cli_plan_text(fake, capsys):
    assert main(["plan", str(fake[0]), "--target-error", str(law(20000)), "--form", "pow_c"]) == 0
    out = capsys.readouterr().out
    assert "data needed" in out and "model size" in out and "hours" in out
