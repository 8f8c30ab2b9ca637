"""An LSTM language model for the `charlm` data set, beside the Transformer (models/transformer.py) so
a study can compare families; Hestness et al. (2017) used LSTMs for their character and word LMs.

Knobs: `width` (hidden size; the embedding has the same width) and `depth` (stacked LSTM layers).
Same conventions as the Transformer: input symbol ids (B, T) int64; output logits (B, V, T), the class
axis second so `F.cross_entropy(logits, y)` with y (B, T) scores every position. Untied read-out.
No position embedding: the recurrence carries order. An `init` re-initialises the read-out only
(models/knobs.py touches Linear layers); the LSTM keeps torch's uniform(-1/sqrt(h), 1/sqrt(h)).
"""

from __future__ import annotations

from torch import nn

from scalinglab.models.registry import register


class LSTM(nn.Module):
    def __init__(self, vocab: int, context: int, width: int, depth: int):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"lstm: width and depth must be at least 1; given width={width}, depth={depth}")
        self.vocab, self.context, self.width, self.depth = vocab, context, width, depth
        self.tok = nn.Embedding(vocab, width)
        self.rnn = nn.LSTM(width, width, num_layers=depth, batch_first=True)
        self.head = nn.Linear(width, vocab)

    def forward(self, idx):  # (B, T) int64 -> (B, V, T)
        h, _ = self.rnn(self.tok(idx))  # (B, T, d)
        return self.head(h).transpose(1, 2)

    def n_params(self) -> int:
        d, V, L = self.width, self.vocab, self.depth
        # per layer: W_ih and W_hh (4d x d each: input, forget, cell, output gates) and torch's two
        # bias vectors b_ih, b_hh (4d each; redundant, but they are parameters and are trained)
        layer = 2 * 4 * d * d + 2 * 4 * d
        return V * d + L * layer + (d * V + V)

    def forward_flops(self) -> int:
        """2 x multiply-adds per example (a window of `context` positions): each layer's four gates
        multiply the layer input and the previous hidden state, 4 (in + hidden) hidden per step with
        in = hidden = d here, and the read-out d V per position. Biases, the gates' sigmoids and tanhs
        and the elementwise cell update are not counted (O(d) per step, as the Transformer leaves out
        LayerNorm). torch's FlopCounterMode counts none of the fused CPU LSTM kernel; with oneDNN off it
        counts the unfused mm/addmm exactly (tests/test_lstm.py)."""
        d, V, L, T = self.width, self.vocab, self.depth, self.context
        return 2 * T * (L * 4 * (d + d) * d + d * V)


@register("lstm", knobs=("width", "depth"), doc="LSTM language model (charlm): hidden width x layers")
def build_lstm(size, input_shape, n_outputs, batchnorm=False):
    if batchnorm:
        raise ValueError("lstm has no batch norm; set model.batchnorm = false")
    if len(input_shape) != 1:
        raise ValueError(f"lstm needs sequences of symbol ids (input shape (T,)); got {input_shape}")
    return LSTM(n_outputs, input_shape[0], int(size.get("width", 64)), int(size.get("depth", 1)))
