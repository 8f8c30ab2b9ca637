import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from scalinglab.models import FAMILIES, build


@pytest.mark.parametrize(
    "family, size, shape",
    [
        ("mlp", {"width": 64, "depth": 2}, (40,)),
        ("mlp", {"width": 7, "depth": 1}, (8, 8)),
        ("cnn1d", {"channels": 16, "depth": 3}, (40,)),
        ("cnn1d", {"channels": 5, "depth": 1}, (2, 33)),
    ],
)
@pytest.mark.parametrize("bn", [False, True])
def test_param_count_matches_numel_and_flops_match_counter(family, size, shape, bn):
    m = build(family, size, shape, 10, batchnorm=bn)
    assert m.n_params() == sum(p.numel() for p in m.parameters())
    m.eval()
    x = torch.randn(4, *shape)
    with FlopCounterMode(display=False) as fc:
        m(x)
    # torch counts matmul/conv FLOPs (2 per multiply-add); ours must agree per example
    assert m.forward_flops() == fc.get_total_flops() // 4
    assert m(x).shape == (4, 10)


def test_registry_lists_families():
    assert {"mlp", "cnn1d"} <= set(FAMILIES)
