"""The speech domain (issue 15): espeak-ng audio, the voice-disjoint split, determinism, cnn2d/crnn
sizes and FLOPs, the smoke preset end to end."""

import math
import shutil

import numpy as np
import pytest
import torch

from scalinglab.data import speech
from scalinglab.errors import UserError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="the Debian package espeak-ng is not installed (scripts/setup.sh installs it)",
)
SMALL = {**speech.DEFAULTS, "n_train": 40, "n_dev": 12, "n_test": 12, "per_voice": 5, "max_voices": 10, "seed": 3}


@needs_espeak
def test_split_is_voice_disjoint():
    parts = speech.split_voices(speech.all_variants())
    train, dev, test = (set(parts[k]) for k in ("train", "dev", "test"))
    assert not (train & dev or train & test or dev & test)
    assert train | dev | test == set(speech.all_variants()) and len(dev) >= 5 and len(test) >= 5
    ds = speech.make_speech(**SMALL)
    assert {k: set(v) for k, v in ds.meta["voices"].items()} == {
        k: set(v) for k, v in speech.split_voices(speech.all_variants(), 10).items()
    }
    assert not set(ds.meta["voices"]["train"]) & set(ds.meta["voices"]["dev"])


@needs_espeak
def test_data_is_deterministic_and_shaped(tmp_path, monkeypatch):
    voices = list(speech.all_variants()[:2])
    pools = []
    for i in range(2):  # generated twice from scratch, in two empty caches
        monkeypatch.setenv("SCALINGLAB_CACHE", str(tmp_path / str(i)))
        pools.append(speech.utterance_pool(voices, 3, seed=1))
    for k in ("audio", "offsets", "word", "voice"):
        assert np.array_equal(pools[0][k], pools[1][k]), k
    assert len(pools[0]["word"]) == 6 and (np.diff(pools[0]["offsets"]) > 0.1 * speech.RATE).all()
    a, b = speech.make_speech(**SMALL), speech.make_speech(**SMALL)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_dev, b.y_dev)
    assert a.x_train.shape == (40, speech.NMELS, 49) and a.x_train.dtype == np.float32
    assert a.n_classes == len(speech.WORDS) == 35 and a.meta["metric_name"] == "WER"
    c = speech.make_speech(**{**SMALL, "seed": 4})
    assert not np.array_equal(a.x_train, c.x_train)


def test_mix_reaches_the_asked_snr():
    rng = np.random.default_rng(0)
    s = np.zeros(speech.CLIP, np.float32)
    s[1000:9000] = np.sin(np.arange(8000) / 5)
    n = rng.standard_normal(speech.CLIP).astype(np.float32)
    out = speech.mix(s, n, 10.0)
    snr = 10 * np.log10(np.mean(s[1000:9000] ** 2) / np.mean((out - s) ** 2))
    assert abs(snr - 10.0) < 0.05


def test_missing_espeak_names_the_package(monkeypatch):
    from scalinglab.data import pool_size

    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="espeak-ng"):
        pool_size("speech", {})


@pytest.mark.parametrize(
    "family, size, bn",
    [("cnn2d", {"width": 8, "depth": 3}, False), ("cnn2d", {"width": 4, "depth": 2}, True),
     ("crnn", {"width": 16, "depth": 1}, True), ("crnn", {"width": 32, "depth": 2}, False)],
)  # fmt: skip
def test_params_and_flops(family, size, bn):
    from torch.utils.flop_counter import FlopCounterMode

    from scalinglab.models import build

    m = build(family, size, (speech.NMELS, 49), 35, batchnorm=bn)
    assert m.n_params() == sum(p.numel() for p in m.parameters())
    m.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        out = m(torch.zeros(2, speech.NMELS, 49))
    assert out.shape == (2, 35)
    assert m.forward_flops() == fc.get_total_flops() / 2  # convolutions, GRU and read-out products
    wider = build(family, {**size, "width": 2 * size["width"]}, (speech.NMELS, 49), 35, batchnorm=bn)
    assert wider.n_params() > m.n_params() and wider.forward_flops() > m.forward_flops()


@needs_espeak
def test_smoke_preset_end_to_end(tmp_path):
    import json

    import scalinglab
    from scalinglab.config import load_study
    from scalinglab.train.packing import group_key
    from scalinglab.train.runners import plan_units

    study, _ = load_study("speech")
    sizes = study.sizes()
    assert sizes[-1] / sizes[0] >= 100  # the full preset spans >= 2 decades of data
    r = scalinglab.run("speech-smoke", out=tmp_path / "out")
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["metric_info"]["name"] == "WER" and math.isclose(s["metric_info"]["random_guess"], 1 - 1 / 35)
    assert s["trials"] == {"total": 3, "ok": 3} and r is not None
    spec = {
        "data": {"name": "speech", "options": SMALL, "split_seed": 0},
        "data_size": 8,
        "model": {"family": "crnn", "size": {"width": 8, "depth": 1}, "batchnorm": True},
        "train": {"optimizer": "adam", "batch_size": 8},
        "seed": 0,
    }
    assert group_key(spec).startswith("single:")  # the one-at-a-time trainer, never a stacked group
    assert plan_units([spec, {**spec, "seed": 1}], "cpu", True, 32) == [[spec], [{**spec, "seed": 1}]]
