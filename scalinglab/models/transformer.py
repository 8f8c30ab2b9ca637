"""A small causal Transformer (GPT-style, pre-LayerNorm) for the `charlm` data set.

Knobs: `width` (d_model) and `depth` (blocks); heads = max(1, width // 32) (head size 32, or the whole
width below 32). Input: symbol ids (B, T) int64; output: logits (B, V, T), the class axis second so
`F.cross_entropy(logits, y)` with y (B, T) scores every position (run_trial needs no change).
Learned position embeddings for up to `input_shape[0]` positions; untied read-out. The feed-forward
block's activation is GELU unless `activation` names another (models/knobs.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scalinglab.models.knobs import activation as make_activation
from scalinglab.models.registry import register

HEAD_SIZE = 32


class Block(nn.Module):
    def __init__(self, d: int, heads: int, activation=None):
        super().__init__()
        self.heads = heads
        self.act = make_activation(activation, default="gelu")
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):  # (B, T, d)
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (t.view(B, T, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(B, T, d))
        return x + self.out(self.act(self.fc(self.ln2(x))))


class Transformer(nn.Module):
    def __init__(self, vocab: int, context: int, width: int, depth: int, activation=None):
        super().__init__()
        if width % max(1, width // HEAD_SIZE):
            raise ValueError(f"transformer width {width} is not a multiple of its head count")
        self.vocab, self.context, self.width, self.depth = vocab, context, width, depth
        self.heads = max(1, width // HEAD_SIZE)
        self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, self.heads, activation) for _ in range(depth))
        self.ln, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)

    def forward(self, idx):  # (B, T) int64 -> (B, V, T)
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x)).transpose(1, 2)

    def n_params(self) -> int:
        d, V, L = self.width, self.vocab, self.depth
        block = (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d  # + 2 LNs
        return V * d + self.context * d + L * block + 2 * d + (d * V + V)

    def forward_flops(self) -> int:
        """2 x multiply-adds per example (a window of `context` positions): the linear layers (12 d^2 per
        position per block, d V for the read-out) and attention's two products QK^T and AV (T d each
        per position, counted over the full T x T square as the kernel computes it). torch's
        FlopCounterMode on CPU counts the linear layers exactly but not the fused attention kernel
        (tests/test_loaders.py checks both parts)."""
        d, V, L, T = self.width, self.vocab, self.depth, self.context
        return 2 * T * (L * (12 * d * d + 2 * T * d) + d * V)


@register(
    "transformer", knobs=("width", "depth"), options=("activation",), doc="causal Transformer (charlm): width x depth"
)
def build_transformer(size, input_shape, n_outputs, batchnorm=False, activation=None):
    if batchnorm:
        raise ValueError("transformer has no batch norm (it uses LayerNorm); set model.batchnorm = false")
    if len(input_shape) != 1:
        raise ValueError(f"transformer needs sequences of symbol ids (input shape (T,)); got {input_shape}")
    return Transformer(n_outputs, input_shape[0], int(size.get("width", 64)), int(size.get("depth", 2)), activation)
