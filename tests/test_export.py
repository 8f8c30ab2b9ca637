"""`scalinglab export DIR --parquet`: next to the CSV with pyarrow; one line and exit 2 without it."""

import sys

import pandas as pd
import pytest

from scalinglab.cli.main import main


def test_parquet_next_to_csv(smoke_run, capsys):
    pytest.importorskip("pyarrow")
    out = smoke_run.out
    assert main(["export", str(out), "--csv", "--parquet"]) == 0
    csv, pq = pd.read_csv(out / "trials.csv"), pd.read_parquet(out / "trials.parquet")
    assert len(pq) == len(csv) == len(smoke_run.results) > 0
    assert list(pq.columns) == list(csv.columns)
    assert pq["data_size"].dtype.kind == "i" and pq["min_dev_error"].dtype.kind == "f"  # types kept
    assert pq["min_dev_error"].tolist() == pytest.approx(csv["min_dev_error"].tolist())
    assert capsys.readouterr().err.count("wrote") == 2


def test_parquet_to_a_named_file_only(smoke_run, tmp_path):
    pytest.importorskip("pyarrow")
    (smoke_run.out / "trials.csv").unlink(missing_ok=True)
    assert main(["export", str(smoke_run.out), "--parquet", str(tmp_path / "t.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "t.parquet")) == len(smoke_run.results)
    assert not (smoke_run.out / "trials.csv").exists()  # --parquet alone writes no CSV


def test_mixed_type_column_written_as_text(tmp_path):
    pytest.importorskip("pyarrow")
    from scalinglab.cli.export_cmd import write_parquet

    df = pd.DataFrame({"tag_level": pd.Series([0.01, "sgd", None], dtype=object), "n": [1, 2, 3]})
    write_parquet(df, tmp_path / "m.parquet")
    back = pd.read_parquet(tmp_path / "m.parquet")
    assert back["tag_level"].tolist()[:2] == ["0.01", "sgd"] and back["n"].tolist() == [1, 2, 3]


def test_without_pyarrow_one_line_exit_2_nothing_written(smoke_run, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    target = tmp_path / "t.parquet"
    assert main(["export", str(smoke_run.out), "--csv", str(tmp_path / "t.csv"), "--parquet", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "scalinglab: error: export: --parquet needs pyarrow, which is not installed; pip install 'scalinglab[parquet]'"
    )
    assert not target.exists() and not (tmp_path / "t.csv").exists()


def test_no_flag_still_writes_the_csv(smoke_run):
    (smoke_run.out / "trials.csv").unlink(missing_ok=True)
    assert main(["export", str(smoke_run.out)]) == 0
    assert len(pd.read_csv(smoke_run.out / "trials.csv")) == len(smoke_run.results)
