"""`diagnose` on fake-trainer grid studies whose answer is known: capacity-bound (a small width that
saturates while wider ones keep improving), data-bound (every width on one power law, far above its
floor) and at the floor (the curve has flattened onto its floor)."""

import numpy as np
import pytest

from scalinglab.analysis.diagnose import diagnose, load_trials, parse_model_size
from scalinglab.cli.main import main
from scalinglab.config import parse_study
from scalinglab.errors import UserError
from scalinglab.runner import run_study
from scalinglab.store import Store
from scalinglab.train.trial import trial_id

STUDY = """
name = "fake"
seeds = 2
[data]
name = "teacher"
options = { n_train = 20000, n_dev = 100, n_test = 100, dim = 8, n_classes = 4 }
sizes = { min = 64, max = 16384, factor = 2 }
[model]
family = "mlp"
widths = [4, 16, 64]
depths = [1]
"""


class FakeBackend:
    """min dev error = err(m, width) x (1 + 0.5% seed noise); train error = train(m, width)."""

    def __init__(self, err, train):
        self.err, self.train = err, train

    def map(self, specs, device="cpu"):
        for s in specs:
            m, w = s["data_size"], s["model"]["size"]["width"]
            e = self.err(m, w) * (1 + 0.005 * np.random.default_rng([s["seed"], m, w]).standard_normal())
            yield (
                s,
                {
                    "id": trial_id(s),
                    "status": "ok",
                    "min_dev_error": e,
                    "final_train_error": self.train(m, w, e),
                    "params": 10 * w,
                    "best_epoch": 1,
                    "epochs": 5,
                    "test_error": e,
                    "history": [],
                    "train_flops_per_example": 60.0 * w,
                    "train_flops": 60.0 * w * 5 * m,
                    "wall_time": 0.01,
                },
            )


def _run(tmp_path, err, train):
    study = parse_study(STUDY, "fake.toml")
    run_study(study, tmp_path, backend=FakeBackend(err, train), form="pow_c", log=lambda m: None)
    return load_trials(tmp_path)


def capacity_err(m, w):  # width 4 saturates at 0.1 + ...; width 64 keeps falling
    return 0.02 + 2 * m**-0.5 + 0.4 / w


def test_capacity_bound_for_the_named_small_size(tmp_path):
    _, config, df = _run(tmp_path, capacity_err, lambda m, w, e: e * 0.95 if w == 4 else 0.0)
    d = diagnose(df, config, model_size="width=4", form="pow_c")
    assert d["verdict"] == "capacity-bound", d["evidence"]
    assert d["named"] and d["model_size"] == {"width": 4, "depth": 1}
    assert "train a bigger model" in d["advice"] and "parameters" in d["advice"]
    n = d["numbers"]
    assert n["expected_error_ci"][0] <= n["expected_error"] <= n["expected_error_ci"][1]
    assert n["expected_error"] < d["error"]  # the bigger model is expected to do better
    assert any("flattened" in e for e in d["evidence"])


def test_data_bound_when_larger_models_do_not_help(tmp_path):
    law = lambda m, w: 0.01 + 3 * m**-0.4  # noqa: E731  every width on the same curve
    _, config, df = _run(tmp_path, law, lambda m, w, e: 0.0)
    d = diagnose(df, config, form="pow_c")
    assert d["verdict"] == "data-bound", d["evidence"]
    M = 16384
    lo, hi = d["numbers"]["error_at_2x_ci"]
    assert lo <= law(2 * M, 4) <= hi
    assert "2x data" in d["advice"]


def test_at_the_floor(tmp_path):
    _, config, df = _run(tmp_path, lambda m, w: 0.1 + 5 / m, lambda m, w, e: 0.05)
    d = diagnose(df, config, form="pow_c")
    assert d["verdict"] == "at-the-floor", d["evidence"]
    lo, hi = d["numbers"]["floor_ci"]
    assert lo <= 0.1 <= hi + 1e-3 and abs(d["numbers"]["floor"] - 0.1) < 0.005


def test_cli_diagnose_prints_verdict_and_table(tmp_path, capsys):
    _run(tmp_path, capacity_err, lambda m, w, e: e * 0.95 if w == 4 else 0.0)
    assert main(["diagnose", str(tmp_path), "--model-size", "width=4", "--form", "pow_c"]) == 0
    out = capsys.readouterr().out
    assert "CAPACITY-BOUND" in out and "width=64" in out
    assert main(["diagnose", str(tmp_path), "--model-size", "width=5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model-size" in err and "width=4" in err


def test_parse_model_size():
    sizes = [{"width": 4, "depth": 1}, {"width": 4, "depth": 2}, {"width": 8, "depth": 1}]
    assert parse_model_size("width=8", sizes) == {"width": 8, "depth": 1}
    assert parse_model_size("width=4,depth=2", sizes) == {"width": 4, "depth": 2}
    for bad in ("width=4", "width", "width=x", "channels=3"):
        with pytest.raises(UserError):
            parse_model_size(bad, sizes)


def test_folder_without_finished_trials_is_one_line(tmp_path, capsys):
    with Store(tmp_path) as s:
        s.begin_study("fake", parse_study(STUDY, "fake.toml").to_dict())
    for argv in (
        ["diagnose", str(tmp_path)],
        ["plan", str(tmp_path), "--target-error", "0.1"],
        ["diagnose", str(tmp_path / "nowhere")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("scalinglab: error:")
