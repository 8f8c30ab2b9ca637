"""Hostile input (issue 21): study files, flags, own data, factories, CSVs for `fit` and faults of the
environment (read-only folders, foreign or corrupt stores, FIFOs). Each must end in exit code 2 with
one line on stderr naming what is wrong, no traceback, and nothing written (no runs/, no --out).

The CLI runs in-process (`main([...])`), so the whole module takes seconds. Read-only folders are
made with chmod; as root (who ignores permissions) the command runs with the effective uid of
`nobody` for its duration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli.main import main

DATA = (
    'name = "teacher"\noptions = {{ n_train = 600, n_dev = 100, n_test = 100, dim = 4, hidden = 8, '
    "n_classes = 3{opts} }}\nsizes = {{ min = 32, max = 128 }}"
)
BASE = {
    "": 'name = "hostile"\nseeds = 1',
    "data": DATA.format(opts=""),
    "model": 'family = "mlp"\nwidths = [8]\ndepths = [1]',
    "train": "max_epochs = 2",
    "search": None,
}


def study_text(**sections) -> str:
    """The base study with sections replaced (`top` is the part before the first table)."""
    parts = {**BASE, **{("" if k == "top" else k): v for k, v in sections.items()}}
    out = [parts[""]]
    for k, v in parts.items():
        if k and v is not None:
            out.append(f"[{k}]\n{v}")
    return "\n".join(out) + "\n"


OPTIONS = {"n_train": "600", "n_dev": "100", "n_test": "100", "dim": "4", "hidden": "8", "n_classes": "3"}


def data(opts: str = "", sizes: str = "{ min = 32, max = 128 }") -> str:
    """The teacher data table with `opts` ("key = value") replacing or adding options."""
    o = dict(OPTIONS)
    if opts:
        k, _, v = opts.partition("=")
        o[k.strip()] = v.strip()
    body = ", ".join(f"{k} = {v}" for k, v in o.items())
    return f'name = "teacher"\noptions = {{ {body} }}\nsizes = {sizes}'


def search(lines: str, kind: str = "grid") -> str:
    return f'kind = "{kind}"\n{lines}'


def one_line_error(capsys, rc, *fragments):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("scalinglab: error: "), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def nothing_written(folder: Path, before: set):
    after = {p.relative_to(folder) for p in folder.rglob("*")}
    assert after == before, sorted(map(str, after - before))
    assert not (folder / "runs").exists()


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_bad(cwd, capsys, argv, *fragments):
    before = {p.relative_to(cwd) for p in cwd.rglob("*")}
    rc = main(argv)
    line = one_line_error(capsys, rc, *fragments)
    nothing_written(cwd, before)
    return line


# --- study files ---------------------------------------------------------------------------------

STUDIES = {
    # item 1: the name becomes a folder
    "name-dotdot": (dict(top='name = "../../etc"'), "name"),
    "name-absolute": (dict(top='name = "/tmp/scalinglab-hostile"'), "name"),
    "name-slash": (dict(top='name = "a/b"'), "name"),
    "name-nul": (dict(top='name = "a\\u0000b"'), "name"),
    "name-300": (dict(top=f'name = "{"x" * 300}"'), "name"),
    "name-dot": (dict(top='name = ".hidden"'), "name"),
    "name-dots": (dict(top='name = ".."'), "name"),
    "name-empty": (dict(top='name = ""'), "name"),
    "name-space": (dict(top='name = "my study"'), "name"),
    "name-markup": (dict(top='name = "[bold]x[/]"'), "name"),
    "name-backslash": (dict(top='name = "a\\\\b"'), "name"),
    "name-newline": (dict(top='name = "a\\nb"'), "name"),
    "name-int": (dict(top="name = 5"), "name"),
    "name-missing": (dict(top="seeds = 1"), "name"),
    "seeds-zero": (dict(top='name = "h"\nseeds = 0'), "seeds"),
    "seeds-huge": (dict(top='name = "h"\nseeds = 1000'), "seeds"),
    "top-unknown-key": (dict(top='name = "h"\nseedz = 2'), "seedz"),
    "description-huge": (dict(top=f'name = "h"\ndescription = "{"d" * 20000}"'), "description"),
    # item 3: data options
    "n_train-string": (dict(data=data('n_train = "abc"')), "data.options.n_train"),
    "n_train-negative": (dict(data=data("n_train = -5")), "data.options.n_train"),
    "n_train-zero": (dict(data=data("n_train = 0")), "data.options.n_train"),
    "n_train-1e10": (dict(data=data("n_train = 1e10")), "data.options.n_train"),
    "n_train-10000000000": (dict(data=data("n_train = 10000000000")), "data.options.n_train"),
    "n_train-float": (dict(data=data("n_train = 600.5")), "data.options.n_train"),
    "n_train-bool": (dict(data=data("n_train = true")), "data.options.n_train"),
    "n_dev-zero": (dict(data=data("n_dev = 0")), "data.options.n_dev"),
    "n_test-negative": (dict(data=data("n_test = -1")), "data.options.n_test"),
    "noise-too-high": (dict(data=data("noise = 0.9")), "noise"),
    "noise-negative": (dict(data=data("noise = -0.1")), "noise"),
    "noise-string": (dict(data=data('noise = "low"')), "data.options.noise"),
    "noise-nan": (dict(data=data("noise = nan")), "data.options.noise"),
    "n_classes-one": (dict(data=data("n_classes = 1")), "n_classes"),
    "dim-zero": (dict(data=data("dim = 0")), "dim"),
    "seed-string": (dict(data=data('seed = "x"')), "data.options.seed"),
    "seed-negative": (dict(data=data("seed = -1")), "data.options.seed"),
    "option-unknown": (dict(data=data("colour = 1")), "data.options.colour"),
    "data-unknown-set": (dict(data='name = "imagenet"\nsizes = { min = 32, max = 128 }'), "data.name"),
    "data-missing": (dict(data=None), "data"),
    "sizes-reversed": (dict(data=data(sizes="{ min = 128, max = 32 }")), "data.sizes"),
    "sizes-beyond-pool": (dict(data=data(sizes="{ min = 32, max = 4096 }")), "data.sizes"),
    "sizes-factor-one": (dict(data=data(sizes="{ min = 32, max = 128, factor = 1.0 }")), "data.sizes.factor"),
    "sizes-negative": (dict(data=data(sizes="{ min = -32, max = 128 }")), "data.sizes.min"),
    "sizes-list-unsorted": (dict(data=data(sizes="{ list = [64, 32] }")), "data.sizes"),
    "sizes-list-one": (dict(data=data(sizes="{ list = [64] }")), "data.sizes"),
    "sizes-string": (dict(data=data(sizes='"all"')), "data.sizes"),
    "split_seed-string": (dict(data=data() + '\nsplit_seed = "x"'), "data.split_seed"),
    # model
    "size-unknown-key": (dict(model='family = "mlp"\nsizes = [{ widht = 64 }]'), "model.sizes[0].widht"),
    "size-second-unknown": (
        dict(model='family = "mlp"\nsizes = [{ width = 8 }, { width = 16, dept = 2 }]'),
        "model.sizes[1].dept",
    ),
    "size-negative": (dict(model='family = "mlp"\nsizes = [{ width = -8 }]'), "model.sizes[0].width"),
    "size-string": (dict(model='family = "mlp"\nsizes = [{ width = "8" }]'), "model.sizes[0].width"),
    "size-float": (dict(model='family = "mlp"\nsizes = [{ width = 8.5 }]'), "model.sizes[0].width"),
    "size-empty-table": (dict(model='family = "mlp"\nsizes = [{}]'), "model"),
    "cnn-size-width": (dict(model='family = "cnn1d"\nsizes = [{ width = 8 }]'), "model.sizes[0].width"),
    "widths-empty": (dict(model='family = "mlp"\nwidths = []'), "model.widths"),
    "widths-zero": (dict(model='family = "mlp"\nwidths = [0]'), "model.widths"),
    "depths-negative": (dict(model='family = "mlp"\nwidths = [8]\ndepths = [-1]'), "model.depths"),
    "family-unknown": (dict(model='family = "resnext"\nwidths = [8]'), "model.family"),
    "model-unknown-key": (dict(model='family = "mlp"\nwidht = [8]'), "model.widht"),
    "batchnorm-string": (dict(model='family = "mlp"\nwidths = [8]\nbatchnorm = 3'), "model.batchnorm"),
    "widths-missing": (dict(model='family = "mlp"'), "model.width"),
    # train
    "lr-negative": (dict(train="lr = -0.01"), "train.lr"),
    "lr-zero": (dict(train="lr = 0"), "train.lr"),
    "lr-string": (dict(train='lr = "fast"'), "train.lr"),
    "lr-huge": (dict(train="lr = 1e6"), "train.lr"),
    "optimizer-unknown": (dict(train='optimizer = "adma"'), "train.optimizer"),
    "batch_size-zero": (dict(train="batch_size = 0"), "train.batch_size"),
    "max_epochs-negative": (dict(train="max_epochs = -1"), "train.max_epochs"),
    "patience-zero": (dict(train="patience = 0"), "train.patience"),
    "device-tpu": (dict(train='device = "tpu"'), "train.device"),
    "weight_decay-negative": (dict(train="weight_decay = -1"), "train.weight_decay"),
    "momentum-one": (dict(train="momentum = 1.0"), "train.momentum"),
    "train-unknown-key": (dict(train="lrr = 0.1"), "train.lrr"),
    "hparams-builtin": (dict(train="hparams = { dropout = 0.1 }"), "train"),
    # search: factor levels and lr grids
    "levels-optimizer-unknown": (
        dict(search=search('factor = "optimizer"\nlevels = ["adam", "adma"]')),
        "search.levels",
    ),
    "levels-lr-negative": (dict(search=search('factor = "lr"\nlevels = [0.01, -0.01]')), "search.levels"),
    "levels-lr-zero": (dict(search=search('factor = "lr"\nlevels = [0, 0.01]')), "search.levels"),
    "levels-lr-string": (dict(search=search('factor = "lr"\nlevels = ["a", "b"]')), "search.levels"),
    "levels-wd-negative": (dict(search=search('factor = "weight_decay"\nlevels = [-1, 0]')), "search.levels"),
    "levels-batch-zero": (dict(search=search('factor = "batch_size"\nlevels = [0, 32]')), "search.levels"),
    "levels-batch-float": (dict(search=search('factor = "batch_size"\nlevels = [32.5, 64]')), "search.levels"),
    "levels-batchnorm-string": (dict(search=search('factor = "batchnorm"\nlevels = ["yes", "no"]')), "search.levels"),
    "levels-duplicate": (dict(search=search('factor = "lr"\nlevels = [0.1, 0.1]')), "search.levels"),
    "levels-one": (dict(search=search('factor = "lr"\nlevels = [0.1]')), "search"),
    "factor-unknown": (dict(search=search('factor = "dropout"\nlevels = [0.1, 0.2]')), "search.factor"),
    "factor-without-levels": (dict(search=search('factor = "lr"')), "search"),
    "lrs-negative": (dict(search=search("lrs = [-0.01, 0.01]", "hestness")), "search.lrs"),
    "lrs-zero": (dict(search=search("lrs = [0.0]", "hestness")), "search.lrs"),
    "lrs-huge": (dict(search=search("lrs = [100.0]", "hestness")), "search.lrs"),
    "search-kind": (dict(search='kind = "bogus"'), "search.kind"),
    "candidates-zero": (dict(search=search("candidates = 0", "hestness")), "search.candidates"),
    "reference-unknown-key": (dict(search=search("reference = { widht = 8 }", "hestness")), "search.reference.widht"),
    "reference-not-listed": (dict(search=search("reference = { width = 999 }", "hestness")), "search.reference"),
    "reference-lr-negative": (
        dict(search=search("reference = { width = 8, lr = -1 }", "hestness")),
        "search.reference.lr",
    ),
    "metric-builtin": (dict(top='name = "h"\n[metric]\nname = "bleu"'), "metric"),
    "weighting-without-aux": (dict(search='kind = "weighting"'), "weighting"),
}


@pytest.mark.parametrize("case", list(STUDIES), ids=list(STUDIES))
def test_bad_study_file(cwd, capsys, case):
    over, field = STUDIES[case]
    p = cwd / "study.toml"
    p.write_text(study_text(**over))
    line = run_bad(cwd, capsys, ["run", str(p), "--no-progress"], field, str(p))
    assert "np.int64" not in line and "np.float64" not in line


RAW_FILES = {
    "toml-syntax": (b'name = "h"\n[data\n', "not valid TOML"),
    "empty": (b"", "name"),
    "binary": (bytes(range(256)) * 4, "not a text file"),
    "nul-bytes": (b'name = "h"\x00\x00', "not a text file"),
    "latin1": ('name = "caf\xe9"\n'.encode("latin-1"), "not a text file"),
    "toml-array-top": (b"[[data]]\nname = 1\n", "name"),
}


@pytest.mark.parametrize("case", list(RAW_FILES), ids=list(RAW_FILES))
def test_bad_study_bytes(cwd, capsys, case):
    blob, fragment = RAW_FILES[case]
    p = cwd / "study.toml"
    p.write_bytes(blob)
    run_bad(cwd, capsys, ["run", str(p)], fragment)


def test_study_fifo_and_folder_and_missing(cwd, capsys):
    fifo = cwd / "fifo.toml"
    os.mkfifo(fifo)
    run_bad(cwd, capsys, ["run", str(fifo)], "not a regular file")
    (cwd / "dir.toml").mkdir()
    run_bad(cwd, capsys, ["run", str(cwd / "dir.toml")], "folder")
    run_bad(cwd, capsys, ["run", "no-such.toml"], "no such study file")


# --- flags ---------------------------------------------------------------------------------------

FLAGS = {
    "form-bogus": (["--form", "bogus"], "--form"),
    "form-model_size": (["--form", "model_size"], "--form"),
    "workers-zero": (["--workers", "0"], "--workers"),
    "workers-negative": (["--workers", "-3"], "--workers"),
    "threads-zero": (["--threads", "0"], "--threads"),
    "address-without-ray": (["--address", "auto"], "--address"),
    "num-cpus-without-ray": (["--num-cpus", "2"], "--num-cpus"),
    "num-gpus-without-ray": (["--num-gpus", "1"], "--num-gpus"),
    "out-existing-file": (["--out", "afile"], "--out"),
    "out-under-file": (["--out", "afile/sub"], "--out"),
    "out-nul": (["--out", "a\x00b"], "--out"),
}


@pytest.mark.parametrize("case", list(FLAGS), ids=list(FLAGS))
def test_bad_flag(cwd, capsys, case):
    argv, field = FLAGS[case]
    p = cwd / "study.toml"
    p.write_text(study_text())
    (cwd / "afile").write_text("not a folder")
    run_bad(cwd, capsys, ["run", str(p), "--no-progress", *argv], field)
    assert (cwd / "afile").read_text() == "not a folder"


def test_train_device_cuda_names_the_study_field(cwd, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    p = cwd / "study.toml"
    p.write_text(study_text(train='device = "cuda"'))
    line = run_bad(cwd, capsys, ["run", str(p)], "train.device")
    assert "--device" not in line
    run_bad(cwd, capsys, ["run", str(p), "--device", "cuda"], "--device")


# --- your own data (kind = "arrays") -------------------------------------------------------------


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _arrays_cases(d: Path) -> dict:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 4)).astype(np.float32), np.arange(300) % 3
    xn = x.copy()
    xn[5, 1] = np.nan
    _npz(d / "ok.npz", x=x, y=y)
    _npz(d / "nan.npz", x=xn, y=y)
    _npz(d / "short.npz", x=x, y=y[:200])
    _npz(d / "noy.npz", x=x)
    _npz(d / "obj.npz", x=np.array([object()] * 3, dtype=object), y=np.arange(3))
    (d / "bad.npz").write_bytes(b"PK\x03\x04garbage")
    (d / "t.csv").write_text("a,b,label\n" + "\n".join(f"{i},{i * 2},{i % 3}" for i in range(300)))
    arr = 'kind = "arrays"\npath = "{}"\nsizes = {{ min = 32, max = 128 }}'
    return {
        "missing-file": (arr.format("nope.npz"), "data"),
        "nan": (arr.format("nan.npz"), "nan.npz"),
        "length-mismatch": (arr.format("short.npz"), "short.npz"),
        "no-y": (arr.format("noy.npz"), "noy.npz"),
        "object-array": (arr.format("obj.npz"), "obj.npz"),
        "corrupt-npz": (arr.format("bad.npz"), "bad.npz"),
        "csv-no-label-column": (arr.format("t.csv"), "label_column"),
        "csv-wrong-label-column": (arr.format("t.csv") + '\nlabel_column = "zzz"', "zzz"),
        "dev_fraction-two": (arr.format("ok.npz") + "\ndev_fraction = 2.0", "dev_fraction"),
        "sizes-beyond-pool": (arr.format("ok.npz").replace("max = 128", "max = 4096"), "data.sizes"),
        "image_size-string": (arr.format("ok.npz") + '\nimage_size = "big"', "data.options.image_size"),
        "kind-and-name": (
            'kind = "arrays"\nname = "arrays"\npath = "ok.npz"\nsizes = { min = 32, max = 128 }',
            "data.kind",
        ),
    }


ARRAY_CASES = [
    "missing-file",
    "nan",
    "length-mismatch",
    "no-y",
    "object-array",
    "corrupt-npz",
    "csv-no-label-column",
    "csv-wrong-label-column",
    "dev_fraction-two",
    "sizes-beyond-pool",
    "image_size-string",
    "kind-and-name",
]


@pytest.mark.parametrize("case", ARRAY_CASES)
def test_bad_own_data(cwd, capsys, case, monkeypatch):
    monkeypatch.setenv("SCALINGLAB_CACHE", str(cwd / "cache"))
    section, fragment = _arrays_cases(cwd)[case]
    p = cwd / "study.toml"
    p.write_text(study_text(data=section))
    before = {q.relative_to(cwd) for q in cwd.rglob("*")}
    rc = main(["run", str(p), "--no-progress"])
    one_line_error(capsys, rc, fragment)
    after = {q.relative_to(cwd) for q in cwd.rglob("*") if "cache" not in q.parts}
    assert after <= before and not (cwd / "runs").exists()


# --- your own model (model.factory) --------------------------------------------------------------

FACTORY_MODULE = textwrap.dedent("""
    import torch
    from torch import nn

    def ok(size, input_shape, n_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], n_outputs))

    def raises(size, input_shape, n_outputs):
        raise ValueError("no such width: " + str(size))

    def returns_int(size, input_shape, n_outputs):
        return 42

    def returns_function(size, input_shape, n_outputs):
        return lambda x: x

    def wrong_input(size, input_shape, n_outputs):
        return nn.Linear(input_shape[0] + 3, n_outputs)

    def wrong_outputs(size, input_shape, n_outputs):
        return nn.Linear(input_shape[0], n_outputs + 1)

    def needs_key(size, input_shape, n_outputs):
        return nn.Linear(input_shape[0], size["hidden"])

    class Tuple(nn.Module):
        def forward(self, x):
            return (x, x)

    def returns_tuple(size, input_shape, n_outputs):
        return Tuple()

    not_callable = 3
""")

FACTORIES = {
    "raises": ('"mods:raises"', "ValueError"),
    "returns-int": ('"mods:returns_int"', "int"),
    "returns-function": ('"mods:returns_function"', "function"),
    "forward-fails": ('"mods:wrong_input"', "forward"),
    "wrong-outputs": ('"mods:wrong_outputs"', "(2, 3"),
    "missing-size-key": ('"mods:needs_key"', "KeyError"),
    "tuple-output": ('"mods:returns_tuple"', "tuple"),
    "no-such-function": ('"mods:nope"', "nope"),
    "no-such-module": ('"no_such_module_xyz:make"', "no_such_module_xyz"),
    "not-callable": ('"mods:not_callable"', "model.factory"),
    "no-colon": ('"mods"', "model.factory"),
}


@pytest.mark.parametrize("case", list(FACTORIES), ids=list(FACTORIES))
def test_bad_factory(cwd, capsys, case, monkeypatch):
    monkeypatch.setenv("SCALINGLAB_CACHE", str(cwd / "cache"))
    (cwd / "mods.py").write_text(FACTORY_MODULE)
    ref, fragment = FACTORIES[case]
    p = cwd / "study.toml"
    p.write_text(study_text(model=f"factory = {ref}\nsizes = [{{ width = 8 }}]"))
    before = {q.relative_to(cwd) for q in cwd.rglob("*")}
    rc = main(["run", str(p), "--no-progress"])
    one_line_error(capsys, rc, "model.factory", fragment)
    after = {q.relative_to(cwd) for q in cwd.rglob("*") if "cache" not in q.parts and "__pycache__" not in q.parts}
    assert after <= before and not (cwd / "runs").exists()


def test_factory_without_sizes(cwd, capsys):
    (cwd / "mods.py").write_text(FACTORY_MODULE)
    p = cwd / "study.toml"
    p.write_text(study_text(model='factory = "mods:ok"'))
    run_bad(cwd, capsys, ["run", str(p)], "model")


# --- CSVs for `scalinglab fit` -------------------------------------------------------------------


def _curve(n=8):
    xs = np.geomspace(100, 1e5, n)
    return xs, 0.05 + 2 * xs**-0.4


FIT_CSVS = {
    "missing-x-column": ("n,err\n1,2\n", ["--x", "size", "--y", "err"], "--x"),
    "missing-y-column": ("n,err\n1,2\n", ["--x", "n", "--y", "loss"], "--y"),
    "text-x": ("n,err\n" + "\n".join(f"a{i},0.{i + 1}" for i in range(6)), ["--x", "n", "--y", "err"], "--x n"),
    "text-y": ("n,err\n" + "\n".join(f"{10**i},bad" for i in range(1, 7)), ["--x", "n", "--y", "err"], "--y err"),
    "zero-x": ("n,err\n0,0.5\n" + "\n".join(f"{10**i},{1 / i}" for i in range(1, 7)), ["--x", "n", "--y", "err"], "n"),
    "negative-y": ("n,err\n" + "\n".join(f"{10**i},{-1 / i}" for i in range(1, 7)), ["--x", "n", "--y", "err"], "err"),
    "inf-y": ("n,err\n" + "\n".join(f"{10**i},inf" for i in range(1, 7)), ["--x", "n", "--y", "err"], "err"),
    "too-few-x": ("n,err\n10,0.5\n20,0.4\n", ["--x", "n", "--y", "err"], "n"),
    "empty-file": ("", ["--x", "n", "--y", "err"], "fit"),
    "header-only": ("n,err\n", ["--x", "n", "--y", "err"], "n"),
    "bad-predict": (None, ["--x", "n", "--y", "err", "--predict", "abc"], "--predict"),
    "negative-predict": (None, ["--x", "n", "--y", "err", "--predict", "-5"], "--predict"),
    "bad-interval": (None, ["--x", "n", "--y", "err", "--interval", "2"], "--interval"),
    "bad-form": (None, ["--x", "n", "--y", "err", "--form", "cubic"], "form"),
    "negative-nboot": (None, ["--x", "n", "--y", "err", "--n-boot", "-1"], "--n-boot"),
    "bad-group": (None, ["--x", "n", "--y", "err", "--group", "zzz"], "--group"),
    "bad-weights": (None, ["--x", "n", "--y", "err", "--weights", "zzz"], "--weights"),
    "negative-y0": (None, ["--x", "n", "--y", "err", "--y0", "-1"], "y0"),
}


@pytest.mark.parametrize("case", list(FIT_CSVS), ids=list(FIT_CSVS))
def test_bad_fit_csv(cwd, capsys, case):
    text, argv, fragment = FIT_CSVS[case]
    if text is None:
        xs, ys = _curve()
        text = "n,err\n" + "\n".join(f"{x:.0f},{y:.6f}" for x, y in zip(xs, ys))
    p = cwd / "runs.csv"
    p.write_text(text)
    line = run_bad(cwd, capsys, ["fit", str(p), "--n-boot", "5", *argv], fragment)
    assert "np.float64" not in line and "np.int64" not in line


def test_fit_csv_binary_fifo_missing(cwd, capsys):
    (cwd / "bin.csv").write_bytes(bytes(range(256)) * 8)
    run_bad(cwd, capsys, ["fit", str(cwd / "bin.csv"), "--x", "n", "--y", "err"], "bin.csv")
    os.mkfifo(cwd / "fifo.csv")
    run_bad(cwd, capsys, ["fit", str(cwd / "fifo.csv"), "--x", "n", "--y", "err"], "csv")
    run_bad(cwd, capsys, ["fit", str(cwd / "none.csv"), "--x", "n", "--y", "err"], "csv")


# --- environment faults --------------------------------------------------------------------------


@contextlib.contextmanager
def as_unprivileged():
    """Permissions apply: as root, run with the effective uid of nobody for the block."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def world_dir():
    """A folder every user can read (pytest's tmp_path is private to its owner)."""
    d = Path(tempfile.mkdtemp(prefix="scalinglab-hostile-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    for p in [d, *d.rglob("*")]:
        with contextlib.suppress(OSError):
            p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(d, ignore_errors=True)


class _Fake:
    """A backend whose trials are instant: error falls with data; width 8 fails at the largest size."""

    def map(self, specs, device="cpu"):
        from scalinglab.train.trial import trial_id

        for s in specs:
            m, w = s["data_size"], s["model"]["size"]["width"]
            if w == 8 and m == 128:
                yield s, {"id": trial_id(s), "status": "failed", "error": "RuntimeError: out of memory"}
                continue
            e = 0.05 + 2 * m**-0.4 * (1 + 0.01 * s["seed"]) + 0.1 / w
            yield (
                s,
                {
                    "id": trial_id(s),
                    "status": "ok",
                    "min_dev_error": e,
                    "final_train_error": e / 2,
                    "params": 10 * w,
                    "best_epoch": 1,
                    "epochs": 2,
                    "test_error": e,
                    "history": [],
                    "train_flops_per_example": 60.0 * w,
                    "train_flops": 60.0 * w * 2 * m,
                    "wall_time": 0.01,
                },
            )


@pytest.fixture(scope="module")
def fake_store(tmp_path_factory):
    from scalinglab.config import parse_study
    from scalinglab.runner import run_study

    out = tmp_path_factory.mktemp("store")
    text = study_text(
        data=data(sizes="{ list = [32, 48, 64, 96, 128] }"),
        model='family = "mlp"\nwidths = [8, 16]\ndepths = [1]',
        top='name = "fake"\nseeds = 2',
    )
    run_study(parse_study(text, "fake.toml"), out, backend=_Fake(), form="pow_c", log=lambda m: None)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _readonly_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    return dst


def _tree(d: Path) -> dict:
    return {p.relative_to(d): (p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*")}


READERS = {
    "status": lambda d: ["status", str(d)],
    "export-stdout": lambda d: ["export", str(d), "--csv", "-"],
    "report-stdout": lambda d: ["report", str(d), "--stdout"],
    "report-md-stdout": lambda d: ["report", str(d), "--stdout", "--format", "md"],
    "diagnose": lambda d: ["diagnose", str(d), "--form", "pow_c"],
    "plan": lambda d: ["plan", str(d), "--target-error", "0.3", "--form", "pow_c"],
}


@pytest.mark.parametrize("case", list(READERS), ids=list(READERS))
def test_read_only_store_can_be_read(fake_store, world_dir, capsys, case):
    import scalinglab.cli.diagnose_cmd
    import scalinglab.cli.plan_cmd
    import scalinglab.cli.status_cmd
    import scalinglab.report.html
    import scalinglab.report.markdown
    import scalinglab.report.plots

    # once as ourselves first: lazy imports and font caches may live where nobody cannot read
    assert main(READERS[case](_copy(fake_store, world_dir / "warm"))) == 0
    capsys.readouterr()
    ro = _readonly_copy(fake_store, world_dir / "ro")
    before = _tree(ro)
    templates = Path(scalinglab.report.html.__file__).parent / "templates"
    with as_unprivileged():
        try:  # a checkout in a private folder (mktemp -d is 0700) is unreadable for nobody: not our fault
            next(templates.iterdir()).read_bytes()
        except OSError as e:
            pytest.skip(f"the package files are not readable by an unprivileged user here ({e.strerror})")
        rc = main(READERS[case](ro))
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "Traceback" not in err and out.strip()
    assert _tree(ro) == before


WRITERS = {
    "run-into-read-only": lambda d, s: ["run", str(s), "--out", str(d / "new"), "--no-progress"],
    "run-into-read-only-store": lambda d, s: ["run", str(s), "--out", str(d), "--no-progress"],
    "report-read-only": lambda d, s: ["report", str(d)],
    "export-read-only": lambda d, s: ["export", str(d), "--csv"],
}


@pytest.mark.parametrize("case", list(WRITERS), ids=list(WRITERS))
def test_writing_into_read_only_folder_is_one_line(fake_store, world_dir, capsys, case):
    import scalinglab.cli.export_cmd
    import scalinglab.cli.report_cmd
    import scalinglab.cli.run_cmd
    import scalinglab.report.html
    import scalinglab.report.plots  # noqa: F401

    s = world_dir / "study.toml"
    s.write_text(study_text())
    s.chmod(0o644)
    if not case.startswith("run"):
        main(WRITERS[case](_copy(fake_store, world_dir / "warm"), s))  # lazy imports, as above
        capsys.readouterr()
    ro = _readonly_copy(fake_store, world_dir / "ro")
    before = _tree(ro)
    with as_unprivileged():
        rc = main(WRITERS[case](ro, s))
    one_line_error(capsys, rc)
    assert _tree(ro) == before


def test_export_csv_into_missing_folder(fake_store, cwd, capsys):
    run_bad(cwd, capsys, ["export", str(fake_store), "--csv", str(cwd / "no" / "such" / "t.csv")], "--csv")
    run_bad(cwd, capsys, ["export", str(fake_store), "--csv", str(cwd)], "--csv")


def _foreign(p: Path):
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    c.execute("INSERT INTO customers VALUES (1, 'x')")
    c.commit()
    c.close()


STORES = {
    "corrupt": lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000),
    "not-sqlite": lambda p: p.write_bytes(b"hello, world\n" * 100),
    "foreign": _foreign,
    "empty-file": lambda p: p.write_bytes(b""),
    "folder": lambda p: p.mkdir(),
}


@pytest.mark.parametrize("command", ["status", "export", "report", "diagnose", "plan", "run"])
@pytest.mark.parametrize("kind", list(STORES))
def test_corrupt_or_foreign_store(cwd, capsys, kind, command):
    d = cwd / "out"
    d.mkdir()
    f = d / "results.sqlite"
    STORES[kind](f)
    (cwd / "study.toml").write_text(study_text())
    before = _tree(d)
    argv = {
        "status": ["status", str(d)],
        "export": ["export", str(d), "--csv"],
        "report": ["report", str(d)],
        "diagnose": ["diagnose", str(d)],
        "plan": ["plan", str(d), "--target-error", "0.1"],
        "run": ["run", "study.toml", "--out", str(d), "--no-progress"],
    }[command]
    if kind == "empty-file" and command == "run":
        pytest.skip("an empty file is an empty database: run makes it a store (as for a new folder)")
    rc = main(argv)
    one_line_error(capsys, rc, "results.sqlite")
    assert _tree(d) == before
    if kind == "foreign":
        c = sqlite3.connect(f)
        assert [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["customers"]
        c.close()


def test_report_leaves_no_temporary_file(fake_store, tmp_path, capsys, monkeypatch):
    """A full disk while the report is written: one line, and neither a torn report nor its
    temporary file is left behind."""
    d = tmp_path / "copy"
    shutil.copytree(fake_store, d)
    (d / "report.html").unlink(missing_ok=True)
    real_write_bytes = Path.write_bytes

    def full_disk(self, data):
        real_write_bytes(self, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    rc = main(["report", str(d)])
    monkeypatch.undo()
    one_line_error(capsys, rc, "No space left")
    assert not list(d.rglob("*.tmp")) and not (d / "report.html").exists()


def test_markup_in_description_is_printed_as_is(cwd, capsys):
    """`[`/`]` in a description once crashed the console (passed to rich as markup)."""
    p = cwd / "study.toml"
    p.write_text(study_text(top='name = "m"\nseeds = 1\ndescription = "[/bold] [red] unbalanced [/]"'))
    assert main(["run", str(p), "--no-progress", "--out", "out[x]"]) == 0
    err = capsys.readouterr().err
    assert "[/bold] [red] unbalanced [/] -> out[x]/" in err and "Traceback" not in err


@pytest.fixture
def small_fs(tmp_path):
    """A 48 kB or 200 kB filesystem (tmpfs; needs root): a disk that fills up."""
    import subprocess

    mounted = []

    def make(size: str) -> Path:
        d = tmp_path / f"fs{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True)
        if r.returncode:
            pytest.skip("cannot mount a small tmpfs here")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        if subprocess.run(["umount", str(d)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)  # still busy: detach it


def test_full_disk_at_start_writes_nothing(cwd, capsys, small_fs):
    fs = small_fs("48k")
    p = cwd / "study.toml"
    p.write_text(study_text())
    rc = main(["run", str(p), "--no-progress", "--out", str(fs / "out")])
    one_line_error(capsys, rc, "full")
    assert list(fs.iterdir()) == []


def test_full_disk_mid_run_keeps_the_store_consistent(cwd, capsys, small_fs):
    fs = small_fs("200k")
    p = cwd / "study.toml"
    p.write_text(
        study_text(
            data=data(sizes="{ min = 16, max = 512 }"),
            top='name = "h"\nseeds = 3',
            model='family = "mlp"\nwidths = [8, 16]\ndepths = [1]',
            train="max_epochs = 30\npatience = 100",
        )
    )
    rc = main(["run", str(p), "--no-progress", "--out", str(fs / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("scalinglab: error: ") and "full" in err
    c = sqlite3.connect(f"file:{fs / 'out' / 'results.sqlite'}?mode=ro", uri=True)
    n, ids = c.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM trials").fetchone()
    assert n == ids and c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    c.close()


def test_end_of_run_line_gives_each_failure_reason_once(fake_store, capsys):
    """Item 8: "3 failed" says why, each distinct reason once with its count."""
    import json

    from rich.console import Console

    from scalinglab.cli.run_cmd import _print_summary

    s = json.loads((fake_store / "summary.json").read_text())
    assert s["trials"]["failure_reasons"] == {"RuntimeError: out of memory": s["trials"]["failed"]}
    _print_summary(Console(stderr=True), s, fake_store)
    err = capsys.readouterr().err
    assert f"{s['trials']['failed']} failed: RuntimeError: out of memory" in err
    assert err.count("out of memory") == 1


def test_failure_reasons_first_line_and_missing():
    import pandas as pd

    from scalinglab.analysis.summary import failure_reasons

    df = pd.DataFrame(
        {
            "status": ["failed", "failed", "ok", "failed", "failed"],
            "error": ["ValueError: x\n  File a.py", "ValueError: x\n  File b.py", None, None, "lost worker"],
        }
    )
    assert failure_reasons(df) == {"ValueError: x": 2, "(no reason recorded)": 1, "lost worker": 1}


# --- `scalinglab fit` on large and odd tables (item 7) ---------------------------------------------


def _rows_csv(path, ys_of_x, reps=50, seed=0):
    rng = np.random.default_rng(seed)
    xs = np.geomspace(100, 1e5, 8).round()
    x = np.repeat(xs, reps)
    y = ys_of_x(x) * np.exp(rng.normal(0, 0.03, x.size))
    path.write_text("n,err\n" + "\n".join(f"{a:.0f},{b:.6g}" for a, b in zip(x, y)))
    return path


def test_fit_aggregates_rows_per_x(cwd, capsys):
    p = _rows_csv(cwd / "many.csv", lambda x: 0.05 + 2 * x**-0.4, reps=2000)  # 16,000 rows
    assert main(["fit", str(p), "--x", "n", "--y", "err", "--form", "pow_c", "--n-boot", "200"]) == 0
    out, err = capsys.readouterr()
    assert "(8 points)" in out and "warning" not in err


@pytest.mark.parametrize(
    "shape,words",
    [
        ("flat", "is flat"),
        ("increasing", "increases with x"),
    ],
)
def test_fit_warns_on_flat_and_increasing_curves(cwd, capsys, shape, words):
    f = {"flat": lambda x: 0.2 + 0 * x, "increasing": lambda x: 0.01 * x**0.3}[shape]
    p = _rows_csv(cwd / f"{shape}.csv", f, reps=3)
    if shape == "flat":  # exactly flat rows: no noise
        xs = np.geomspace(100, 1e5, 8).round()
        p.write_text("n,err\n" + "\n".join(f"{x:.0f},0.2" for x in xs for _ in range(3)))
    main(["fit", str(p), "--x", "n", "--y", "err", "--form", "pow_c", "--n-boot", "20"])
    err = capsys.readouterr().err
    assert words in err and str(p) in err and "--y err" in err
