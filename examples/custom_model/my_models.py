"""A model factory: (size: dict, input_shape: tuple, n_outputs: int) -> torch.nn.Module.

scalinglab calls it once per trial with one of the study's `sizes` tables, measures the parameters
(sum of p.numel()) and the forward FLOPs (torch's FlopCounterMode on one batch), and trains it with
its own loop (cross-entropy, early stopping on dev error).
"""

import math

from torch import nn


class ResidualMLP(nn.Module):
    def __init__(self, d_in: int, width: int, blocks: int, n_out: int):
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU()) for _ in range(blocks)
        )
        self.out = nn.Linear(width, n_out)

    def forward(self, x):  # (B, *input_shape) -> (B, n_out)
        h = self.inp(x.flatten(1))
        for b in self.blocks:
            h = h + b(h)
        return self.out(h)


def make_net(size: dict, input_shape: tuple, n_outputs: int) -> nn.Module:
    return ResidualMLP(math.prod(input_shape), size["width"], size.get("blocks", 1), n_outputs)
