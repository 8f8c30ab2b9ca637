"""ResNet for small images (He et al. 2016, the CIFAR variant of section 4.2): a 3x3 stem of `width`
channels, 3 stages of `depth` basic blocks each (3x3 conv, batch norm, ReLU, 3x3 conv, batch norm, plus
the shortcut; a 1x1 conv with batch norm where the shape changes) at width, 2x and 4x width, the last
two stages halving the resolution, then global average pooling and a linear read-out.

Size knobs: `width` (base channels) and `depth` (blocks per stage; 6 * depth + 2 weighted layers).
Batch norm follows the study's `batchnorm` option (presets set it; without it a deep ResNet trains
poorly). Inputs (B, H, W) are one-channel images; (B, C, H, W) is taken as is.
"""

from __future__ import annotations

import torch
from torch import nn

from scalinglab.models.knobs import activation as make_activation
from scalinglab.models.registry import register

STAGES = (1, 2, 4)  # channel multiples of the 3 stages
STRIDES = (1, 2, 2)


def _norm(c: int, on: bool) -> nn.Module:
    return nn.BatchNorm2d(c) if on else nn.Identity()


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, bn: bool, activation):
        super().__init__()
        # no conv bias under batch norm: the norm's shift does its work
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not bn)
        self.bn1, self.act1 = _norm(c_out, bn), make_activation(activation)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not bn)
        self.bn2, self.act2 = _norm(c_out, bn), make_activation(activation)
        self.short = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=not bn), _norm(c_out, bn))

    def forward(self, x):
        h = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(h)) + self.short(x))


class ResNet(nn.Module):
    def __init__(self, input_shape, width: int, depth: int, n_out: int, batchnorm=True, activation=None):
        super().__init__()
        in_ch, h, w = (1, *input_shape) if len(input_shape) == 2 else input_shape
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, width, 3, 1, 1, bias=not batchnorm), _norm(width, batchnorm), make_activation(activation)
        )
        blocks, c = [], width
        for mult, stride in zip(STAGES, STRIDES):
            for i in range(depth):
                blocks.append(BasicBlock(c, width * mult, stride if i == 0 else 1, batchnorm, activation))
                c = width * mult
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c, n_out)
        self.input_hw = (h, w)

    def forward(self, x):  # (B, H, W) or (B, C, H, W) -> (B, n_out)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))  # global average pooling

    def _convs(self):
        """(conv, output height x width) of every convolution, by running the shapes through."""
        out, hooks = [], []
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                hooks.append(m.register_forward_hook(lambda m, i, o: out.append((m, o.shape[2] * o.shape[3]))))
        try:
            with torch.no_grad():
                was = self.training
                self.eval()(torch.zeros(1, self.stem[0].in_channels, *self.input_hw))
                self.train(was)
        finally:
            for h in hooks:
                h.remove()
        return out

    def n_params(self) -> int:
        # conv: c_in * c_out * k * k (+ c_out bias without batch norm); batch norm: 2 per channel
        # (running stats are buffers); read-out: c * n_out + n_out.
        n = 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1]
                n += m.in_channels * m.out_channels * k + (m.out_channels if m.bias is not None else 0)
            elif isinstance(m, nn.BatchNorm2d):
                n += 2 * m.num_features
        return n + self.head.in_features * self.head.out_features + self.head.out_features

    def forward_flops(self) -> int:
        """2 x multiply-adds of the convolutions and the read-out per example (batch norm, ReLU, the
        residual adds and the pooling are elementwise and not counted, as for the other families)."""
        conv = sum(
            2 * m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * hw for m, hw in self._convs()
        )
        return conv + 2 * self.head.in_features * self.head.out_features


@register("resnet", knobs=("width", "depth"), options=("batchnorm", "activation"), doc="2-D ResNet: width x depth")
def build_resnet(size, input_shape, n_outputs, batchnorm=False, activation=None):
    if len(input_shape) not in (2, 3):
        raise ValueError(f"resnet: input shape {tuple(input_shape)}; allowed: images (H, W) or (C, H, W)")
    return ResNet(
        input_shape,
        int(size.get("width", 16)),
        int(size.get("depth", 1)),
        n_outputs,
        batchnorm=batchnorm,
        activation=activation,
    )
