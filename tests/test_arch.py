"""Architecture factors (issue 17): depth, activation and init change the built model as specified,
reach training through the grid / Hestness specs and the batched trainer, are refused at load when
unknown, and are compared level by level with a shift-vs-exponent verdict."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from scalinglab.config import parse_study
from scalinglab.errors import UserError
from scalinglab.models import build, build_spec, describe_spec
from scalinglab.models.knobs import ACTIVATIONS
from scalinglab.search.grid import plan_grid
from scalinglab.train.trial import trial_id

BASE = """
name = "arch"
seeds = 2
[data]
name = "teacher"
options = { n_train = 2000, n_dev = 100, n_test = 100, dim = 8, n_classes = 3 }
sizes = { min = 64, max = 1024, factor = 2 }
[model]
family = "mlp"
widths = [16, 64]
depths = [2]
[train]
lr = 0.01
[search]
"""


def study(search: str = "", model: str = "", base: str = BASE):
    text = base.replace("[search]\n", "[search]\n" + search + "\n")
    text = text.replace('family = "mlp"\n', 'family = "mlp"\n' + model + "\n")
    return parse_study(text, "arch.toml")


# --- the built model ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_sets_module_types(name):
    want = ACTIVATIONS[name]
    mlp = build("mlp", {"width": 8, "depth": 3}, (5,), 2, activation=name)
    cnn = build("cnn1d", {"channels": 4, "depth": 2}, (40,), 10, activation=name)
    for m, k in ((mlp, 3), (cnn, 2)):
        acts = [x for x in m.modules() if type(x) in ACTIVATIONS.values()]
        assert len(acts) == k and all(type(a) is want for a in acts)
    tf = build("transformer", {"width": 32, "depth": 2}, (8,), 5, activation=name)
    assert [type(b.act) for b in tf.blocks] == [want, want]


def test_family_defaults_kept_without_activation():
    assert {type(x) for x in build("mlp", {"width": 8, "depth": 2}, (5,), 2).modules()} >= {nn.ReLU}
    tf = build("transformer", {"width": 32, "depth": 1}, (8,), 5)
    assert type(tf.blocks[0].act) is nn.GELU  # the transformer's own default


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_depth_is_the_number_of_hidden_layers(depth):
    mlp = build("mlp", {"width": 8, "depth": depth}, (5,), 2)
    assert sum(isinstance(x, nn.Linear) for x in mlp.modules()) == depth + 1  # + the read-out
    assert mlp.n_params() == sum(p.numel() for p in mlp.parameters())
    cnn = build("cnn1d", {"channels": 4, "depth": depth}, (40,), 10)
    assert sum(isinstance(x, nn.Conv1d) for x in cnn.modules()) == depth


def _hidden_weight(init):
    torch.manual_seed(0)
    m = build("mlp", {"width": 400, "depth": 2}, (300,), 10, init=init)
    return m.net[1].weight, m.net[1].bias, m.net[3].weight  # (400, 300) then (400, 400)


def test_init_changes_the_weight_distribution_as_specified():
    w, b, w2 = _hidden_weight("normal")  # N(0, 1): std ~ 1, biases 0
    assert abs(w.std().item() - 1) < 0.02 and abs(w.mean().item()) < 0.02 and b.abs().max().item() == 0
    w, b, _ = _hidden_weight("xavier")  # U(+-sqrt(6/(fan_in+fan_out))): std sqrt(2/(in+out))
    assert math.isclose(w.std().item(), math.sqrt(2 / 700), rel_tol=0.03)
    assert w.abs().max().item() <= math.sqrt(6 / 700) + 1e-6 and b.abs().max().item() == 0
    w, _, w2 = _hidden_weight("kaiming")  # N(0, 2/fan_in)
    assert math.isclose(w.std().item(), math.sqrt(2 / 300), rel_tol=0.03)
    assert math.isclose(w2.std().item(), math.sqrt(2 / 400), rel_tol=0.03)
    w, b, _ = _hidden_weight("default")  # torch's own: U(+-1/sqrt(fan_in)), std 1/sqrt(3 fan_in)
    assert math.isclose(w.std().item(), 1 / math.sqrt(900), rel_tol=0.03) and b.abs().max().item() > 0
    cnn = build("cnn1d", {"channels": 64, "depth": 2}, (40,), 10, init="normal")
    conv = next(x for x in cnn.modules() if isinstance(x, nn.Conv1d))
    assert abs(conv.weight.std().item() - 1) < 0.1


def test_spec_entry_builds_the_same_weights():
    ms = {"family": "mlp", "size": {"width": 8, "depth": 2}, "batchnorm": False, "activation": "tanh", "init": "xavier"}
    torch.manual_seed(3)
    a = build_spec(ms, (5,), 2)
    torch.manual_seed(3)
    b = build("mlp", ms["size"], (5,), 2, activation="tanh", init="xavier")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert isinstance(a.net[2], nn.Tanh)


# --- study files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "search,model,needle",
    [
        ('factor = "activation"\nlevels = ["relu", "swish"]', "", "search.levels: given 'swish' for factor activation"),
        ('factor = "init"\nlevels = ["default", "zeros"]', "", "search.levels: given 'zeros' for factor init"),
        ('factor = "depth"\nlevels = [1, 0]', "", "search.levels: given 0 for factor depth"),
        ('factor = "depth"\nlevels = [1, 2.5]', "", "search.levels: given 2.5 for factor depth"),
        ("", 'activation = "softplus"', "model.activation: given 'softplus'; allowed: relu, tanh, sigmoid, gelu"),
        ("", 'init = "orthogonal"', "model.init: given 'orthogonal'; allowed: default, xavier, kaiming, normal"),
        (
            'factor = "init"\nlevels = ["default", "normal"]',
            'init = "xavier"',
            "model.init: given 'xavier' with factor",
        ),
        ("match_params = true", "", "match_params applies to factor"),
    ],
)
def test_bad_levels_fail_at_load_in_one_line(search, model, needle):
    with pytest.raises(UserError) as e:
        study(search, model)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith("arch.toml: ")
    if "levels" in needle and "activation" in needle:
        assert "allowed: relu, tanh, sigmoid, gelu" in msg


def test_depth_factor_refuses_several_depths():
    text = BASE.replace("depths = [2]", "depths = [1, 2]")
    with pytest.raises(UserError, match=r"model.depths: given \[1, 2\] with factor depth; allowed: one depth"):
        study('factor = "depth"\nlevels = [1, 3]', base=text)


def test_unknown_activation_level_cli_exit_2_writes_nothing(tmp_path, capsys):
    from scalinglab.cli.main import main

    p = tmp_path / "s.toml"
    p.write_text(BASE.replace("[search]\n", '[search]\nfactor = "activation"\nlevels = ["relu", "swish"]\n'))
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "swish" in err[0] and "allowed: relu, tanh, sigmoid, gelu" in err[0]
    assert not out.exists()


# --- how levels reach the trial specs ------------------------------------------------------------


def test_activation_and_init_levels_reach_the_specs_and_keep_old_ids():
    plain = plan_grid(study())
    assert all("activation" not in s["model"] and "init" not in s["model"] for s, _ in plain)
    for factor, levels in (("activation", ["relu", "tanh", "gelu"]), ("init", ["default", "normal"])):
        st = study(f'factor = "{factor}"\nlevels = {json.dumps(levels)}')
        trials = plan_grid(st)
        assert {s["model"][factor] for s, _ in trials} == set(levels)
        from scalinglab.analysis.summary import level_of

        for s, t in trials:
            cfg = json.dumps({k: v for k, v in s.items() if k not in ("seed", "data_size")})
            assert level_of(cfg, factor) == t["level"] == s["model"][factor]


def test_depth_levels_set_the_depth_and_match_params_keeps_parameters_equal():
    st = study('factor = "depth"\nlevels = [1, 2, 4]')
    assert {s["model"]["size"]["depth"] for s, _ in plan_grid(st)} == {1, 2, 4}
    st = study('factor = "depth"\nlevels = [1, 2, 4]\nmatch_params = true')
    by, widths = {}, {}
    for s, t in plan_grid(st):
        by.setdefault(t["level"], set()).add(describe_spec(s["model"], (8,), 3)["params"])
        widths.setdefault(t["level"], set()).add(s["model"]["size"]["width"])
    for ref, p in zip(sorted(by["1"]), sorted(by["4"])):
        assert abs(p - ref) / ref < 0.1, by  # equal parameters within one width step
    assert max(widths["4"]) < max(widths["1"]) == 64  # deeper means narrower at equal parameters


def test_hestness_specs_honour_the_depth_level():
    text = BASE.replace("[search]\n", '[search]\nkind = "hestness"\nfactor = "depth"\nlevels = [1, 3]\n')
    from scalinglab.search import HestnessSearch

    hs = HestnessSearch(parse_study(text, "h.toml"))
    assert {s["model"]["size"]["depth"] for lv in hs.levels for s, _ in hs.overfit_trials(lv)} == {1, 3}


# --- the batched trainer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "family,act,init",
    [("mlp", "tanh", "xavier"), ("mlp", "gelu", "kaiming"), ("mlp", "sigmoid", "normal"), ("cnn1d", "tanh", "xavier")],
)
def test_batched_group_honours_activation_and_init(family, act, init):
    from scalinglab.train.batched import run_group
    from scalinglab.train.packing import group_key
    from scalinglab.train.trial import run_trial

    data = {"name": "teacher", "options": {"n_train": 400, "n_dev": 100, "n_test": 100, "dim": 8}, "split_seed": 0}
    tr = {
        "optimizer": "adam",
        "lr": 3e-3,
        "weight_decay": 0.0,
        "momentum": 0.9,
        "batch_size": 32,
        "max_epochs": 5,
        "min_steps_per_epoch": 3,
        "patience": 100,
    }
    knob = "channels" if family == "cnn1d" else "width"  # cnn1d: the bmm engine's grouped convolutions
    model = {"family": family, "size": {knob: 16, "depth": 2}, "batchnorm": False, "activation": act, "init": init}
    specs = [{"data": data, "data_size": 128, "model": dict(model), "train": dict(tr), "seed": s} for s in (0, 1)]
    relu = {**specs[0], "model": {**model, "activation": "relu"}}
    assert group_key(specs[0]) == group_key(specs[1]) != group_key(relu)  # levels never share a group
    alone = [run_trial(s) for s in specs]
    together = run_group(specs, fallback=False)
    for a, b in zip(alone, together):
        assert a["status"] == b["status"] == "ok"
        for ha, hb in zip(a["history"], b["history"]):
            assert math.isclose(ha["train_loss"], hb["train_loss"], rel_tol=1e-4), (ha, hb)
            assert math.isclose(ha["dev_loss"], hb["dev_loss"], rel_tol=1e-4), (ha, hb)


# --- the comparison, with a fake trainer ----------------------------------------------------------


class LevelFake:
    """min dev error = a * m**beta * shift, per level: `shifts` and `betas` by level."""

    def __init__(self, factor, shifts, betas):
        self.factor, self.shifts, self.betas = factor, shifts, betas

    def level(self, s):
        v = s["model"]["size"]["depth"] if self.factor == "depth" else s["model"][self.factor]
        return str(v)

    def map(self, specs, device="cpu"):
        for s in specs:
            lv, m = self.level(s), s["data_size"]
            noise = 1 + 0.01 * np.random.default_rng([s["seed"], m]).standard_normal()
            err = 2.0 * m ** self.betas[lv] * self.shifts[lv] * noise
            err *= 1 + 0.05 * (s["model"]["size"]["width"] != 64)  # the wider model is the best
            yield (
                s,
                {
                    "id": trial_id(s),
                    "status": "ok",
                    "min_dev_error": err,
                    "final_train_error": 0.0,
                    "params": 100 * s["model"]["size"]["width"],
                    "best_epoch": 1,
                    "epochs": 1,
                    "test_error": err,
                    "history": [],
                    "wall_time": 0.0,
                },
            )


def test_factor_study_bookkeeping_and_per_level_verdicts(tmp_path):
    from scalinglab.report import write_report
    from scalinglab.runner import run_study

    st = study('factor = "activation"\nlevels = ["relu", "tanh", "sigmoid"]')
    fake = LevelFake(
        "activation", {"relu": 1.0, "tanh": 1.5, "sigmoid": 1.0}, {"relu": -0.3, "tanh": -0.3, "sigmoid": -0.7}
    )
    summary = run_study(st, tmp_path, backend=fake, log=lambda m: None)
    fac = summary["factor"]
    assert list(fac["levels"]) == ["relu", "tanh", "sigmoid"]
    n_sizes = len(st.sizes())
    assert all(len(v["points"]) == n_sizes for v in fac["levels"].values())
    per = fac["comparison"]["per_level"]
    assert set(per) == {"tanh", "sigmoid"} and all(v["vs"] == "relu" for v in per.values())
    assert per["tanh"]["exponents_overlap"] and math.isclose(per["tanh"]["error_ratio"], 1.5, rel_tol=0.05)
    assert "shifted up" in per["tanh"]["verdict"] and "keep relu" in per["tanh"]["verdict"]
    assert not per["sigmoid"]["exponents_overlap"] and "changes the exponent" in per["sigmoid"]["verdict"]
    assert "falls faster" in per["sigmoid"]["verdict"]
    html = write_report(tmp_path).read_text()
    assert "keep relu" in html and "changes the exponent" in html


def test_depth_factor_study_reads_levels_from_the_size(tmp_path):
    from scalinglab.runner import run_study

    st = study('factor = "depth"\nlevels = [1, 3]\nmatch_params = true')
    fake = LevelFake("depth", {"1": 1.0, "3": 0.8}, {"1": -0.3, "3": -0.3})
    summary = run_study(st, tmp_path, backend=fake, log=lambda m: None)
    per = summary["factor"]["comparison"]["per_level"]["3"]
    assert per["exponents_overlap"] and "shifted down" in per["verdict"] and "prefer depth 3" in per["verdict"]
    assert per["verdict"].startswith("depth 3 vs depth 1: same exponent")


def test_level_verdict_says_when_it_cannot_tell():
    from scalinglab.analysis.summary import level_verdict

    sizes = [64, 128, 256, 512]
    ref = {m: 0.5 * (m / 64) ** -0.5 for m in sizes}
    exps = {"a": {"exponent": -0.5, "ci": [-0.6, -0.4]}}
    # barely learns: near random guessing (0.9) at its largest size
    exps["bad"] = {"exponent": -0.05, "ci": [-0.6, -0.01]}
    v = level_verdict("bad", "a", exps, {"a": ref, "bad": {m: 0.85 for m in sizes}}, "init", y0=0.9)
    assert "cannot tell shift from exponent: bad barely learns" in v["verdict"] and "keep a" in v["verdict"]
    # overlapping but too wide an interval: no claim of a shift
    exps["wide"] = {"exponent": -0.5, "ci": [-1.5, -0.2]}
    v = level_verdict("wide", "a", exps, {"a": ref, "wide": {m: 1.2 * e for m, e in ref.items()}}, y0=0.9)
    assert "interval [-1.50, -0.20] is too wide" in v["verdict"]
    # overlapping, narrow, but the gap grows along the sizes: said
    exps["grow"] = {"exponent": -0.45, "ci": [-0.55, -0.35]}
    grow = {m: e * (1 + i) for i, (m, e) in enumerate(ref.items())}
    v = level_verdict("grow", "a", exps, {"a": ref, "grow": grow}, y0=0.9)
    assert "shifted up" in v["verdict"] and "the gap grows with data" in v["verdict"]
    assert v["error_ratio_at_largest"] == pytest.approx(4.0)
