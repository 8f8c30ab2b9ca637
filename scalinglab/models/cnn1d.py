"""1-D convolutional network for sequences such as MNIST-1D: `depth` conv layers of `channels`
channels (kernel 5, stride 2 after the first), ReLU (or `activation`, models/knobs.py), optional batch
norm, then a linear read-out."""

from __future__ import annotations

from torch import nn

from scalinglab.models.knobs import activation as make_activation
from scalinglab.models.registry import register

KERNEL = 5


class CNN1D(nn.Module):
    def __init__(
        self, length: int, in_ch: int, channels: int, depth: int, n_out: int, batchnorm=False, activation=None
    ):
        super().__init__()
        layers, c, L = [], in_ch, length
        self.convs = []  # (c_in, c_out, L_out) per conv, for FLOPs
        for i in range(depth):
            stride = 1 if i == 0 else 2
            layers.append(nn.Conv1d(c, channels, KERNEL, stride=stride, padding=KERNEL // 2))
            L = (L + 2 * (KERNEL // 2) - KERNEL) // stride + 1
            self.convs.append((c, channels, L))
            if batchnorm:
                layers.append(nn.BatchNorm1d(channels))
            layers.append(make_activation(activation))
            c = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * L, n_out)
        self.flat = c * L
        self.in_ch = in_ch

    def forward(self, x):  # (B, L) or (B, C, L) -> (B, n_out)
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x).flatten(1))

    def n_params(self) -> int:
        n = sum(ci * co * KERNEL + co for ci, co, _ in self.convs)
        n += sum(2 * m.num_features for m in self.modules() if isinstance(m, nn.BatchNorm1d))
        return n + self.flat * self.head.out_features + self.head.out_features

    def forward_flops(self) -> int:
        conv = sum(2 * ci * co * KERNEL * L for ci, co, L in self.convs)
        return conv + 2 * self.flat * self.head.out_features


@register("cnn1d", knobs=("channels", "depth"), options=("batchnorm", "activation"), doc="1-D CNN: channels x depth")
def build_cnn1d(size, input_shape, n_outputs, batchnorm=False, activation=None):
    if len(input_shape) == 1:
        length, in_ch = input_shape[0], 1
    else:
        in_ch, length = input_shape
    return CNN1D(
        length,
        in_ch,
        int(size.get("channels", 32)),
        int(size.get("depth", 3)),
        n_outputs,
        batchnorm=batchnorm,
        activation=activation,
    )
