"""Study files: each bad input is one clear line naming file, field, given and allowed; exit code 2;
nothing written."""

import subprocess
import sys

import pytest

from scalinglab.config import load_study, parse_study, preset_names
from scalinglab.errors import UserError

GOOD = """
name = "t"
[data]
name = "teacher"
sizes = { min = 32, max = 512 }
[model]
family = "mlp"
widths = [8]
"""


def test_presets_parse_and_default_spans_two_and_a_half_decades():
    assert {"default", "smoke"} <= set(preset_names())
    for name in preset_names():
        study, _ = load_study(name)
        assert study.name
    d, _ = load_study(None)
    sizes = d.sizes()
    assert d.name == "default" and sizes[-1] / sizes[0] >= 10**2.5
    assert all(1.9 < b / a < 2.1 for a, b in zip(sizes, sizes[1:]))
    assert len(d.model.size_grid()) >= 2 and d.seeds >= 3


def test_good_study_and_sizes():
    s = parse_study(GOOD, "t.toml")
    assert s.sizes() == [32, 64, 128, 256, 512]
    assert s.train.optimizer == "adam" and s.seeds == 3


@pytest.mark.parametrize(
    "text, field, fragment",
    [
        ("name = 't'\n[data\nname='x'", None, "not valid TOML"),
        (GOOD + "\nbogus = 1\n", "bogus", "unknown key"),
        (GOOD.replace('family = "mlp"', 'family = "mlp"\ncolour = "red"'), "model.colour", "unknown key"),
        (GOOD.replace("min = 32, max = 512", "min = -5, max = 512"), "data.sizes.min", "-5"),
        (GOOD.replace("min = 32, max = 512", "min = 512, max = 32"), "data.sizes", "must be below"),
        (GOOD.replace('name = "teacher"', 'name = "imagenet"'), "data.name", "'imagenet'"),
        (GOOD.replace('family = "mlp"', 'family = "resnext"'), "model.family", "'resnext'"),
        (GOOD.replace("max = 512", "max = 100000"), "data.sizes", "at most the train pool"),
        (GOOD.replace("[data]", "seeds = 0\n[data]"), "seeds", "given 0"),
        (GOOD + "\n[train]\noptimizer = 'lbfgs'\n", "train.optimizer", "'adam'"),
        (GOOD.replace("[model]", "[model]\nwidths2 = 1"), "model.widths2", "unknown key"),
    ],
)
def test_bad_input_is_one_line(text, field, fragment):
    with pytest.raises(UserError) as e:
        parse_study(text, "bad.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("bad.toml: ")
    if field:
        assert field in msg
    assert fragment in msg


def test_unknown_data_option_is_named():
    with pytest.raises(UserError, match=r"data\.options\.colour"):
        parse_study(GOOD.replace('name = "teacher"', 'name = "teacher"\noptions = { colour = 1 }'), "x.toml")


def test_cli_bad_input_exit_2_no_traceback_nothing_written(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("min = 32, max = 512", "min = 512, max = 32"))
    out = tmp_path / "out"
    r = subprocess.run(
        [sys.executable, "-m", "scalinglab.cli.main", "run", str(bad), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "data.sizes" in lines[0] and str(bad) in lines[0]
    assert not out.exists()
    r = subprocess.run(
        [sys.executable, "-m", "scalinglab.cli.main", "run", "no-such-study"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "no such study file or preset" in r.stderr
