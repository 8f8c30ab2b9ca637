"""Your own data and model: every loader's bad inputs (one line each), the study syntax, factories,
the Python API, and the language-model domain (bits/char metric, transformer size)."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from scalinglab.config import load_study
from scalinglab.data import arrays, load
from scalinglab.errors import UserError


@pytest.fixture(autouse=True)
def one_thread():
    # a shared 2-core machine: 2 spinning torch threads per process make tiny models much slower
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _xy(n=300, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, size=n)


def _err(path, **opts) -> str:
    with pytest.raises(UserError) as e:
        arrays.read(str(path), **opts)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# --- .npz ---------------------------------------------------------------------------------------


def test_npz_reads_and_splits_stratified(tmp_path):
    x, y = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y + 5)  # labels 5..7 are mapped to 0..2
    ds = arrays.read(tmp_path / "d.npz")
    assert len(ds.x_train) + len(ds.x_dev) + len(ds.x_test) == 300 and ds.n_classes == 3
    assert ds.meta["classes"] == [5, 6, 7] and set(ds.y_train) == {0, 1, 2}
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert len(ds.x_dev) == len(ds.x_test) == 45


def test_npz_given_dev_test_and_string_labels(tmp_path):
    x, y = _xy()
    lab = np.array(["cat", "dog", "emu"])
    np.savez(
        tmp_path / "d.npz",
        x=x[:200],
        y=lab[y[:200]],
        x_dev=x[200:250],
        y_dev=lab[y[200:250]],
        x_test=x[250:],
        y_test=lab[y[250:]],
    )
    ds = arrays.read(tmp_path / "d.npz")
    assert len(ds.x_train) == 200 and len(ds.x_dev) == 50 and ds.meta["classes"] == ["cat", "dog", "emu"]


@pytest.mark.parametrize(
    "arrays_, needle",
    [
        (lambda x, y: {"x": np.where(np.arange(300)[:, None] == 7, np.nan, x), "y": y}, "x: NaN or inf in example 7"),
        (lambda x, y: {"x": x, "y": np.array([object()] * 300, dtype=object)}, "y: holds Python objects"),
        (lambda x, y: {"x": x, "y": y[:, None]}, "y: shape (300, 1)"),
        (lambda x, y: {"x": x, "y": y[:299]}, "y: 299 labels for 300 examples"),
        (lambda x, y: {"x": x, "y": y + 0.5}, "at example 0; allowed: class labels"),
        (lambda x, y: {"x": x[:, 0], "y": y}, "x: shape (300,)"),
        (lambda x, y: {"x": x.astype(str), "y": y}, "x: dtype <U"),
        (lambda x, y: {"y": y}, "x: missing"),
        (lambda x, y: {"x": x, "y": y, "z": y}, "z: unknown array"),
        (lambda x, y: {"x": x, "y": np.zeros(300, int)}, "y: a single class"),
        (
            lambda x, y: {"x": x, "y": y, "x_dev": x[:5, :2], "y_dev": y[:5], "x_test": x[:5], "y_test": y[:5]},
            "x_dev: shape (5, 2)",
        ),
        (lambda x, y: {"x": x, "y": y, "x_dev": x[:5], "y_dev": y[:5]}, "x_test: missing"),
        (
            lambda x, y: {
                "x": x,
                "y": np.where(np.arange(300) < 250, y, 0),
                "x_dev": x[:5],
                "y_dev": y[:5] * 0 + 9,
                "x_test": x[:5],
                "y_test": y[:5],
            },
            "y_dev: label 9 does not occur in the train pool",
        ),
    ],
)
def test_npz_bad_inputs(tmp_path, arrays_, needle):
    x, y = _xy()
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays_(x, y))
    msg = _err(p)
    assert str(p) in msg and needle in msg, msg


def test_not_an_npz_and_missing_path(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert "not a readable .npz" in _err(tmp_path / "junk.npz")
    assert "no such file" in _err(tmp_path / "nope.npz")
    (tmp_path / "d.txt").write_text("1")
    assert "allowed: .npz, .npy, .csv" in _err(tmp_path / "d.txt")


def test_too_few_examples_to_split(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3), np.float32), y=np.array([0, 1]))
    assert "too few to split" in _err(tmp_path / "d.npz")


# --- .npy folder, CSV, images -------------------------------------------------------------------


def test_npy_folder(tmp_path):
    x, y = _xy()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    assert arrays.read(tmp_path).n_classes == 3
    assert arrays.read(tmp_path / "x.npy").n_classes == 3
    (tmp_path / "y.npy").unlink()
    assert "y: missing" in _err(tmp_path)


def test_npy_object_array_is_never_unpickled(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.arange(10) % 2)
    assert "x: holds Python objects" in _err(tmp_path)


def test_csv(tmp_path):
    p = tmp_path / "d.csv"
    rows = ["f1,f2,label"] + [f"{i * 0.1},{(i % 7) - 3},{'ab'[i % 2]}" for i in range(100)]
    p.write_text("\n".join(rows))
    ds = arrays.read(p, label_column="label")
    assert ds.input_shape == (2,) and ds.meta["classes"] == ["a", "b"]
    assert "label_column: missing" in _err(p) and "f1, f2, label" in _err(p)
    assert "label_column: given 'lbl'" in _err(p, label_column="lbl")
    p.write_text("\n".join(rows[:5] + ["0.5,oops,a"] + rows[5:]))
    msg = _err(p, label_column="label")
    assert "f2: given 'oops' in data row 5" in msg, msg


def _png(path, value, size=(6, 5)):
    from PIL import Image

    Image.new("RGB", size, (value, 0, 255 - value)).save(path)


def test_image_folder(tmp_path):
    for c, v in (("cats", 10), ("dogs", 200)):
        (tmp_path / c).mkdir()
        for i in range(12):
            _png(tmp_path / c / f"{i}.png", v + i)
    ds = arrays.read(tmp_path, image_size=8)
    assert ds.input_shape == (3, 8, 8) and ds.n_classes == 2 and ds.meta["classes"] == ["cats", "dogs"]
    assert 0 <= ds.x_train.min() and ds.x_train.max() <= 1
    assert arrays.read(tmp_path, image_size=4, grayscale=True).input_shape == (1, 4, 4)
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG garbage")
    assert "broken.png: not a readable image" in _err(tmp_path, image_size=8)
    assert "image_size: given 0" in _err(tmp_path, image_size=0)
    (tmp_path / "dogs" / "broken.png").unlink()
    (tmp_path / "emus").mkdir()
    assert "class 'emus': no image files" in _err(tmp_path)


# --- study syntax, cache, the CLI -----------------------------------------------------------------

STUDY = """
name = "own"
seeds = 1
[data]
kind = "arrays"
path = "{path}"
sizes = {{ min = 16, max = {max} }}
[model]
family = "mlp"
widths = [4]
depths = [1]
[train]
max_epochs = 2
"""


def test_study_kind_alias_relative_path_and_cache_invalidation(tmp_path):
    x, y = _xy()
    (tmp_path / "sub").mkdir()
    np.savez(tmp_path / "sub" / "d.npz", x=x, y=y)
    st = tmp_path / "sub" / "study.toml"
    st.write_text(STUDY.format(path="d.npz", max=64))
    study, _ = load_study(str(st))  # relative to the study file's folder, not the cwd
    assert study.data.name == "arrays" and study.data.options["path"] == str(tmp_path / "sub" / "d.npz")
    n0 = len(load("arrays", study.data.options).y_train)
    np.savez(tmp_path / "sub" / "d.npz", x=x[:200], y=y[:200])  # an edited file is re-read (size/mtime key)
    os.utime(tmp_path / "sub" / "d.npz", ns=(1, 1))
    assert len(load("arrays", study.data.options).y_train) < n0


def test_cli_pool_too_small_and_bad_data_exit_2(tmp_path):
    x, y = _xy()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    st = tmp_path / "s.toml"
    st.write_text(STUDY.format(path="d.npz", max=5000))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "scalinglab.cli.main", "run", str(st), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "data.sizes" in r.stderr and "train pool of 'arrays', 210 examples" in r.stderr.replace("\n", " ")
    assert not (tmp_path / "out").exists()  # nothing written
    np.savez(tmp_path / "d.npz", x=np.where(np.arange(300)[:, None] == 3, np.inf, x), y=y)
    st.write_text(STUDY.format(path="d.npz", max=64))
    r = subprocess.run(
        [sys.executable, "-m", "scalinglab.cli.main", "run", str(st), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and "x: NaN or inf in example 3" in r.stderr.replace("\n", " ")
    assert not (tmp_path / "out").exists()


# --- factories ----------------------------------------------------------------------------------

FACTORY_STUDY = """
name = "fac"
seeds = 1
[data]
name = "teacher"
options = {{ n_train = 400, n_dev = 100, n_test = 100, dim = 6 }}
sizes = {{ list = [32, 64] }}
[model]
factory = "{factory}"
sizes = [{{ width = 8 }}]
[train]
max_epochs = 2
"""


@pytest.mark.parametrize(
    "factory, needle",
    [
        ("no_colon", "allowed: 'module:function'"),
        ("facmod_missing:make", "importing 'facmod_missing' failed (ModuleNotFoundError"),
        ("facmod:nope", "module 'facmod' has no attribute 'nope'"),
        ("facmod:CONST", "'CONST' is a int, not callable"),
        ("facmod_broken:make", "importing 'facmod_broken' failed (ZeroDivisionError"),
    ],
)
def test_bad_factories_are_one_line_config_errors(tmp_path, factory, needle):
    (tmp_path / "facmod.py").write_text("CONST = 3\ndef make(size, shape, n):\n    pass\n")
    (tmp_path / "facmod_broken.py").write_text("1 / 0\n")
    st = tmp_path / "s.toml"
    st.write_text(FACTORY_STUDY.format(factory=factory))
    with pytest.raises(UserError) as e:
        load_study(str(st))
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_factory_params_and_flops_are_measured(tmp_path):
    (tmp_path / "facmod2.py").write_text(
        textwrap.dedent("""
        from torch import nn
        def make(size, input_shape, n_out):
            return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], size["width"]), nn.ReLU(),
                                 nn.Linear(size["width"], n_out))
    """)
    )
    st = tmp_path / "s.toml"
    st.write_text(FACTORY_STUDY.format(factory="facmod2:make"))
    study, _ = load_study(str(st))
    assert study.model.family == "factory" and study.model.sys_path == (str(tmp_path),)
    from scalinglab.models import describe_spec
    from scalinglab.search.grid import base_spec

    spec = base_spec(study, 32, {"width": 8}, 0)
    assert spec["model"]["factory"] == "facmod2:make"
    d = describe_spec(spec["model"], (6,), 4)
    assert d["params"] == 6 * 8 + 8 + 8 * 4 + 4 and d["forward_flops"] == 2 * (6 * 8 + 8 * 4)
    from scalinglab.train.trial import run_trial

    r = run_trial(spec)
    assert r["status"] == "ok" and r["params"] == d["params"]


# --- the Python API -------------------------------------------------------------------------------


def test_api_with_arrays_and_a_closure_model(tmp_path):
    import scalinglab

    hidden = 8

    def make(size, input_shape, n_out):  # a closure: not importable by name, runs in-process only
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(input_shape), size["width"] * hidden // 8),
            nn.ReLU(),
            nn.Linear(size["width"], n_out),
        )

    x, y = _xy(400, 5, 2)
    study = scalinglab.Study(
        data=(x, y), model=make, sizes=[16, 32, 64, 128], widths=[4, 8], seeds=1, max_epochs=3, lr=0.01
    )
    with pytest.raises(UserError, match="workers"):
        study.run(tmp_path / "never", workers=2)
    res = study.run(tmp_path / "out")
    assert len(res.results) == 8 and set(res.results["status"]) == {"ok"}
    assert res.learning_curve is not None and "exponent" in res.learning_curve
    assert res.model_size_law is not None and res.summary["trials"]["total"] == 8
    with pytest.raises(UserError, match="train pool"):
        scalinglab.Study(data=(x, y), model=make, sizes=[16, 5000], widths=[4])


def test_api_equals_cli_on_the_same_study(tmp_path):
    import scalinglab
    from scalinglab.runner import run_study

    x, y = _xy(300, 4, 3)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    st = tmp_path / "s.toml"
    st.write_text(STUDY.format(path="d.npz", max=128).replace('name = "own"', 'name = "same"'))
    study, _ = load_study(str(st))
    run_study(study, tmp_path / "cli", log=lambda m: None)
    res = scalinglab.Study(
        data=str(tmp_path / "d.npz"),
        model="mlp",
        widths=[4],
        depths=[1],
        sizes={"min": 16, "max": 128},
        seeds=1,
        name="same",
        max_epochs=2,
    ).run(tmp_path / "api")
    cli = scalinglab.load_results(tmp_path / "cli").sort_values("id")
    api = res.results.sort_values("id")
    assert list(cli["id"]) == list(api["id"]) and np.allclose(cli["min_dev_error"], api["min_dev_error"])


# --- language modelling ---------------------------------------------------------------------------


def test_charlm_data_and_bits_metric():
    from scalinglab.data import charlm
    from scalinglab.train.trial import run_trial

    ds = load("charlm", {"context": 16, "n_train": 64, "n_dev": 16, "n_test": 16})
    assert ds.x_train.shape == (64, 16) and ds.y_train.shape == (64, 16) and ds.metric == "bits"
    assert (ds.x_train[:, 1:] == ds.y_train[:, :-1]).all()  # y is x shifted by one character
    assert math.isclose(ds.random_guess_error, math.log2(97)) and ds.n_classes == charlm.V == 97
    assert charlm.decode(charlm.encode("def f():\n\té")) == "def f():\n\ufffd\ufffd"
    spec = {
        "data": {
            "name": "charlm",
            "options": {"context": 16, "n_train": 64, "n_dev": 16, "n_test": 16},
            "split_seed": 0,
        },
        "data_size": 64,
        "model": {"family": "transformer", "size": {"width": 16, "depth": 1}, "batchnorm": False},
        "train": {
            "optimizer": "adam",
            "lr": 1e-2,
            "weight_decay": 0.0,
            "momentum": 0.9,
            "batch_size": 32,
            "max_epochs": 3,
            "min_steps_per_epoch": 5,
            "patience": 3,
        },
        "seed": 0,
    }
    r = run_trial(spec)
    assert r["status"] == "ok", r["error"]
    h = r["history"]
    assert all(math.isclose(e["dev_error"], e["dev_loss"] / math.log(2)) for e in h)  # bits = nats / ln 2
    assert 1 < r["min_dev_error"] < math.log2(97) and 1 < r["test_error"] < 8
    from scalinglab.train.packing import group_key

    assert group_key(spec).startswith("single:")  # never batched: run_trial computes the bits


@pytest.mark.parametrize("width, depth, T", [(16, 1, 8), (64, 2, 32), (96, 3, 16)])
def test_transformer_params_and_flops(width, depth, T):
    from torch.utils.flop_counter import FlopCounterMode

    from scalinglab.models import build

    m = build("transformer", {"width": width, "depth": depth}, (T,), 97)
    assert m.n_params() == sum(p.numel() for p in m.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        out = m(torch.zeros(2, T, dtype=torch.long))
    assert out.shape == (2, 97, T)
    attention = 2 * T * depth * 2 * T * width  # QK^T and AV (FlopCounterMode does not count SDPA on CPU)
    measured = fc.get_total_flops() / 2
    assert m.forward_flops() - attention == measured or m.forward_flops() == measured
