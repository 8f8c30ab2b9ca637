"""Stacked layer ops: G models of one shape as one computation (for `train/batched.py`).

P, B: {state-dict name: (G, ...)} stacked parameters and buffers. Two forward engines:
- `forward_bmm`: the known layers (Flatten, Linear, Conv1d, BatchNorm1d, the activations) interpreted in
  registration order, each as one batched op (`baddbmm`, a grouped convolution, one `batch_norm` over
  G*C channels);
- `forward_vmap`: `torch.func.functional_call` under `vmap`, for other layers (no batch norm).
`FusedMLP` is a plain ReLU MLP's training step and evaluation written out by hand (no autograd), into
buffers allocated once per group size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# elementwise activations (models/knobs.py) and the op that applies each one to stacked activations
ELEMENTWISE = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid, nn.GELU: F.gelu}
BMM_LAYERS = (nn.Flatten, nn.Linear, nn.Conv1d, nn.BatchNorm1d, *ELEMENTWISE)
BMM_FAMILIES = ("mlp", "cnn1d")  # families whose leaf modules run in registration order
EVAL_FLOATS = 1 << 21  # FusedMLP.evaluate: floats per activation chunk (8 MB)


def plan(model: nn.Module):
    """The model's leaf modules in registration order (what forward_bmm interprets)."""
    return [(name, m) for name, m in model.named_modules() if not list(m.children())]


def bmm_supported(family: str, model: nn.Module) -> bool:
    return family in BMM_FAMILIES and all(isinstance(m, BMM_LAYERS) for _, m in plan(model))


def _to_gbf(x, G):  # (b, G*C, [1,] L) -> (G, b, C*L): the per-model flatten(1) order
    if x.dim() == 4 and torch.is_grad_enabled() and x.requires_grad:
        return _FlattenCL.apply(x, G)
    b = x.shape[0]
    return x.reshape(b, G, -1).transpose(0, 1)


class _FlattenCL(torch.autograd.Function):
    """_to_gbf of a channels-last (b, G*C, 1, L) activation whose gradient goes back channels-last:
    reshape's own backward would hand the ReLU before it an NCHW gradient for its channels-last output,
    and threshold_backward on mixed layouts ran 8x slower (6.4 vs 0.8 ms at 128 x 288 x 40)."""

    @staticmethod
    def forward(ctx, x, G):
        ctx.shape = x.shape
        return x.reshape(x.shape[0], G, -1).transpose(0, 1)

    @staticmethod
    def backward(ctx, g):  # (G, b, C*L) -> (b, G*C, 1, L), channels-last
        return g.transpose(0, 1).reshape(ctx.shape).contiguous(memory_format=torch.channels_last), None


class _BatchedLinear(torch.autograd.Function):
    """y = x W^T + b per model; the weight gradient g^T x lands in W's own (G, out, in) layout.
    (Autograd's baddbmm backward makes x^T g and copies it transposed: a third more time per step.)"""

    @staticmethod
    def forward(ctx, x, w, b):  # (G, n, in), (G, out, in), (G, out) -> (G, n, out)
        ctx.save_for_backward(x, w)
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        gx = torch.bmm(g, w) if ctx.needs_input_grad[0] else None
        return gx, torch.bmm(g.transpose(1, 2), x), g.sum(1)


def _linear(x, w, b):
    if torch.is_autocast_enabled(x.device.type) or not torch.is_grad_enabled():  # autograd's own op handles the casts
        return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
    return _BatchedLinear.apply(x, w, b)


def forward_bmm(plan, P, B, x, training: bool, conv_2d: bool = True):
    """x: (G, b, *input_shape) -> logits (G, b, n_out). Layouts: (G, b, F) for linear layers,
    (b, G*C, 1, L) channels-last for conv layers (a grouped convolution with G groups; batch norm over
    G*C channels). oneDNN's channels-last conv2d with a 1 x K kernel ran forward + backward 1.9x faster
    than its grouped conv1d on these shapes (32 channels, length 10-40; benchmarks/trainer.py --cnn);
    conv_2d=False keeps the conv1d form, (b, G*C, L)."""
    G, b = x.shape[:2]
    conv = False
    for name, m in plan:
        if isinstance(m, nn.Flatten):
            x = _to_gbf(x, G) if conv else x.reshape(G, b, -1)
            conv = False
        elif isinstance(m, nn.Linear):
            if conv:
                x, conv = _to_gbf(x, G), False
            x = _linear(x.reshape(G, b, -1), P[f"{name}.weight"], P[f"{name}.bias"])
        elif isinstance(m, nn.Conv1d):
            if not conv:  # (G, b, L) or (G, b, C, L) -> (b, G*C, [1,] L)
                x = x.reshape(G, b, -1, x.shape[-1]).transpose(0, 1).reshape(b, -1, x.shape[-1])
                if conv_2d:
                    x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
                conv = True
            w = P[f"{name}.weight"]
            w, bias = w.reshape(-1, *w.shape[2:]), P[f"{name}.bias"].reshape(-1)
            if conv_2d:
                x = F.conv2d(x, w.unsqueeze(2), bias, stride=(1, m.stride[0]), padding=(0, m.padding[0]), groups=G)
            else:
                x = F.conv1d(x, w, bias, stride=m.stride, padding=m.padding, groups=G)
        elif isinstance(m, nn.BatchNorm1d):
            shape = x.shape
            xb = x if conv else x.transpose(0, 1).reshape(b, -1)  # (b, G*C[, 1, L])
            xb = F.batch_norm(
                xb,
                B[f"{name}.running_mean"].view(-1),
                B[f"{name}.running_var"].view(-1),
                P[f"{name}.weight"].reshape(-1),
                P[f"{name}.bias"].reshape(-1),
                training,
                m.momentum,
                m.eps,
            )  # updates the stacked running stats in place
            x = xb if conv else xb.reshape(b, G, -1).transpose(0, 1).reshape(shape)
        elif type(m) in ELEMENTWISE:  # any layout: one op over all G models
            x = ELEMENTWISE[type(m)](x)
        else:  # bmm_supported guards this
            raise TypeError(f"forward_bmm: layer {name} ({type(m).__name__}) is not supported")
    return x


def mlp_layers(plan):
    """[(weight name, bias name, ReLU after?)] when the plan is [Flatten] (Linear [ReLU])+, else None."""
    out = []
    for i, (name, m) in enumerate(plan):
        if isinstance(m, nn.Flatten) and i == 0:
            continue
        if isinstance(m, nn.Linear):
            out.append([f"{name}.weight", f"{name}.bias", False])
        elif isinstance(m, nn.ReLU) and out and not out[-1][2]:
            out[-1][2] = True
        else:
            return None
    return [tuple(x) for x in out] or None


class FusedMLP:
    """One training step of a stacked ReLU MLP, forward and backward written out by hand (no autograd):
    the same products as autograd's (weight gradient g^T a in the weight's (G, out, in) layout), but
    every activation, gradient and index buffer is allocated once per group size and filled with out=
    arguments, ReLU and its backward run in place, and the minibatch is one index_select per step.
    The loss is cross-entropy, mean over each model's batch, as run_trial's."""

    def __init__(self, layers):
        self.layers, self.shape = layers, None

    def _alloc(self, P, G, b, d0, dev):
        dims = [d0] + [P[w].shape[1] for w, _, _ in self.layers]
        self.shape = (G, b, tuple(dims), tuple(P[w].data_ptr() for w, _, _ in self.layers))
        self.X = torch.empty(G, b, d0, device=dev)
        self.Y = torch.empty(G, b, dtype=torch.long, device=dev)
        # layer outputs (after ReLU); the last (logits) transposed, (G, C, b): log-softmax, its gradient
        # and the prediction then reduce over a strided dim of 10, 20x faster than over the inner one
        self.H = [torch.empty(G, b, d, device=dev) for d in dims[1:-1]]
        self.H.append(torch.empty(G, dims[-1], b, device=dev))
        self.D = [torch.empty(G, b, d, device=dev) for d in dims[1:-1]]  # gradients w.r.t. hidden outputs
        self.grads = {n: torch.empty_like(P[n]) for w, bn, _ in self.layers for n in (w, bn)}
        self.neg = torch.full((G, 1, b), -1.0, device=dev)

    def step(self, P, x, y, idx):
        """P: stacked params; x (N, ...), y (N,): the pool; idx (G, b) pool rows. Fills self.grads with
        the gradient of sum over models of each model's mean CE; returns (predicted class (G, b), per-model
        losses (G,))."""
        G, b = idx.shape
        if (
            self.shape is None
            or self.shape[:2] != (G, b)
            or self.shape[3] != tuple(P[w].data_ptr() for w, _, _ in self.layers)
        ):
            self._alloc(P, G, b, math.prod(x.shape[1:]), x.device)
        X, Y, H, D = self.X, self.Y, self.H, self.D
        flat = idx.reshape(-1)
        torch.index_select(x.reshape(x.shape[0], -1), 0, flat, out=X.view(G * b, -1))
        torch.index_select(y, 0, flat, out=Y.view(-1))
        a, last = X, len(self.layers) - 1
        for i, ((w, bn, relu), h) in enumerate(zip(self.layers, H)):
            if i < last:
                torch.baddbmm(P[bn].unsqueeze(1), a, P[w].transpose(1, 2), out=h)
            else:  # logits^T = W a^T + b: (G, C, b)
                torch.baddbmm(P[bn].unsqueeze(2), P[w], a.transpose(1, 2), out=h)
            if relu:
                h.relu_()
            a = h
        zt = H[-1]
        logp = torch.log_softmax(zt, 1)  # (G, C, b)
        losses = logp.gather(1, Y.unsqueeze(1)).sum((1, 2)).div_(-b)
        g = logp.exp_()  # d(mean CE)/d logits = (softmax - onehot) / b
        g.scatter_add_(1, Y.unsqueeze(1), self.neg).div_(b)
        pred = zt.max(1).indices  # = argmax (first maximal index), as run_trial counts errors
        for i in range(last, -1, -1):
            w, bn, _ = self.layers[i]
            a = H[i - 1] if i else X
            if i == last:  # g: (G, C, b)
                torch.bmm(g, a, out=self.grads[w])
                torch.sum(g, 2, out=self.grads[bn])
                gt = g.transpose(1, 2)
            else:  # g: (G, b, out)
                torch.bmm(g.transpose(1, 2), a, out=self.grads[w])
                torch.sum(g, 1, out=self.grads[bn])
                gt = g
            if i:
                gi = torch.bmm(gt, P[w], out=D[i - 1])
                if self.layers[i - 1][2]:  # ReLU: zero where its output is 0 (autograd's threshold_backward)
                    torch.ops.aten.threshold_backward.grad_input(gi, a, 0, grad_input=gi)
                g = gi
        return pred, losses

    def _scratch(self, name, n, dev):  # a flat fp32 buffer of >= n floats, kept across calls
        buf = self.__dict__.get(name)
        if buf is None or buf.numel() < n or buf.device != dev:
            buf = torch.empty(n, device=dev)
            setattr(self, name, buf)
        return buf

    @torch.no_grad()
    def evaluate(self, P, x, y):
        """Eval-mode (sum of CE (g,), wrong (g,)) of the g stacked models P on shared (x, y), in row chunks
        sized so one activation of all g models stays around EVAL_FLOATS floats (cache-resident), into
        scratch buffers kept across calls (no fresh pages per evaluation), ReLU in place."""
        g = P[self.layers[0][0]].shape[0]
        dims = [P[w].shape[1] for w, _, _ in self.layers]
        rows = max(64, min(len(x), EVAL_FLOATS // (g * max(dims))))
        bufs = [self._scratch(f"_eval{i % 2}", g * rows * max(dims), x.device) for i in range(2)]
        loss = torch.zeros(g, dtype=torch.float64, device=x.device)
        wrong = torch.zeros(g, dtype=torch.long, device=x.device)
        xf = x.reshape(len(x), -1)
        for i in range(0, len(x), rows):
            xb, yb = xf[i : i + rows], y[i : i + rows]
            r = len(xb)
            a = xb.unsqueeze(0).expand(g, r, xb.shape[1])
            for j, ((w, bn, relu), d) in enumerate(zip(self.layers, dims)):
                if j < len(dims) - 1:
                    h = bufs[j % 2][: g * r * d].view(g, r, d)
                    torch.baddbmm(P[bn].unsqueeze(1), a, P[w].transpose(1, 2), out=h)
                else:  # logits transposed, (g, C, r), as in step()
                    h = bufs[j % 2][: g * r * d].view(g, d, r)
                    torch.baddbmm(P[bn].unsqueeze(2), P[w], a.transpose(1, 2), out=h)
                if relu:
                    h.relu_()
                a = h
            yy = yb.unsqueeze(0).expand(g, -1)
            loss += F.cross_entropy(a, yy, reduction="none").sum(1)
            wrong += (a.max(1).indices != yy).sum(1)
        return loss, wrong


def forward_vmap(template, P, B, x, training: bool):
    from torch.func import functional_call, vmap

    template.train(training)
    return vmap(lambda p, xb: functional_call(template, p, (xb,)))(P, x)
