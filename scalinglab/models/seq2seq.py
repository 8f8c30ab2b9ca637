"""GRU encoder-decoder with global attention (Luong et al. 2015) for the `translation` data set.

Knobs: `width` (embedding and hidden units) and `depth` (GRU layers, encoder and decoder alike).
Input x (B, 2, L) int64: row 0 the left-padded source, row 1 the teacher-forced target input
(data/translation.py); output logits (B, V, L), the class axis second so `F.cross_entropy(logits, y)`
with y (B, L) (padding -100, ignored) scores every target token, as run_trial does for charlm.

Luong's "general" global attention without input feeding: the decoder GRU runs over the whole target
input at once (teacher forcing, parallel over time); every decoder state h_t attends over the
encoder's states h_s (score h_t^T W_a h_s, source padding masked), and the attentional state
tanh(W_c [c_t; h_t]) is read out. The decoder starts from the encoder's last state (which follows the
last source word: the source is left-padded). `greedy` decodes one token at a time from <bos> for
evaluation; `decode_metrics` scores it (sequence and token accuracy), which run_trial stores beside the
teacher-forced cross-entropy.
"""

from __future__ import annotations

import torch
from torch import nn

from scalinglab.models.registry import register

PAD, BOS, EOS, IGNORE = 0, 1, 2, -100  # as data/translation.py


class Seq2Seq(nn.Module):
    def __init__(self, vocab: int, length: int, width: int, depth: int):
        super().__init__()
        self.vocab, self.length, self.width, self.depth = vocab, length, width, depth
        self.src_emb, self.tgt_emb = nn.Embedding(vocab, width), nn.Embedding(vocab, width)
        self.encoder = nn.GRU(width, width, num_layers=depth, batch_first=True)
        self.decoder = nn.GRU(width, width, num_layers=depth, batch_first=True)
        self.attn = nn.Linear(width, width, bias=False)  # W_a
        self.combine = nn.Linear(2 * width, width)  # W_c
        self.out = nn.Linear(width, vocab)

    def encode(self, src):  # (B, S) -> states (B, S, d), last hidden (depth, B, d), pad mask (B, S)
        hs, h = self.encoder(self.src_emb(src))
        return hs, h, src == PAD

    def _read_out(self, ht, hs, keys, mask):  # ht (B, T, d), hs/keys (B, S, d) -> logits (B, T, V)
        scores = torch.bmm(ht, keys.transpose(1, 2)).masked_fill(mask[:, None, :], float("-inf"))  # (B, T, S)
        ctx = torch.bmm(scores.softmax(-1), hs)  # (B, T, d)
        return self.out(torch.tanh(self.combine(torch.cat([ctx, ht], -1))))

    def forward(self, x):  # (B, 2, L) -> (B, V, L)
        hs, h, mask = self.encode(x[:, 0])
        ht, _ = self.decoder(self.tgt_emb(x[:, 1]), h)
        return self._read_out(ht, hs, self.attn(hs), mask).transpose(1, 2)

    @torch.no_grad()
    def greedy(self, src, steps: int):
        """(B, S) -> (B, steps) token ids, each step's argmax fed back (after <eos>: whatever follows)."""
        hs, h, mask = self.encode(src)
        keys = self.attn(hs)
        tok = torch.full((len(src), 1), BOS, dtype=torch.long, device=src.device)
        out = []
        for _ in range(steps):
            ht, h = self.decoder(self.tgt_emb(tok), h)
            tok = self._read_out(ht, hs, keys, mask).argmax(-1)  # (B, 1)
            out.append(tok)
        return torch.cat(out, 1)

    @torch.no_grad()
    def decode_metrics(self, x, y, batch: int = 4096) -> dict:
        """Greedy decoding scored against y (B, L): "seq_accuracy" (every target token and <eos> right)
        and "token_accuracy" (positions right, over the real target tokens and <eos>)."""
        was = self.training
        self.eval()
        right_seq, right_tok = 0, 0
        for i in range(0, len(x), batch):
            yb = y[i : i + batch]
            pred = self.greedy(x[i : i + batch, 0], yb.shape[1])
            valid = yb != IGNORE
            ok = (pred == yb) & valid
            right_tok += ok.sum().item()
            right_seq += (ok.sum(1) == valid.sum(1)).sum().item()
        self.train(was)
        return {"seq_accuracy": right_seq / len(x), "token_accuracy": right_tok / (y != IGNORE).sum().item()}

    def n_params(self) -> int:
        d, V, L = self.width, self.vocab, self.depth
        gru = L * (3 * (d * d + d * d) + 2 * 3 * d)  # per layer: W_ih, W_hh (3 gates each), two biases
        return 2 * V * d + 2 * gru + d * d + (2 * d * d + d) + (d * V + V)

    def forward_flops(self) -> int:
        """2 x multiply-adds per example (teacher-forced, L source and L target positions): both GRUs
        (3 gates x (input + recurrent) products per layer per step), W_a over the source states, the
        scores and context (L x L x d each), W_c and the read-out."""
        d, V, L, T = self.width, self.vocab, self.depth, self.length
        gru = T * L * 3 * 2 * d * d
        return 2 * (2 * gru + T * d * d + 2 * T * T * d + T * 2 * d * d + T * d * V)


@register("seq2seq", knobs=("width", "depth"), doc="GRU encoder-decoder, Luong attention (translation): width x layers")
def build_seq2seq(size, input_shape, n_outputs, batchnorm=False):
    if batchnorm:
        raise ValueError("seq2seq has no batch norm; set model.batchnorm = false")
    if len(input_shape) != 2 or input_shape[0] != 2:
        raise ValueError(
            f"seq2seq needs (source, target input) rows of token ids (input shape (2, L)); got {input_shape}"
        )
    return Seq2Seq(n_outputs, input_shape[1], int(size.get("width", 64)), int(size.get("depth", 1)))
