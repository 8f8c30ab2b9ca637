"""The study report: written from the store and summary.json only, self-contained, escaped, robust to
missing pieces. The study is synthetic (trials written straight into a Store with a known error law),
so the whole module runs in seconds; `make_study` is shared with test_report_browser.py.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli.main import main
from scalinglab.report import write_report
from scalinglab.store import Store

XSS = "<script>alert(1)</script>"
WIDTHS = (16, 64, 256)
# summarize() reads the data set's facts (random-guess level 0.9, planted Bayes error 0.1); tiny and cached
TEACHER = {"n_train": 2000, "n_dev": 500, "n_test": 500, "dim": 8, "hidden": 16, "n_classes": 10, "noise": 0.1}


def true_error(m: float, width: int) -> float:
    """A family whose small models saturate: power law in m plus a capacity term that grows with m."""
    return min(0.9, 0.10 + 3.0 * m**-0.4 + (2.5 / width) * (1 - np.exp(-m / 2000)))


def _spec(m: int, width: int, seed: int) -> dict:
    """A trial spec shaped like the runner's."""
    return {
        "data": {"name": "teacher", "options": TEACHER, "split_seed": 0},
        "data_size": m,
        "model": {"family": "mlp", "batchnorm": False, "size": {"width": width, "depth": 2}},
        "seed": seed,
        "train": {
            "optimizer": "adam",
            "lr": 3e-3,
            "weight_decay": 0.0,
            "batch_size": 128,
            "max_epochs": 30,
            "patience": 5,
        },
    }


def make_study(
    folder: Path,
    *,
    name: str = XSS,
    sizes=(100, 200, 400, 800, 1600, 3200, 6400),
    seeds: int = 3,
    bad_trials: bool = True,
) -> Path:
    """Write a study folder (results.sqlite + summary.json) the way `scalinglab run` does, without training."""
    from scalinglab.analysis import summary as summary_mod

    config = {
        "name": name,
        "description": "synthetic study <b>for</b> report tests",
        "seeds": seeds,
        "metric": "error",
        "data": {"name": "teacher", "options": TEACHER, "sizes": {"list": list(sizes)}},
        "model": {"family": "mlp", "widths": list(WIDTHS), "depths": [2]},
        "train": {"optimizer": "adam", "lr": 3e-3},
    }
    rng = np.random.default_rng(0)
    with Store(folder) as store:
        store.begin_study(
            name,
            config,
            "synthetic (tests/test_report.py)",
            info={"python": "3.11", "torch": "test", "device": "cpu", "scalinglab": "test"},
        )
        i = 0
        for m in sizes:
            for w in WIDTHS:
                for seed in range(seeds):
                    i += 1
                    spec = _spec(m, w, seed)
                    err = true_error(m, w) * float(np.exp(rng.normal(0, 0.03)))
                    result = {
                        "id": f"t{i:05d}",
                        "status": "ok",
                        "min_dev_error": err,
                        "best_epoch": 5,
                        "epochs": 10,
                        "final_train_error": 0.0,
                        "test_error": err * 1.01,
                        "params": 100 * w + w * w,
                        "train_flops": 6.0 * m * w,
                        "wall_time": 0.5,
                        "device": "cpu",
                        "error": None,
                    }
                    store.add(name, spec, result, {"stage": "grid"})
        if bad_trials:
            for j, (status, why) in enumerate(
                [("diverged", "loss became NaN at epoch 3 | lr too high"), ("failed", "RuntimeError: out of <memory>")]
            ):
                spec = _spec(sizes[-1], 256, 10 + j)
                store.add(
                    name,
                    spec,
                    {
                        "id": f"bad{j}",
                        "status": status,
                        "min_dev_error": None,
                        "params": 100 * 256 + 256**2,
                        "error": why,
                    },
                    {"stage": "grid"},
                )
        store.update_study_info(name, wall_time_total=12.5, last_run_wall_time=12.5)
        s = summary_mod.summarize(store, name, config, extra={"wall_time_s": 12.5, "device": "cpu"})
    summary_mod.write_summary(folder, s)
    return folder


@pytest.fixture(scope="session")
def study_dir(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("report") / "study")


@pytest.fixture()
def study(study_dir, tmp_path) -> Path:
    """A private copy, so a test may write or break it."""
    dst = tmp_path / "study"
    shutil.copytree(study_dir, dst, ignore=shutil.ignore_patterns("report.*", "plots"))
    return dst


def _imgs(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_html_report_is_self_contained_and_complete(study):
    path = write_report(study)
    assert path == study / "report.html"
    html = path.read_text()
    # self-contained: no external resource of any kind
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "<link" not in html and "@import" not in html
    imgs = _imgs(html)  # learning curve, per size, model size, backtest (the smoke study has 6 sizes)
    assert len(imgs) == 4 and all(b.startswith(b"\x89PNG") and len(b) > 5000 for b in imgs)
    assert sorted(p.name for p in (study / "plots").glob("*.png")) == [
        "backtest.png",
        "learning_curve.png",
        "model_size.png",
        "model_size_curves.png",
    ]
    s = json.loads((study / "summary.json").read_text())
    e = s["learning_curve"]["exponent"]
    assert f"Dev error falls as m^{e:.2g}" in html
    assert "The best model grows as m^" in html
    for section in (
        "Best configuration per subset",
        "All trials (65)",
        "Diverged and failed trials (2)",
        "Study as run",
        "Predicted dev error with more data",
    ):
        assert section in html
    # a failed trial's reason is shown (escaped), diverged too
    assert "RuntimeError: out of &lt;memory&gt;" in html and "loss became NaN" in html
    assert "wall time (all runs)" in html and "12.5 s" in html


def test_user_strings_are_escaped(study):
    html = write_report(study).read_text()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>for</b>" not in html and "&lt;b&gt;for&lt;/b&gt;" in html
    # the only script is the report's own table sorter
    assert len(re.findall(r"<script>", html)) == 1


def test_markdown_report(study):
    path = write_report(study, fmt="md")
    md = path.read_text()
    assert path.name == "report.md"
    for name in re.findall(r"\]\((plots/[a-z_]+\.png)\)", md):
        assert (study / name).stat().st_size > 5000
    assert "plots/learning_curve.png" in md
    prose = re.sub(r"```json.*?```", "", md, flags=re.DOTALL)  # inside a code fence the raw text is inert
    assert XSS not in prose and "&lt;script&gt;" in prose
    assert "loss became NaN at epoch 3 \\| lr too high" in md  # a pipe cannot break the table


def test_no_fit_below_four_sizes_and_no_failures(tmp_path):
    folder = make_study(tmp_path / "small", name="small", sizes=(100, 200, 400), bad_trials=False)
    assert json.loads((folder / "summary.json").read_text())["learning_curve"] is None
    html = write_report(folder).read_text()
    assert "No law fitted: 3 data sizes" in html
    assert "Diverged and failed" not in html and "Predictions and fitted laws" not in html
    assert len(_imgs(html)) >= 2  # learning-curve points and per-size curves still drawn
    write_report(folder, fmt="md")


def test_without_summary_json_points_come_from_the_trials(study):
    (study / "summary.json").unlink()
    html = write_report(study).read_text()
    assert "summary.json missing" in html
    assert "Dev error falls as m^" in html  # refitted from the store's trials


def test_factors_section_appears_only_with_factors(study):
    assert "Factor comparison" not in write_report(study).read_text()
    s = json.loads((study / "summary.json").read_text())
    shifted = [
        {**p, "error": p["error"] * 1.3, "seed_errors": [v * 1.3 for v in p["seed_errors"]]} for p in s["points"]
    ]
    # the shape summarize() writes for a study with [search] factor = "optimizer"
    s["factor"] = {
        "name": "optimizer",
        "levels": {
            "adam": {"points": s["points"], "learning_curve": s["learning_curve"], "floor": s.get("floor")},
            "sgd <i>": {"points": shifted, "learning_curve": None, "floor": None},
        },
        "comparison": {
            "verdict": "same exponent within the 90% intervals: the curves shift",
            "error_ratio_sgd <i>_over_adam": 1.3,
        },
    }
    (study / "summary.json").write_text(json.dumps(s))
    html = write_report(study).read_text()
    assert "Factor comparison: optimizer" in html and len(_imgs(html)) == 5
    assert "the curves shift" in html and "sgd &lt;i&gt;" in html
    assert (study / "plots" / "factors.png").exists()
    assert "Factor: optimizer" in write_report(study, fmt="md").read_text()


def test_missing_keys_never_crash(study):
    s = json.loads((study / "summary.json").read_text())
    for k in ("learning_curve", "model_size_law", "random_guess_error", "wall_time_s", "trials"):
        s[k] = None
    (study / "summary.json").write_text(json.dumps(s))
    html = write_report(study).read_text()
    assert "Best configuration per subset" in html


def test_empty_study(tmp_path):
    with Store(tmp_path) as st:
        st.begin_study("empty", {"name": "empty"})
    html = write_report(tmp_path).read_text()
    assert "No finished trials yet" in html


def test_cli(study, capsys):
    assert main(["report", str(study)]) == 0
    assert (study / "report.html").exists()
    assert main(["report", str(study), "--format", "md"]) == 0
    assert (study / "report.md").exists()
    capsys.readouterr()


@pytest.mark.parametrize("make", ["missing", "empty_dir", "file", "bad_summary"])
def test_cli_bad_folder_is_one_line_exit_2(tmp_path, study, capsys, make):
    target = {"missing": tmp_path / "nope", "empty_dir": tmp_path, "file": tmp_path / "f.txt", "bad_summary": study}[
        make
    ]
    if make == "file":
        target.write_text("x")
    if make == "bad_summary":
        (study / "summary.json").write_text("{not json")
    assert main(["report", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scalinglab: error:") and "\n" not in err and str(target) in err
    assert not (target / "report.html").exists() if target.is_dir() else True


def test_unknown_format_is_a_user_error(study):
    from scalinglab.errors import UserError

    with pytest.raises(UserError, match="format"):
        write_report(study, fmt="pdf")


@pytest.mark.parametrize("d1,beyond_data", [(300.0, False), (50000.0, True)])
def test_broken_power_law_exponent_says_where_it_holds(study, d1, beyond_data):
    """A bnsl fit's exponent is that of its last regime: the headline says from which m it holds, and
    warns when that break lies past the largest subset (6,400 here)."""
    s = json.loads((study / "summary.json").read_text())
    s["learning_curve"] = {
        **(s["learning_curve"] or {}),
        "form": "bnsl",
        "exponent": -0.8,
        "exponent_ci": [-1.0, -0.6],
        "params": {"a": 0.01, "b": 1.0, "c0": 0.1, "c1": 0.7, "d1": d1, "f1": 0.1},
    }
    (study / "summary.json").write_text(json.dumps(s))
    html = write_report(study).read_text()
    assert f"beyond m ≈ {int(d1):,}, where the bnsl fit breaks" in html
    assert ("no measured point shows it" in html) is beyond_data


def test_report_reads_the_fits_behind_summary_json_instead_of_refitting(study):
    # fits.npz (written by the runner beside summary.json) gives the report the same CurveFits a refit
    # would, without refitting; arrays of another summary, or a broken file, are ignored (refit)
    from scalinglab.analysis import summary as summary_mod
    from scalinglab.report import data as data_mod

    with Store.open_existing(study) as store:
        name = store.studies()[0]["name"]
        fits = {}
        s = summary_mod.summarize(store, name, store.studies()[0]["config"], fits=fits)
    summary_mod.write_summary(study, s)
    refit = data_mod.gather(study)  # no fits.npz yet: refitted
    summary_mod.write_fits(study, fits)
    calls = []
    orig = data_mod._refit
    data_mod._refit = lambda *a, **k: calls.append(a) or orig(*a, **k)
    try:
        read = data_mod.gather(study)
    finally:
        data_mod._refit = orig
    assert not [c for c in calls if c[-1] == "learning curve"]  # read, not refitted
    xs = np.array([100.0, 1e4, 1e6])
    for a, b in ((read.lc_fit, refit.lc_fit), (read.size_fit, refit.size_fit)):
        pa, pb = a.predict(xs, interval=0.9), b.predict(xs, interval=0.9)
        assert np.allclose(pa.y, pb.y) and np.allclose(pa.lo, pb.lo) and np.allclose(pa.hi, pb.hi)
        assert a.exponent_ci == pytest.approx(b.exponent_ci)
    # a summary.json rewritten without its fits: the stored arrays are another fit's, so refit
    s["learning_curve"]["params"] = {k: v * 1.5 for k, v in s["learning_curve"]["params"].items()}
    summary_mod.write_summary(study, s)
    assert summary_mod.read_fit(study, "learning_curve", s["learning_curve"]) is None
    (study / "fits.npz").write_bytes(b"not a zip")
    assert summary_mod.read_fit(study, "model_size_law", s["model_size_law"]) is None
    assert data_mod.gather(study).lc_fit is not None  # refitted
