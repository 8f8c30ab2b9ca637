"""Your own data: `data = { kind = "arrays", path = "data.npz" }`.

`path` is one of
- an `.npz` file with `x`, `y` and optionally `x_dev`, `y_dev`, `x_test`, `y_test`;
- a folder of `.npy` files with the same names (`x.npy`, `y.npy`, ...), or the path of its `x.npy`;
- a `.csv` file: one row per example, the label in the column `label_column`, numeric features in the
  others;
- a folder of images, one subfolder per class (read with Pillow, resized to `image_size` squared,
  RGB, or one channel with `grayscale = true`; values in [0, 1], shape (C, H, W)).
Without dev/test arrays, dev and test are split off the examples, class-stratified, with a fixed seed
(`dev_fraction`, `test_fraction`); the rest is the train pool the nested subsets are cut from.

Labels may be any integers or strings: they are mapped to 0..K-1 in sorted order (meta["classes"]
keeps the originals). Only plain formats are read: `.npz`/`.npy` with `allow_pickle=False`, so an object
array is refused, never unpickled. Every problem is one `UserError` line naming the file and the field.
Relative paths are resolved against the study file's folder when the study is loaded (config.py).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from scalinglab.data.registry import Dataset, register
from scalinglab.data.subsets import stratified_order
from scalinglab.errors import UserError

DEFAULTS = {
    "path": None,
    "label_column": None,
    "image_size": 32,
    "grayscale": False,
    "dev_fraction": 0.15,
    "test_fraction": 0.15,
}
SPLIT_SEED = 20240917  # the fixed seed of the dev/test split (not the study's split_seed of the subsets)
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
PARTS = ("x", "y", "x_dev", "y_dev", "x_test", "y_test")


# --- locating the file --------------------------------------------------------------------------


def _path(path) -> Path:
    if path is None or str(path) == "":
        raise UserError(
            "data.path: missing; give the path of an .npz, a .csv, a folder of .npy files "
            "or an image folder (one subfolder per class)"
        )
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise UserError(f"data.path: given {str(path)!r}; no such file or folder")
    return p


def kind_of(p: Path) -> str:
    """ "npz", "npy" (a folder holding x.npy, or x.npy itself), "csv" or "images"."""
    if p.is_dir():
        return "npy" if (p / "x.npy").exists() else "images"
    suffix = p.suffix.lower()
    if suffix in (".npz", ".csv"):
        return suffix[1:]
    if suffix == ".npy":
        return "npy"
    raise UserError(
        f"{p}: data.path: given a {suffix or 'suffix-less'} file; allowed: .npz, .npy, .csv, "
        f"or a folder (of .npy files, or of images in one subfolder per class)"
    )


def fingerprint(path, **_) -> str:
    """Size and mtime of the file (every file of a folder): part of the data cache key."""
    p = Path(str(path))
    if not p.exists():
        return "missing"
    if p.is_file():
        st = p.stat()
        return f"{st.st_size}-{st.st_mtime_ns}"
    h = hashlib.sha256()
    for root, dirs, files in os.walk(p):
        dirs.sort()
        for f in sorted(files):
            st = os.stat(os.path.join(root, f))
            h.update(f"{os.path.relpath(os.path.join(root, f), p)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


# --- reading ------------------------------------------------------------------------------------


def _npy(load, where, field: str) -> np.ndarray:
    """Call `load()` (np.load of a .npy, or an .npz member); an object array or a broken file becomes
    one line naming the file and the array."""
    try:
        return load()
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise UserError(
                f"{where}: {field}: holds Python objects (an object array); allowed: numeric "
                f"or string arrays (saved without pickle)"
            ) from None
        raise UserError(f"{where}: {field}: not a readable array ({e})") from None


def _read_npz(p: Path) -> dict:
    try:
        z = np.load(p, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise UserError(f"{p}: not a readable .npz file ({type(e).__name__}: {e})") from None
    with z:
        unknown = sorted(set(z.files) - set(PARTS))
        if unknown:
            raise UserError(f"{p}: {unknown[0]}: unknown array; allowed: {', '.join(PARTS)}")
        return {k: _npy(lambda k=k: z[k], p, k) for k in z.files}


def _read_npy(p: Path) -> dict:
    folder = p if p.is_dir() else p.parent
    out = {
        k: _npy(lambda f=folder / f"{k}.npy": np.load(f, allow_pickle=False), folder / f"{k}.npy", k)
        for k in PARTS
        if (folder / f"{k}.npy").exists()
    }
    if "y" not in out:
        raise UserError(f"{folder / 'y.npy'}: y: missing; a folder of .npy files needs x.npy and y.npy")
    return out


def _read_csv(p: Path, label_column) -> dict:
    import pandas as pd

    try:
        df = pd.read_csv(p)
    except Exception as e:  # pandas raises many types for a malformed file
        raise UserError(f"{p}: not a readable CSV file ({type(e).__name__}: {e})") from None
    cols = [str(c) for c in df.columns]
    if label_column is None:
        raise UserError(
            f"{p}: data.label_column: missing; a CSV needs the name of its label column; "
            f"columns: {', '.join(cols[:20])}"
        )
    if str(label_column) not in cols:
        raise UserError(
            f"{p}: data.label_column: given {label_column!r}; allowed: one of the columns {', '.join(cols[:20])}"
        )
    df.columns = cols
    feats = [c for c in cols if c != str(label_column)]
    if not feats:
        raise UserError(f"{p}: columns: only the label column {label_column!r}; allowed: at least one feature")
    y = df[str(label_column)]
    if y.isna().any():
        raise UserError(f"{p}: {label_column}: empty label in data row {int(np.flatnonzero(y.isna())[0]) + 1}")
    for c in feats:
        num = pd.to_numeric(df[c], errors="coerce")
        bad = num.isna() & df[c].notna()
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise UserError(f"{p}: {c}: given {df[c].iloc[r]!r} in data row {r + 1}; allowed: numbers")
        df[c] = num
    y = y.to_numpy()
    return {"x": df[feats].to_numpy(dtype=np.float64), "y": y.astype(str) if y.dtype == object else y}


def _read_images(p: Path, image_size, grayscale) -> dict:
    from PIL import Image, UnidentifiedImageError

    if not isinstance(image_size, int) or image_size < 1:
        raise UserError(f"{p}: data.image_size: given {image_size!r}; allowed: a positive integer (pixels)")
    classes = sorted(d.name for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise UserError(
            f"{p}: data.path: an image folder needs one subfolder per class (at least 2); found {len(classes)}"
        )
    xs, ys = [], []
    for k, c in enumerate(classes):
        files = sorted(f for f in (p / c).iterdir() if f.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise UserError(f"{p / c}: class {c!r}: no image files ({', '.join(sorted(IMAGE_EXTS))})")
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if grayscale else "RGB").resize(
                        (image_size, image_size), Image.Resampling.BILINEAR
                    )
                    a = np.asarray(im, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as e:
                raise UserError(f"{f}: not a readable image ({type(e).__name__}: {e})") from None
            xs.append(a[None] if grayscale else a.transpose(2, 0, 1))  # (C, H, W)
            ys.append(k)
    return {"x": np.stack(xs), "y": np.array(classes)[ys]}


# --- validating ---------------------------------------------------------------------------------


def _check_x(x, where: str, field: str, shape=None) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise UserError(f"{where}: {field}: dtype {x.dtype}; allowed: numbers (bool, int or float)")
    if x.ndim < 2:
        raise UserError(f"{where}: {field}: shape {x.shape}; allowed: (examples, features...), at least 2-D")
    if shape is not None and x.shape[1:] != shape:
        raise UserError(f"{where}: {field}: shape {x.shape}; allowed: (n,) + {shape}, the shape of x's examples")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise UserError(
            f"{where}: {field}: NaN or inf in example {int(np.flatnonzero(bad)[0])}; allowed: finite numbers"
        )
    return x


def _check_y(y, n: int, where: str, field: str) -> np.ndarray:
    if y.ndim != 1:
        raise UserError(f"{where}: {field}: shape {y.shape}; allowed: (n,), one class label per example")
    if len(y) != n:
        raise UserError(f"{where}: {field}: {len(y)} labels for {n} examples; allowed: one label per example")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            i = int(np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))[0])
            raise UserError(
                f"{where}: {field}: label {y[i].item()!r} at example {i}; allowed: class labels (integers or strings)"
            )
        y = y.astype(np.int64)
    elif y.dtype.kind not in "biuUS":
        raise UserError(f"{where}: {field}: dtype {y.dtype}; allowed: integer or string class labels")
    return y


def _split(x, y, dev_fraction, test_fraction, where):
    for name, f in (("dev_fraction", dev_fraction), ("test_fraction", test_fraction)):
        if not 0 < f < 1:
            raise UserError(f"{where}: data.{name}: given {f!r}; allowed: a fraction in (0, 1)")
    n_dev, n_test = max(1, round(dev_fraction * len(y))), max(1, round(test_fraction * len(y)))
    if n_dev + n_test >= len(y):
        raise UserError(
            f"{where}: x: {len(y)} examples; too few to split off dev ({n_dev}) and test "
            f"({n_test}) and keep a train pool"
        )
    order = stratified_order(y, SPLIT_SEED)  # every prefix class-stratified: so are dev and test
    d, t, r = order[:n_dev], order[n_dev : n_dev + n_test], np.sort(order[n_dev + n_test :])
    return x[r], y[r], x[d], y[d], x[t], y[t]


def read(path, label_column=None, image_size=32, grayscale=False, dev_fraction=0.15, test_fraction=0.15) -> Dataset:
    """Read and validate the user's data (see the module docstring)."""
    p = _path(path)
    kind = kind_of(p)
    where = str(p)
    if kind == "npz":
        a = _read_npz(p)
    elif kind == "npy":
        a = _read_npy(p)
    elif kind == "csv":
        a = _read_csv(p, label_column)
    else:
        a = _read_images(p, image_size, grayscale)
    for k in ("x", "y"):
        if k not in a:
            raise UserError(f"{where}: {k}: missing; allowed arrays: {', '.join(PARTS)} (x and y required)")
    for a_, b_ in (("x_dev", "y_dev"), ("x_test", "y_test")):
        if (a_ in a) != (b_ in a):
            raise UserError(f"{where}: {a_ if a_ not in a else b_}: missing; give {a_} and {b_} together")
    if ("x_dev" in a) != ("x_test" in a):
        raise UserError(
            f"{where}: {'x_test' if 'x_dev' in a else 'x_dev'}: missing; give both dev and test "
            f"arrays, or neither (then both are split off x, y)"
        )
    x = _check_x(a["x"], where, "x")
    if len(x) == 0:
        raise UserError(f"{where}: x: no examples")
    y = _check_y(a["y"], len(x), where, "y")
    if "x_dev" in a:
        parts = [x, y]
        for s in ("dev", "test"):
            xs = _check_x(a[f"x_{s}"], where, f"x_{s}", x.shape[1:])
            parts += [xs, _check_y(a[f"y_{s}"], len(xs), where, f"y_{s}")]
            if len(xs) == 0:
                raise UserError(f"{where}: x_{s}: no examples")
    else:
        parts = list(_split(x, y, dev_fraction, test_fraction, where))
    classes = np.unique(parts[1])  # the train pool's labels define the classes
    if len(classes) < 2:
        raise UserError(f"{where}: y: a single class ({classes[0]!r}); allowed: at least 2 classes")
    mapped = []
    for field, lab in zip(("y", "y_dev", "y_test"), parts[1::2]):
        if lab.dtype.kind != classes.dtype.kind and not {lab.dtype.kind, classes.dtype.kind} <= set("biu"):
            raise UserError(
                f"{where}: {field}: labels of dtype {lab.dtype}; allowed: the kind of y's ({classes.dtype})"
            )
        idx = np.searchsorted(classes, lab).clip(0, len(classes) - 1)
        unseen = classes[idx] != lab
        if unseen.any():
            raise UserError(
                f"{where}: {field}: label {lab[unseen][0].item()!r} does not occur in the train pool; "
                f"allowed: {', '.join(map(str, classes[:20]))}"
            )
        mapped.append(idx.astype(np.int64))
    return Dataset(
        parts[0],
        mapped[0],
        parts[2],
        mapped[1],
        parts[4],
        mapped[2],
        n_classes=len(classes),
        meta={"source": str(p), "format": kind, "classes": [c.item() for c in classes]},
    )


def _pool_size(path, **options) -> int:
    # The full read runs here, once, so every problem of the data is reported before anything is
    # written; the result is memoised and cached on disk (keyed by the file's size and mtime).
    from scalinglab.data.registry import load

    return len(load("arrays", {"path": path, **options}).y_train)


register(
    "arrays",
    defaults=DEFAULTS,
    pool_size=_pool_size,
    fingerprint=fingerprint,
    doc="your own data: .npz, .npy folder, .csv (label_column) or an image folder (one subfolder per class)",
)(read)
