"""The image domain: the glyphs data set, the resnet family, top-5 error, image-smoke end to end."""

import json
import sqlite3

import numpy as np
import pytest
import torch

from scalinglab.data import glyphs
from scalinglab.errors import UserError

SMALL = {"n_train": 220, "n_dev": 110, "n_test": 55, "size": 16, "classes": glyphs.CLASSES, "seed": 3}


@pytest.fixture(scope="module")
def small():
    return glyphs.make_glyphs(**SMALL)


# --- data --------------------------------------------------------------------------------------------


def test_same_options_give_identical_arrays(small):
    again = glyphs.make_glyphs(**SMALL)  # generated afresh (the registry's caches are bypassed)
    for k in ("x_train", "y_train", "x_dev", "y_dev", "x_test", "y_test"):
        assert np.array_equal(getattr(small, k), getattr(again, k)), k
    other = glyphs.make_glyphs(**{**SMALL, "seed": 4})
    assert not np.array_equal(small.x_train, other.x_train)


def test_dev_is_unmoved_by_the_train_size(small):
    bigger = glyphs.make_glyphs(**{**SMALL, "n_train": 440})
    assert np.array_equal(small.x_dev, bigger.x_dev) and np.array_equal(small.y_dev, bigger.y_dev)


def test_dev_and_test_fonts_are_disjoint_from_training_fonts(small):
    m = small.meta
    assert m["train_fonts"] and m["dev_fonts"] and m["test_fonts"]
    assert not set(m["train_fonts"]) & set(m["dev_fonts"])
    assert not set(m["train_fonts"]) & set(m["test_fonts"])
    assert "by font file" in m["split"]
    train, held = glyphs.font_split(glyphs.CLASSES)
    assert sorted(train + held) == list(glyphs.fonts(glyphs.CLASSES))  # every usable font, each once


def test_images_in_range_and_classes_balanced(small):
    assert small.n_classes == len(glyphs.CLASSES) >= 40  # dozens of classes: top-5 error means something
    for x, y in ((small.x_train, small.y_train), (small.x_dev, small.y_dev), (small.x_test, small.y_test)):
        assert x.dtype == np.float32 and x.shape[1:] == (16, 16)
        assert x.min() >= 0.0 and x.max() <= 1.0 and 0.02 < x.mean() < 0.5  # ink on a dark ground
        counts = np.bincount(y, minlength=small.n_classes)
        assert counts.max() - counts.min() <= 1
    # an image is its glyph, not only noise: images of one class are more alike than of two classes
    x, y = small.x_dev.reshape(len(small.x_dev), -1), small.y_dev
    same = [np.corrcoef(x[y == c][0], x[y == c][1])[0, 1] for c in range(small.n_classes)]
    other = [np.corrcoef(x[y == c][0], x[y == (c + 1) % small.n_classes][0])[0, 1] for c in range(small.n_classes)]
    assert np.mean(same) > np.mean(other)


def test_bad_options_and_missing_fonts_are_one_line(monkeypatch, tmp_path):
    from scalinglab.data import pool_size

    with pytest.raises(UserError, match=r"size: given 4; allowed: 8\.\.128"):
        pool_size("glyphs", {"size": 4})
    with pytest.raises(UserError, match="classes: given 'aa'"):
        pool_size("glyphs", {"classes": "aa"})
    monkeypatch.setattr(glyphs, "FONT_GLOB", str(tmp_path / "**" / "*.ttf"))
    glyphs.fonts.cache_clear()
    try:
        with pytest.raises(UserError, match=r"no TrueType fonts found.*fonts-dejavu-core") as e:
            pool_size("glyphs", {})
        assert "\n" not in str(e.value)
    finally:
        glyphs.fonts.cache_clear()


# --- top-5 error --------------------------------------------------------------------------------------


def test_top5_error_against_a_hand_computation():
    from scalinglab.train.trial import evaluate, topk_wrong

    # 7 classes; the true class's rank among the logits: row 0 first, row 1 fifth, row 2 sixth, row 3 last
    logits = torch.tensor(
        [
            [9.0, 1, 2, 3, 4, 5, 6],  # y=0: rank 1 -> top-1 and top-5 right
            [0.0, 1, 2, 3, 4, 5, 6],  # y=2: rank 5 (6, 5, 4, 3, 2) -> top-1 wrong, top-5 right
            [0.0, 1, 2, 3, 4, 5, 6],  # y=1: rank 6 -> both wrong
            [0.0, 1, 2, 3, 4, 5, 6],  # y=0: rank 7 -> both wrong
        ]
    )
    y = torch.tensor([0, 2, 1, 0])
    assert topk_wrong(logits, y, 1) == 3 and topk_wrong(logits, y, 5) == 2
    assert topk_wrong(logits[:, :4], y, 5) == 0  # fewer classes than k: every row is right
    model = torch.nn.Identity()  # its "logits" are the inputs
    loss, err, err5 = evaluate(model, logits, y, top5=True)
    assert err == 3 / 4 and err5 == 2 / 4
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item())
    assert len(evaluate(model, logits, y)) == 2  # without top5: the old pair


# --- resnet -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width,depth,bn", [(4, 1, True), (8, 2, True), (6, 1, False)])
def test_resnet_parameters_and_flops(width, depth, bn):
    from torch.utils.flop_counter import FlopCounterMode

    from scalinglab.models import build, describe

    m = build("resnet", {"width": width, "depth": depth}, (32, 32), 55, batchnorm=bn)
    assert m.n_params() == sum(p.numel() for p in m.parameters())
    assert len([c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3)]) == 6 * depth + 1
    m.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        out = m(torch.zeros(2, 32, 32))
    assert out.shape == (2, 55)
    assert m.forward_flops() == fc.get_total_flops() // 2  # convs + read-out, per example
    d = describe("resnet", {"width": width, "depth": depth}, (32, 32), 55, batchnorm=bn)
    assert d["train_flops_per_example"] == 3 * d["forward_flops"]
    # plausibility: the first stage's convs alone cost 2 * 9 * width^2 * 32^2 each
    assert d["forward_flops"] > (2 * depth) * 2 * 9 * width**2 * 32 * 32
    wider = describe("resnet", {"width": 2 * width, "depth": depth}, (32, 32), 55, batchnorm=bn)
    assert 3.0 < wider["forward_flops"] / d["forward_flops"] < 4.2  # conv FLOPs grow as width^2


def test_resnet_trials_train_one_at_a_time():
    from scalinglab.train.packing import group_key

    spec = {"data": {"name": "glyphs"}, "model": {"family": "resnet", "size": {"width": 4, "depth": 1}}, "train": {}}
    assert group_key({**spec, "seed": 0}).startswith("single:")


# --- end to end ---------------------------------------------------------------------------------------


def test_image_smoke_end_to_end(tmp_path):
    import scalinglab

    scalinglab.run("image-smoke", out=tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["trials"]["ok"] == 4 and s["learning_curve"] is not None
    lc5 = s["learning_curve_top5"]
    assert lc5 is not None and lc5["exponent"] is not None and len(s["points_top5"]) == 4
    assert s["random_guess_error"] == pytest.approx(1 - 1 / len(glyphs.CLASSES))
    rows = sqlite3.connect(tmp_path / "results.sqlite").execute("SELECT result FROM trials").fetchall()
    for (r,) in rows:
        r = json.loads(r)
        assert 0 <= r["min_dev_top5_error"] <= r["min_dev_error"] <= 1
        assert all("dev_top5_error" in h for h in r["history"])
    # the top-5 points are the top-1 best-fit trials' top-5 errors (one seed: the value itself)
    by_size = {p["data_size"]: p for p in s["points_top5"]}
    assert [p["data_size"] for p in s["points"]] == sorted(by_size)
    assert all(p["error"] <= q["error"] for p, q in zip(s["points_top5"], s["points"]))


def test_run_output_names_the_top5_exponent(tmp_path):
    from rich.console import Console

    from scalinglab.cli.run_cmd import _print_summary

    lc = {"form": "pow_c", "exponent": -0.3, "exponent_ci": [-0.4, -0.2]}
    console = Console(record=True, width=200)
    s = {"trials": {"total": 4, "ok": 4}, "learning_curve": lc, "learning_curve_top5": {**lc, "exponent": -0.5}}
    _print_summary(console, s, tmp_path)
    text = console.export_text()
    assert "learning curve (pow_c): exponent -0.300 [-0.400, -0.200]" in text
    assert "learning curve of top-5 error (pow_c): exponent -0.500 [-0.400, -0.200]" in text
