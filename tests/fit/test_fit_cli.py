"""`scalinglab fit` on a CSV: per-group output, JSON, and one-line errors with exit code 2."""

import argparse
import json

import numpy as np
import pytest

from scalinglab.cli.fit_cmd import HELP, register, run
from scalinglab.errors import UserError


@pytest.fixture()
def csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["model,n,err,label"]
    for m, (a, c) in {"small": (2.0, 0.1), "big": (1.5, 0.05)}.items():
        for x in np.geomspace(1e3, 1e6, 10):
            rows.append(f"{m},{x:.0f},{(a * x**-0.3 + c) * np.exp(rng.normal(0, 0.01)):.6f},t")
    p = tmp_path / "runs.csv"
    p.write_text("\n".join(rows))
    return p


def _args(argv):
    p = argparse.ArgumentParser()
    register(p)
    return p.parse_args(argv)


def test_text_output_per_group(csv, capsys):
    assert isinstance(HELP, str)
    rc = run(
        _args(
            [
                str(csv),
                "--x",
                "n",
                "--y",
                "err",
                "--group",
                "model",
                "--predict",
                "1e7,1e8",
                "--n-boot",
                "30",
                "--form",
                "pow_c",
            ]
        )
    )
    out = capsys.readouterr().out
    assert rc == 0 and "model = big" in out and "model = small" in out
    assert out.count("predict x = 1e+07") == 2 and "irreducible region" in out


def test_json_output(csv, capsys):
    rc = run(
        _args([str(csv), "--x", "n", "--y", "err", "--group", "model", "--json", "--n-boot", "20", "--predict", "1e7"])
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and [g["group"] for g in doc["groups"]] == ["big", "small"]
    assert doc["groups"][0]["predictions"]["hi"][0] > doc["groups"][0]["predictions"]["lo"][0]


@pytest.mark.parametrize(
    "argv",
    [
        ["--x", "nope", "--y", "err"],  # missing column
        ["--x", "n", "--y", "label"],  # non-numeric column
        ["--x", "n", "--y", "err", "--group", "zzz"],
        ["--x", "n", "--y", "err", "--predict", "abc"],
        ["--x", "n", "--y", "err", "--form", "cubic"],
    ],
)
def test_bad_input_is_a_user_error(csv, argv):
    with pytest.raises(UserError):
        run(_args([str(csv)] + argv + ["--n-boot", "5"]))


def test_main_exits_2_with_one_line(csv, capsys):
    from scalinglab.cli.main import main

    rc = main(["fit", str(csv), "--x", "nope", "--y", "err"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "nope" in err and "allowed" in err
