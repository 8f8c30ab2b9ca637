"""The translation domain (issue 15): num2words pairs, numbers disjoint between train and dev/test,
determinism, the seq2seq family's sizes and FLOPs, padding left out of the metric, the smoke preset."""

import json
import math
import sqlite3

import numpy as np
import pytest
import torch

pytest.importorskip("num2words", reason="the translation data set needs the Python package num2words")

from scalinglab.data import load, pool_size, translation
from scalinglab.errors import UserError

SMALL = {"n_train": 300, "n_dev": 50, "n_test": 50, "max_number": 5000, "seed": 1}


def _sources(ds, x):
    """The source sentences of x as strings (one per number: num2words is one-to-one)."""
    v = ds.meta["vocab"]
    return {" ".join(v[i] for i in row if i > translation.EOS) for row in x[:, 0]}


def test_tokens_and_arrays():
    assert translation.tokens(71, "fr") == ["soixante", "et", "onze"]
    assert translation.tokens(1234, "en") == ["one", "thousand", "two", "hundred", "and", "thirty", "-", "four"]
    ds = load("translation", SMALL)
    L = ds.x_train.shape[2]
    assert ds.x_train.shape == (300, 2, L) and ds.y_train.shape == (300, L) and ds.metric == "bits"
    valid = ds.y_train != translation.IGNORE
    # the decoder's input is <bos> + the target, y the target + <eos>: y is x[:, 1] shifted by one
    assert (ds.x_train[:, 1, 0] == translation.BOS).all()
    words = valid[:, :-1] & (ds.y_train[:, :-1] != translation.EOS)
    assert (ds.x_train[:, 1, 1:][words] == ds.y_train[:, :-1][words]).all()
    assert (ds.y_train[np.arange(300), valid.sum(1) - 1] == translation.EOS).all()
    assert (ds.x_train[:, 0, -1] == translation.EOS).all()  # the source is left-padded
    assert 0 < ds.random_guess_error < math.log2(ds.n_classes)


def test_dev_and_test_numbers_never_in_training():
    parts = translation.draw_numbers(2000, 300, 300, 10_000, seed=0)
    tr, dv, te = (set(parts[k].tolist()) for k in ("train", "dev", "test"))
    assert len(tr) == 2000 and len(dv) == len(te) == 300  # distinct numbers
    assert not (tr & dv or tr & te or dv & te)
    ds = load("translation", SMALL)
    train, dev, test = _sources(ds, ds.x_train), _sources(ds, ds.x_dev), _sources(ds, ds.x_test)
    assert len(train) == 300 and len(dev) == 50 and not (train & dev or train & test)


def test_generation_is_deterministic():
    a, b = (
        translation.make_translation(src="en", tgt="fr", **SMALL),
        translation.make_translation(src="en", tgt="fr", **SMALL),
    )
    for k in ("x_train", "y_train", "x_dev", "y_dev", "x_test", "y_test"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
    assert a.meta["vocab"] == b.meta["vocab"]
    c = translation.make_translation(src="en", tgt="fr", **{**SMALL, "seed": 2})
    assert not np.array_equal(a.y_dev, c.y_dev)
    de = translation.make_translation(src="en", tgt="de", **SMALL)
    assert "tausend" in " ".join(de.meta["vocab"])


def test_options_refused_by_name():
    with pytest.raises(UserError, match="max_number"):
        pool_size("translation", {"n_train": 5000, "max_number": 1000})
    with pytest.raises(UserError, match="xx"):
        pool_size("translation", {"tgt": "xx"})


@pytest.mark.parametrize("width, depth, L", [(16, 1, 8), (32, 2, 20), (48, 3, 12)])
def test_params_and_flops(width, depth, L):
    from torch.utils.flop_counter import FlopCounterMode

    from scalinglab.models import build

    m = build("seq2seq", {"width": width, "depth": depth}, (2, L), 40)
    assert m.n_params() == sum(p.numel() for p in m.parameters())
    x = torch.ones(2, 2, L, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        out = m(x)
    assert out.shape == (2, 40, L)
    assert m.forward_flops() == fc.get_total_flops() / 2  # GRUs, attention, W_c and read-out products
    assert m.greedy(x[:, 0], 5).shape == (2, 5)


def test_evaluate_leaves_padding_out():
    """Uniform logits score ln V per real token however much padding the targets carry."""
    from scalinglab.train.trial import evaluate

    class Uniform(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(len(x), 10, 6)

    y = torch.full((4, 6), translation.IGNORE)
    y[:, :2] = 3
    loss, bits = evaluate(Uniform(), torch.zeros(4, 2, 6), y, bits=True)
    assert math.isclose(loss, math.log(10), rel_tol=1e-6) and math.isclose(bits, math.log2(10), rel_tol=1e-6)
    _, err = evaluate(Uniform(), torch.zeros(4, 2, 6), y)
    assert err == 1.0  # argmax 0 != 3 on the 8 real tokens; the 16 padding positions not counted


def test_smoke_preset_end_to_end(tmp_path):
    import scalinglab
    from scalinglab.config import load_study
    from scalinglab.train.packing import group_key

    study, _ = load_study("translation")
    assert study.sizes()[-1] / study.sizes()[0] >= 100  # the full preset spans >= 2 decades of data
    scalinglab.run("translation-smoke", out=tmp_path / "out")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["trials"] == {"total": 3, "ok": 3} and s["metric_info"]["name"] == "bits per token"
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        results = [json.loads(r) for (r,) in db.execute("SELECT result FROM trials")]
    assert len(results) == 3
    for res in results:  # greedy decoding's accuracy is stored beside the cross-entropy
        assert 0 <= res["dev_seq_accuracy"] <= res["dev_token_accuracy"] <= 1 and "test_seq_accuracy" in res
        assert res["min_dev_error"] < s["metric_info"]["random_guess"] + 1
    spec = {"data": {"name": "translation"}, "model": {"family": "seq2seq", "size": {"width": 8}}, "train": {}}
    assert group_key(spec).startswith("single:")
