"""`scalinglab.Study`: a scaling study on your own arrays and model from Python, scikit-learn style.

    import scalinglab
    study = scalinglab.Study(data=(x, y), model=make_net, sizes=[64, 128, 256, 512, 1024],
                             model_sizes=[{"width": 16}, {"width": 64}], seeds=3, lr=3e-3)
    res = study.run()            # or .run(out="runs/mine"): resumable, like the CLI
    res.results                  # DataFrame, one row per trial
    res.learning_curve["exponent"], res.model_size_law, res.summary

It builds the same validated study config as a TOML file would (`study.config`) and runs it with the
same runner, so the trials and summary.json equal the CLI's on the same study.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from scalinglab.errors import UserError
from scalinglab.files import write_atomic

PARTS = ("x", "y", "x_dev", "y_dev", "x_test", "y_test")


def save_arrays(arrays: dict) -> Path:
    """Save arrays to the data cache as `arrays/<sha256 of content>.npz` (no pickle) and return the path:
    worker processes load them by path; equal arrays give the same file, so the same trial ids."""
    from scalinglab.data.registry import cache_dir

    h = hashlib.sha256()
    clean = {}
    for k in PARTS:
        if k in arrays:
            a = np.asarray(arrays[k])
            if a.dtype == object:  # e.g. string labels from pandas: store as a fixed-width string array
                a = a.astype(str)
            a = np.ascontiguousarray(a)
            clean[k] = a
            h.update(f"{k}:{a.dtype.str}:{a.shape};".encode())
            h.update(a.tobytes())
    unknown = sorted(set(arrays) - set(PARTS))
    if unknown:
        raise UserError(f"Study: data: given array {unknown[0]!r}; allowed: {', '.join(PARTS)}")
    path = cache_dir() / "arrays" / f"{h.hexdigest()[:24]}.npz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: np.savez(tmp, **clean))
    return path


class StudyResult:
    """What `Study.run` returns; everything is read back from the study folder `out`."""

    def __init__(self, out: Path, name: str | None = None):
        from scalinglab.store import load_results

        self.out = Path(out)
        if not (self.out / "summary.json").exists():
            raise UserError(f"{self.out}: no summary.json here; give a study output folder (e.g. runs/smoke)")
        self.summary = json.loads((self.out / "summary.json").read_text())
        self.name = name or self.summary.get("study")
        self.results = load_results(self.out, self.name)  # one row per trial
        self.learning_curve = self.summary.get("learning_curve")  # dict: form, params, exponent, ci, ...
        self.model_size_law = self.summary.get("model_size_law")
        self.points = self.summary.get("points", [])  # the best-fit point per data size

    @property
    def report_data(self):
        """What the report draws (report.data.gather): trials, summary and the fits rebuilt from the
        stored points; read once, on first use."""
        if getattr(self, "_report_data", None) is None:
            from scalinglab.report.data import gather

            self._report_data = gather(self.out, study=self.name)
        return self._report_data

    @property
    def fit(self):
        """The learning curve as a CurveFit (`.predict`, `.plot`, `.report()`), refitted from the stored
        points with summary.json's form; None below 4 data sizes."""
        return self.report_data.lc_fit

    def plot(self, ax=None):
        """The report's learning-curve figure on `ax` (a new matplotlib Figure's when None; no display
        needed). Returns the Axes."""
        from scalinglab.report.display import plot_study

        return plot_study(self, ax)

    def _repr_html_(self) -> str:  # Jupyter: a summary table and the learning curve
        from scalinglab.report.display import study_html

        return study_html(self)

    def __repr__(self):
        lc = self.learning_curve or {}
        return f"StudyResult({len(self.results)} trials in {self.out}, learning-curve exponent {lc.get('exponent')})"


def run(
    study="default",
    out=None,
    *,
    workers: int = 1,
    device: str | None = None,
    backend: str = "local",
    form: str = "auto",
    report: bool = True,
    verbose: bool = False,
) -> StudyResult:
    """Run (or resume) a preset or a study file as `scalinglab run` does, and return its results.

    study : a preset name ("smoke"), a path to a study .toml, or a validated `config.Study`.
    out : the study folder (default runs/<study name>, as the CLI); report : also write report.html.
    """
    from scalinglab.config import Study as StudyConfig
    from scalinglab.config import load_study
    from scalinglab.runner import run_study

    cfg, source = (study, "python api") if isinstance(study, StudyConfig) else load_study(str(study))
    out = Path(out) if out is not None else Path("runs") / cfg.name
    run_study(
        cfg,
        out,
        source=source,
        backend=backend,
        workers=workers,
        device=device,
        form=form,
        log=None if verbose else (lambda msg: None),
    )
    if report:
        from scalinglab.report import write_report

        write_report(out)
    return StudyResult(out, cfg.name)


class Study:
    """A scaling study on your own data and model.

    Parameters
    ----------
    data : (x, y) | (x, y, x_dev, y_dev, x_test, y_test) | dict of those arrays | path | data-set name
        Arrays: x (n, ...) numbers, y (n,) class labels (ints or strings). They are saved once to the
        data cache as an .npz named by their content hash. A path: an .npz, .csv, .npy folder or image
        folder, as `data = { kind = "arrays", path = ... }` in a study file. A registered name
        ("teacher", "charlm", ...) with `data_options`.
    model : callable | "module:function" | family name
        A factory `(size: dict, input_shape: tuple, n_outputs: int) -> torch.nn.Module`; or the name of
        one; or a registered family ("mlp", "cnn1d", "transformer"). A callable that cannot be imported
        back by name (defined in `__main__`, e.g. a notebook or script, a lambda, a closure) runs in
        this process only: `run(workers=1)`. Define it in a module to use worker processes.
    sizes : list of int | dict(min=, max=, factor=)
        Training-set sizes (nested subsets of the train pool).
    model_sizes : list of dict, optional
        The size dicts passed to the factory (or a family's knobs), e.g. [{"width": 32}, {"width": 128}].
    widths, depths : list of int, optional
        Shorthand: every width x depth (a family's `widths`/`depths`; for a factory, size dicts).
    seeds : int
    search : "grid" | "hestness" | dict of [search] fields
    **train : the [train] fields: lr, batch_size, max_epochs, patience, optimizer, weight_decay, ...
    """

    def __init__(
        self,
        data,
        model,
        *,
        sizes,
        model_sizes=None,
        widths=None,
        depths=None,
        seeds: int = 3,
        name: str = "study",
        search="grid",
        data_options: dict | None = None,
        split_seed: int = 0,
        batchnorm: bool = False,
        **train,
    ):
        from scalinglab import config
        from scalinglab.models.factory import token_for

        self.inprocess = False
        data_table = {"name": "arrays", "options": dict(data_options or {}), "split_seed": split_seed}
        if isinstance(data, (str, os.PathLike)):
            from scalinglab.data.registry import DATASETS

            if isinstance(data, str) and data in DATASETS and not Path(data).exists():
                data_table["name"] = data
            else:
                data_table["options"]["path"] = str(data)
        else:
            arrays = dict(data) if isinstance(data, dict) else dict(zip(PARTS, data))
            if isinstance(data, (tuple, list)) and len(data) not in (2, 6):
                raise UserError(
                    f"Study: data: given a sequence of {len(data)} arrays; allowed: (x, y) or "
                    f"(x, y, x_dev, y_dev, x_test, y_test)"
                )
            data_table["options"]["path"] = str(save_arrays(arrays))
        data_table["sizes"] = {"list": list(sizes)} if isinstance(sizes, (list, tuple)) else dict(sizes)

        m: dict = {}
        if callable(model):
            m["factory"], m["sys_path"] = token_for(model)
            self.inprocess = m["factory"].startswith("inprocess:")
        elif isinstance(model, str) and ":" in model:
            m["factory"] = model
        elif isinstance(model, str):
            m["family"] = model
        else:
            raise UserError(
                f"Study: model: given a {type(model).__name__}; allowed: a factory function, "
                f"'module:function' or a family name"
            )
        if model_sizes is not None:
            m["sizes"] = [dict(s) for s in model_sizes]
        elif "factory" in m and widths is not None:
            m["sizes"] = [{"width": w, **({"depth": d} if depths else {})} for d in (depths or [None]) for w in widths]
        else:
            if widths is not None:
                m["widths" if m.get("family") != "cnn1d" else "channels"] = list(widths)
            if depths is not None:
                m["depths"] = list(depths)
        if batchnorm:
            m["batchnorm"] = True
        raw = {
            "name": name,
            "seeds": seeds,
            "data": data_table,
            "model": m,
            "train": train,
            "search": {"kind": search} if isinstance(search, str) else dict(search),
        }
        self.config = config.validate_study(raw, "Study", Path.cwd())

    def run(
        self,
        out=None,
        *,
        workers: int = 1,
        device: str | None = None,
        backend: str = "local",
        form: str = "auto",
        verbose: bool = False,
    ) -> StudyResult:
        """Run (or resume, when `out` holds this study) and return the results. out=None: a new
        temporary folder (kept: `result.out`)."""
        from scalinglab.runner import run_study

        if self.inprocess and (workers > 1 or backend != "local"):
            raise UserError(
                "Study.run: workers: the model is a callable that cannot be imported by name "
                "(defined in __main__, a lambda or a closure); allowed: workers=1, or define "
                "it in a module"
            )
        out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"scalinglab-{self.config.name}-"))
        run_study(
            self.config,
            out,
            source="python api",
            backend=backend,
            workers=workers,
            device=device,
            form=form,
            log=None if verbose else (lambda msg: None),
        )
        return StudyResult(out, self.config.name)
