"""examples/notebook.ipynb runs top to bottom (nbclient), in a scratch folder, on this checkout."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("mlflow")
pytest.importorskip("pyarrow")

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"


def test_example_notebook_runs(tmp_path, monkeypatch):
    repo = str(NOTEBOOK.parent.parent)
    # the kernel imports this checkout's scalinglab, writes runs/ in tmp_path, logs to no other MLflow
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: no display needed
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    out = tmp_path / "runs" / "smoke"
    assert (out / "summary.json").exists() and (out / "report.html").exists()
    assert (out / "trials.parquet").exists() and (out / "mlflow.db").exists()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("StudyResult" in h and "<img" in h for h in html)  # the result's display
    assert any("CurveFit" in h and "<img" in h for h in html)  # the fit's display
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1  # the plt figure
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "scalinglab.run(" in first.source
