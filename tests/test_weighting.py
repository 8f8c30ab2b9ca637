"""The auxiliary-data weighting study: config validation, the plan (w x sizes x seeds), the bookkeeping
of best w per model size on a fake trainer with a known answer, and real weighted training on a tiny
smoke-sized study (the test-only variant of the aux-weighting preset)."""

import json
from typing import ClassVar

import numpy as np
import pytest

from scalinglab.analysis.weighting import finding
from scalinglab.cli.main import main
from scalinglab.config import load_study, parse_study
from scalinglab.errors import UserError
from scalinglab.runner import run_study
from scalinglab.search import make_search
from scalinglab.train.packing import group_key
from scalinglab.train.trial import run_trial, trial_id

# A smoke-sized weighting study: teacher target, auxiliary = the same teacher with 4x the label noise.
SMOKE = """
name = "aux-smoke"
seeds = 2
[data]
name = "teacher"
options = {{ n_train = 400, n_dev = 300, n_test = 300, dim = 8, hidden = 16, n_classes = 3, noise = 0.05 }}
sizes = {{ list = [50, 100] }}
[aux]
{aux}
[model]
family = "mlp"
widths = [4, 32]
depths = [1]
[train]
lr = 0.01
batch_size = 64
max_epochs = 6
patience = 3
min_steps_per_epoch = 5
[search]
kind = "weighting"
"""
AUX = (
    'name = "teacher"\noptions = { n_train = 2000, n_dev = 10, n_test = 10, dim = 8, hidden = 16, '
    "n_classes = 3, noise = 0.2 }\nratio = 10\nweights = [0, 0.1, 1]"
)


def test_smoke_study_plans_weights_x_sizes_x_seeds():
    study = parse_study(SMOKE.format(aux=AUX), "smoke.toml")
    trials = make_search(study).trials
    assert len(trials) == 2 * 2 * 3 * 2  # data sizes x widths x weights x seeds
    specs = [s for s, _ in trials]
    assert {s["aux"]["weight"] for s in specs} == {0.0, 0.1, 1.0}
    assert {(s["data_size"], s["aux"]["size"]) for s in specs} == {(50, 500), (100, 1000)}
    assert len({trial_id(s) for s in specs}) == len(specs)
    assert len({group_key(s) for s in specs}) == len(specs)  # weighted trials are never batched together


@pytest.mark.parametrize(
    "aux, msg",
    [
        ("", "aux"),  # an empty [aux] table
        ('name = "teacher"\nsize = 0', "aux.size"),
        ('name = "teacher"\nsize = 10\nweights = []', "weights"),
        ('name = "teacher"\nsize = 10\nratio = 2', "exactly one"),
        ('name = "teacher"\nsize = 10\nweights = [1, 0.1]', "increasing"),
        ('name = "teacher"\noptions = { n_train = 100 }\nsize = 500', "train pool"),
        ('name = "nope"\nsize = 10', "data.name"),
    ],
)
def test_bad_aux_is_one_line(aux, msg):
    with pytest.raises(UserError) as e:
        parse_study(SMOKE.format(aux=aux), "smoke.toml")
    assert "\n" not in str(e.value) and msg in str(e.value)


def test_weighting_kind_and_aux_go_together():
    with pytest.raises(UserError, match="weighting"):
        parse_study(SMOKE.format(aux=AUX).replace('kind = "weighting"', 'kind = "grid"'), "s.toml")
    no_aux = SMOKE.format(aux=AUX).replace("[aux]\n" + AUX + "\n", "")
    with pytest.raises(UserError, match="weighting"):
        parse_study(no_aux, "s.toml")


def test_presets_parse():
    for name in ("aux-weighting", "saturation"):
        study, _ = load_study(name)
        assert study.description and "\n" not in study.description
    assert load_study("aux-weighting")[0].search.kind == "weighting"


class FakeBackend:
    """Dev error = base(width) + 0.1 * (log10(w + 1e-3) - log10(best_w(width)))^2: the best w is
    BEST[width] (0.01 for width 4, 1 for width 32); test error = dev error + 0.01."""

    BEST: ClassVar[dict] = {4: 0.01, 32: 1.0}

    def map(self, specs, device="cpu"):
        for s in specs:
            wd, w = s["model"]["size"]["width"], s["aux"]["weight"]
            e = 0.3 - 0.002 * wd + 0.01 * (np.log10(w + 1e-3) - np.log10(self.BEST[wd] + 1e-3)) ** 2
            e += 0.001 * s["seed"]
            yield (
                s,
                {
                    "id": trial_id(s),
                    "status": "ok",
                    "min_dev_error": e,
                    "final_train_error": e / 2,
                    "params": 10 * wd,
                    "best_epoch": 1,
                    "epochs": 1,
                    "test_error": e + 0.01,
                    "history": [],
                    "train_flops_per_example": 1.0,
                    "train_flops": 1.0,
                    "wall_time": 0.0,
                },
            )


def test_best_w_per_model_size_on_a_fake_trainer(tmp_path, capsys):
    study = parse_study(SMOKE.format(aux=AUX.replace("[0, 0.1, 1]", "[0, 0.01, 0.1, 1]")), "smoke.toml")
    summary = run_study(study, tmp_path, backend=FakeBackend(), log=lambda m: None)
    wt = summary["weighting"]
    assert [d["data_size"] for d in wt["by_data_size"]] == [50, 100]
    for d in wt["by_data_size"]:
        best = {m["model_size"]["width"]: m["best_weight"] for m in d["models"]}
        assert best == {4: 0.01, 32: 1.0}
        for m in d["models"]:
            assert [c["weight"] for c in m["curve"]] == [0, 0.01, 0.1, 1]
            assert all(c["n_seeds"] == 2 for c in m["curve"])
            assert m["test_error_at_best"] == pytest.approx(m["best_dev_error"] + 0.01)
        assert d["finding"].startswith("smaller models prefer a lower w")
    # the top-level best points keep one w per candidate (the weight is part of the config)
    assert all(p["n_seeds"] == 2 for p in summary["points"])
    json.dumps(summary)
    assert main(["diagnose", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "best w" in out and "smaller models prefer a lower w" in out
    # the report draws dev error against w (a panel per data size) and embeds it
    assert main(["report", str(tmp_path)]) == 0
    from PIL import Image

    img = Image.open(tmp_path / "plots" / "weighting.png")
    assert img.size[0] > 2 * img.size[1] * 0.9  # two panels side by side
    assert 'alt="dev error against the auxiliary-data weight"' in (tmp_path / "report.html").read_text()


def test_finding_text():
    mk = lambda *ws: [{"best_weight": w} for w in ws]  # noqa: E731
    assert finding(mk(0.01, 0.1, 1)).startswith("smaller models prefer")
    assert finding(mk(1, 0.1)).startswith("larger models prefer")
    assert finding(mk(0.1, 0.1)).startswith("every model size")
    assert finding(mk(0.1, 1, 0.01)).startswith("no monotone")


def test_weighted_training_is_real(tmp_path):
    """w = 0 is exactly the target-only trial; w > 0 trains on more data, dev/test stay on the target."""
    study = parse_study(SMOKE.format(aux=AUX), "smoke.toml")
    specs = [
        s
        for s, _ in make_search(study).trials
        if s["data_size"] == 50 and s["seed"] == 0 and s["model"]["size"]["width"] == 32
    ]
    plain = {k: v for k, v in specs[0].items() if k != "aux"}
    r_plain, r0, r1 = run_trial(plain), run_trial(specs[0]), run_trial(specs[-1])
    assert r0["status"] == r1["status"] == "ok"
    assert r0["min_dev_error"] == r_plain["min_dev_error"] and r0["steps"] == r_plain["steps"]
    assert r1["steps"] > r0["steps"]  # an epoch is a pass over target + auxiliary examples
    assert set(r1) == set(r_plain)  # result keys unchanged
    assert r1["min_dev_error"] != r0["min_dev_error"]
