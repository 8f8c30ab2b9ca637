"""The lstm family (issue 16, char-LM part): parameter count, FLOPs against torch's counter, the same
input/output convention as the Transformer on charlm, never batched, and the smoke preset end to end."""

import json
import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from scalinglab.models import build, describe


@pytest.mark.parametrize("width, depth, T", [(16, 1, 8), (64, 2, 32), (96, 3, 16)])
def test_lstm_params_equal_numel(width, depth, T):
    m = build("lstm", {"width": width, "depth": depth}, (T,), 97)
    assert m.n_params() == sum(p.numel() for p in m.parameters())
    layer = 4 * width * (width + width) + 2 * 4 * width  # W_ih, W_hh, b_ih, b_hh
    assert m.n_params() == 97 * width + depth * layer + width * 97 + 97  # embedding, layers, read-out


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # torch's, on toggling oneDNN
@pytest.mark.parametrize("width, depth, T", [(16, 1, 8), (64, 2, 32), (96, 3, 16)])
def test_lstm_flops_match_flop_counter(width, depth, T):
    m = build("lstm", {"width": width, "depth": depth}, (T,), 97).eval()
    x = torch.zeros(2, T, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as fused:
        m(x)
    # the fused CPU LSTM kernel (oneDNN) is invisible to the counter, which sees the read-out only; with
    # oneDNN off torch runs the LSTM as mm/addmm per step and layer, which it counts exactly (2 examples:
    # half the total is one example's)
    readout = 2 * T * width * 97
    assert fused.get_total_flops() / 2 == readout
    with torch.backends.mkldnn.flags(enabled=False), torch.no_grad(), FlopCounterMode(display=False) as fc:
        m(x)
    assert m.forward_flops() == fc.get_total_flops() / 2
    hand = 2 * T * depth * 4 * (width + width) * width + readout  # 4 gates x (input + hidden) x hidden
    assert m.forward_flops() == hand
    assert describe("lstm", {"width": width, "depth": depth}, (T,), 97)["train_flops_per_example"] == 3 * hand


def test_lstm_output_convention_equals_transformer():
    x = torch.randint(0, 97, (3, 16))
    lstm = build("lstm", {"width": 32, "depth": 2}, (16,), 97)
    tf = build("transformer", {"width": 32, "depth": 2}, (16,), 97)
    out = lstm(x)
    assert out.shape == tf(x).shape == (3, 97, 16)  # (B, V, T): cross_entropy(out, y) with y (B, T)
    assert out.dtype == tf(x).dtype == torch.float32
    y = torch.randint(0, 97, (3, 16))
    assert torch.nn.functional.cross_entropy(out, y).shape == ()
    # causal: changing the last symbol leaves every earlier position's logits alone
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % 97
    assert torch.equal(lstm(x2)[:, :, :-1], out[:, :, :-1])


def test_lstm_refuses_bad_shapes_and_batchnorm():
    with pytest.raises(ValueError, match="batch norm"):
        build("lstm", {"width": 8, "depth": 1}, (8,), 97, batchnorm=True)
    with pytest.raises(ValueError, match="input shape"):
        build("lstm", {"width": 8, "depth": 1}, (8, 4), 97)


def test_lstm_is_never_batched():
    from scalinglab.train.packing import UNBATCHED_FAMILIES, group_key

    spec = {
        "data": {"name": "charlm", "options": {"context": 8}, "split_seed": 0},
        "data_size": 32,
        "model": {"family": "lstm", "size": {"width": 8, "depth": 1}, "batchnorm": False},
        "train": {"optimizer": "adam", "batch_size": 8},
        "seed": 0,
    }
    assert "lstm" in UNBATCHED_FAMILIES and group_key(spec).startswith("single:")


def test_smoke_preset_end_to_end(tmp_path):
    from scalinglab.cli.main import main
    from scalinglab.config import load_study

    study, _ = load_study("charlm-lstm")
    assert study.model.family == "lstm" and study.sizes()[-1] / study.sizes()[0] >= 100
    assert main(["run", "charlm-lstm-smoke", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["study"] == "charlm-lstm-smoke" and s["trials"] == {"total": 4, "ok": 4}
    assert len(s["points"]) == 4 and s["data_unit"] == "characters"
    assert all(0 < p["error"] < math.log2(97) + 1 for p in s["points"])  # bits/char, near or below guessing
    assert {p["params"] for p in s["points"]} == {build("lstm", {"width": 16, "depth": 1}, (32,), 97).n_params()}
