"""`scalinglab reproduce`: the paper's table, every measured number read from a stored summary."""

import json

import pytest

from scalinglab.analysis.reproduce import DOMAINS, HESTNESS_FORM
from scalinglab.analysis.summary import fit_learning_curve
from scalinglab.cli.main import main


def test_reproduce_quick_writes_the_table_from_the_stored_summaries(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reproduce", "--quick", "--out", str(out)]) == 0
    rows = json.loads((out / "reproduce.json").read_text())
    assert [r["domain"] for r in rows] == [
        d.name for d in DOMAINS.values() for _ in d.paper
    ]  # every domain, image twice (top-1, top-5)
    md = (out / "reproduce.md").read_text()
    assert "| image | top-5 |" in md and "-0.488" in md and "not built yet" in md
    by_name = {d.name: d for d in DOMAINS.values()}
    for r in rows:
        d = by_name[r["domain"]]
        assert r["paper_beta_g"] == d.paper[r["metric"]]
        if r["domain"] == "word LM":
            assert "beta_g" not in r and "not built" in r["note"]
            continue
        s = json.loads((out / d.quick / "summary.json").read_text())
        pts = s["points_top5"] if r["metric"] == "top-5" else s["points"]
        assert r["data_sizes"] == [pts[0]["data_size"], pts[-1]["data_size"]]
        if len(pts) >= 4:  # recomputed here from the file: the table holds what the summary says
            f = fit_learning_curve(pts, y0=s["random_guess_error"], form=HESTNESS_FORM)
            assert r["beta_g"]["value"] == pytest.approx(f.exponent)
            assert r["beta_g"]["ci"] == pytest.approx(list(f.exponent_ci))
        else:
            assert "too few" in r["beta_g"]["note"]
        sl = s.get("model_size_law") or {}
        if sl.get("exponent") is not None:
            assert r["beta_p"]["value"] == pytest.approx(sl["exponent"])


def test_reproduce_bad_domain_is_one_line(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--domain", "vision", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "--domain: given 'vision'" in err and "image" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
