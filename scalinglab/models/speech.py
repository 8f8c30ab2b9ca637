"""Models for the `speech` data set (log-mel spectrograms (B, mels, frames) -> word logits (B, K)).

- `cnn2d`: `depth` blocks of 3x3 convolution (+ batch norm) + ReLU + 2x2 max-pool, channels `width`,
  2 width, 4 width, ...; global average pool; a linear read-out. The small-vision keyword spotter.
- `crnn`: Deep Speech 2's shape in miniature: two 3x3 convolutions of max(4, width/4) channels (the
  first pools frequency and time by 2, the second frequency by 2), then a GRU of `depth` layers and
  `width` units over the frames, mean over time, a linear read-out. (width/4, not width/2: the second
  convolution's cost grows as its channels squared and, at width/2, was most of a wide model's FLOPs.)

FLOPs: 2 x multiply-adds per example of the convolutions, the GRU's input and recurrent products and
the read-out (biases, pooling, activations not counted); tests/test_speech.py checks them against
torch's FlopCounterMode and the parameter counts against sum(p.numel()).
"""

from __future__ import annotations

from torch import nn

from scalinglab.models.registry import register


class CNN2d(nn.Module):
    def __init__(self, input_shape, n_out: int, width: int, depth: int, batchnorm: bool):
        super().__init__()
        mels, frames = input_shape
        self.flops, layers, c_in, h, w = 0, [], 1, mels, frames
        for i in range(depth):
            if min(h, w) < 2:
                raise ValueError(f"cnn2d depth {depth}: input {input_shape} is pooled to nothing after {i} blocks")
            c = width * 2**i
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=not batchnorm)]
            layers += [nn.BatchNorm2d(c)] if batchnorm else []
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            self.flops += 2 * 9 * c_in * c * h * w
            c_in, h, w = c, h // 2, w // 2
        self.body, self.head = nn.Sequential(*layers), nn.Linear(c_in, n_out)
        self.flops += 2 * c_in * n_out

    def forward(self, x):  # (B, mels, frames)
        return self.head(self.body(x.unsqueeze(1)).mean((2, 3)))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward_flops(self) -> int:
        return self.flops


class CRNN(nn.Module):
    def __init__(self, input_shape, n_out: int, width: int, depth: int, batchnorm: bool):
        super().__init__()
        mels, frames = input_shape
        c = max(4, width // 4)
        norm = (lambda: nn.BatchNorm2d(c)) if batchnorm else nn.Identity
        self.conv = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), norm(), nn.ReLU(), nn.MaxPool2d(2),  # (c, mels/2, frames/2)
            nn.Conv2d(c, c, 3, padding=1), norm(), nn.ReLU(), nn.MaxPool2d((2, 1)),  # (c, mels/4, frames/2)
        )  # fmt: skip
        f, t = mels // 4, frames // 2
        self.gru = nn.GRU(c * f, width, num_layers=depth, batch_first=True)
        self.head = nn.Linear(width, n_out)
        conv = 2 * 9 * (c * mels * frames + c * c * (mels // 2) * t)
        gru = 2 * 3 * t * (c * f * width + width * width + (depth - 1) * 2 * width * width)
        self.flops = conv + gru + 2 * width * n_out

    def forward(self, x):  # (B, mels, frames)
        z = self.conv(x.unsqueeze(1))  # (B, c, f, t)
        z = z.flatten(1, 2).transpose(1, 2)  # (B, t, c*f)
        return self.head(self.gru(z)[0].mean(1))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward_flops(self) -> int:
        return self.flops


def _check(name, input_shape):
    if len(input_shape) != 2:
        raise ValueError(f"{name} needs spectrograms (input shape (mels, frames)); got {input_shape}")


@register("cnn2d", knobs=("width", "depth"), options=("batchnorm",), doc="2-D CNN (speech): width x depth blocks")
def build_cnn2d(size, input_shape, n_outputs, batchnorm=False):
    _check("cnn2d", input_shape)
    return CNN2d(input_shape, n_outputs, int(size.get("width", 16)), int(size.get("depth", 3)), batchnorm)


@register("crnn", knobs=("width", "depth"), options=("batchnorm",), doc="CNN-GRU (speech): GRU width x layers")
def build_crnn(size, input_shape, n_outputs, batchnorm=False):
    _check("crnn", input_shape)
    return CRNN(input_shape, n_outputs, int(size.get("width", 64)), int(size.get("depth", 1)), batchnorm)
