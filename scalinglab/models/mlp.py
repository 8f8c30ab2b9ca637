"""Multilayer perceptron: `depth` hidden layers of `width` units, an activation (ReLU unless `activation`
names another, models/knobs.py), optional batch norm."""

from __future__ import annotations

import math

from torch import nn

from scalinglab.models.knobs import activation as make_activation
from scalinglab.models.registry import register


class MLP(nn.Module):
    def __init__(self, d_in: int, width: int, depth: int, n_out: int, batchnorm: bool = False, activation=None):
        super().__init__()
        layers, d = [], d_in
        for _ in range(depth):
            layers.append(nn.Linear(d, width))
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(make_activation(activation))
            d = width
        layers.append(nn.Linear(d, n_out))
        self.net = nn.Sequential(nn.Flatten(), *layers)
        self.dims = [d_in] + [width] * depth + [n_out]

    def forward(self, x):  # (B, *input_shape) -> (B, n_out)
        return self.net(x)

    def n_params(self) -> int:
        # Linear layers: d_in*d_out + d_out; batch norm: 2 per unit (running stats are buffers).
        n = sum(a * b + b for a, b in zip(self.dims[:-1], self.dims[1:]))
        n += sum(2 * m.num_features for m in self.modules() if isinstance(m, nn.BatchNorm1d))
        return n

    def forward_flops(self) -> int:
        return sum(2 * a * b for a, b in zip(self.dims[:-1], self.dims[1:]))


@register("mlp", knobs=("width", "depth"), options=("batchnorm", "activation"), doc="MLP: width x depth, ReLU")
def build_mlp(size, input_shape, n_outputs, batchnorm=False, activation=None):
    d_in, width, depth = math.prod(input_shape), int(size.get("width", 128)), int(size.get("depth", 2))
    return MLP(d_in, width, depth, n_outputs, batchnorm=batchnorm, activation=activation)
