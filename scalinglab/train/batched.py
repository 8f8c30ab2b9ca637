"""Batched training: a group of G trials of one family and shape trained at once as one stacked model.

A scaling study trains hundreds of small models; one at a time, each leaves the machine idle (per-step
Python and dispatch overhead, tiny matrix products). `run_group(specs)` stacks the G models' parameters
along a leading axis and runs every layer as one batched op (`baddbmm` for linear layers, a grouped
convolution for conv layers, one `batch_norm` over G*C channels), so one optimizer step of the group
costs about one model's step of overhead, and the products are G times larger.

Each model keeps `run_trial`'s semantics and result keys:
- init: `torch.manual_seed(seed)` then build, exactly as `run_trial`; the G state dicts are stacked;
- data: its own nested subset (data_size) and its own `torch.Generator(seed)` stream of permutations,
  replayed exactly, as index tensors (G, steps, batch) built once per epoch event;
- its own "epoch" (max(one pass, min_steps_per_epoch steps)), patience, max_epochs, lr, weight decay,
  momentum. A model that stops is removed from the stacked state, so it stops costing compute;
- divergence: a non-finite loss leaves that model out of every later update (frozen where run_trial
  stops) and marks it "diverged" at its next epoch end, with the steps it had made. No op mixes models,
  so the others never see its NaNs.
Results equal `run_trial`'s up to floating-point reassociation (tests/test_batched.py checks the loss
trajectories step by step). `wall_time` of each result = the group's wall time / G: the group is one
computation and there is no honest per-model split.

Which specs share a group (`group_key`): same data set, model family / size / batchnorm, optimizer and
effective batch size min(batch_size, data_size). Seed, data size, lr, weight decay, momentum,
max_epochs, patience and min_steps_per_epoch may differ. Models of different widths are kept in
separate groups: a padded group costs the widest model's FLOPs for every member (benchmarks/trainer.py
--padding measures it; see docs/batched.md).

Plain ReLU MLPs in fp32 (no batch norm) on the bmm engine train without autograd: `_FusedMLP` writes
their forward and backward out by hand into preallocated buffers, and evaluates in cache-sized chunks.

Engines: "bmm" (hand-batched layers, the default: faster on CPU, see the benchmark) and "vmap"
(`torch.func.functional_call` under `vmap`, for families the bmm interpreter does not know; no batch
norm). Anything else falls back to `run_trial` per model.
"""

from __future__ import annotations

import json
import math
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from scalinglab import models as models_mod
from scalinglab.train.result import new_result
from scalinglab.train.trial import run_trial, steps_per_epoch, subset, trial_id

BMM_LAYERS = (nn.Flatten, nn.Linear, nn.Conv1d, nn.BatchNorm1d, nn.ReLU)
BMM_FAMILIES = ("mlp", "cnn1d")  # families whose leaf modules run in registration order
UNBATCHED_FAMILIES = ("transformer",)  # always run_trial (see group_key)
EVAL_ROWS = 1 << 16  # rows (models x examples) per evaluation chunk
EVAL_FLOATS = 1 << 21  # _FusedMLP.evaluate: floats per activation chunk (8 MB)
FUSED_MLP = True  # MLPs without batch norm on the fp32 bmm engine: hand-written step (_FusedMLP)


# ----------------------------------------------------------------------------------------------------
# Grouping and packing


def group_key(spec: dict) -> str:
    """Specs with equal keys can be trained in one group (see the module docstring)."""
    tr = spec["train"]
    if spec.get("aux"):  # weighting study (weighted loss, extra data): not batched, one group per spec
        return "aux:" + trial_id(spec)
    # byo: a user's factory model (its layers unknown) and the charlm transformer (int inputs, bits
    # metric) are not batched: one group per spec, which run_group hands to run_trial
    if spec["model"].get("factory") or spec["model"]["family"] in UNBATCHED_FAMILIES:
        return "single:" + trial_id(spec)
    return json.dumps({"data": spec["data"], "model": spec["model"], "optimizer": tr["optimizer"],
                       "batch": min(tr["batch_size"], spec["data_size"])}, sort_keys=True)


def model_bytes(spec: dict) -> int:
    """Rough bytes one model of `spec` needs inside a group: parameters x 5 (param, grad, 2 Adam moments,
    best state) + training activations x 3 (forward, saved, grad) + an evaluation chunk's activations."""
    ds = subset(spec["data"], 1)[0]
    model = models_mod.build(spec["model"]["family"], spec["model"]["size"], ds.input_shape, ds.n_classes,
                             batchnorm=spec["model"].get("batchnorm", False))
    act = [math.prod(ds.input_shape)]
    hooks = [m.register_forward_hook(lambda m, i, o: act.append(o[0].numel()))
             for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *ds.input_shape))
    for h in hooks:
        h.remove()
    bs = min(spec["train"]["batch_size"], spec["data_size"])
    n_par = sum(p.numel() for p in model.parameters())
    return 4 * (5 * n_par + 3 * bs * sum(act) + 1024 * sum(act))


def pack(specs: list[dict], max_group: int = 32, memory_budget: int | None = None) -> list[list[dict]]:
    """Split `specs` into groups of equal `group_key`, each of at most `max_group` models and, when a
    budget is given, at most `memory_budget` bytes (by `model_bytes`). Groups come in the order of their
    first spec (the plan order: smallest data first); a key's specs are split into near-equal groups."""
    by_key: dict[str, list[dict]] = {}
    for s in specs:
        by_key.setdefault(group_key(s), []).append(s)
    out = []
    for members in by_key.values():
        cap = max_group
        if memory_budget is not None and len(members) > 1:  # a group of one needs no cap (byo: nor a probe)
            cap = max(1, min(cap, memory_budget // max(1, model_bytes(members[0]))))
        k = math.ceil(len(members) / cap)
        cuts = [round(i * len(members) / k) for i in range(k + 1)]  # k near-equal groups
        out += [members[a:b] for a, b in zip(cuts, cuts[1:])]
    return out


def default_memory_budget(device: str) -> int:
    """Half the free accelerator memory on CUDA; 2 GiB on CPU (shared with the other workers)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.mem_get_info()[0] // 2
    return 2 << 30


# ----------------------------------------------------------------------------------------------------
# Stacked forward passes. P, B: {state-dict name: (G, ...)} parameters and buffers.


def _plan(model: nn.Module):
    return [(name, m) for name, m in model.named_modules() if not list(m.children())]


def _bmm_supported(family: str, model: nn.Module) -> bool:
    return family in BMM_FAMILIES and all(isinstance(m, BMM_LAYERS) for _, m in _plan(model))


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


CONV_2D = True  # conv layers as channels-last conv2d over (b, G*C, 1, L); False: grouped conv1d, (b, G*C, L)


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


def forward_bmm(plan, P, B, x, training: bool):
    """x: (G, b, *input_shape) -> logits (G, b, n_out). Layouts: (G, b, F) for linear layers,
    (b, G*C, 1, L) channels-last for conv layers (a grouped convolution with G groups; batch norm over
    G*C channels). oneDNN's channels-last conv2d with a 1 x K kernel ran forward + backward 1.9x faster
    than its grouped conv1d on these shapes (32 channels, length 10-40; benchmarks/trainer.py --cnn);
    CONV_2D = False keeps the conv1d form, (b, G*C, L)."""
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
                if CONV_2D:
                    x = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
                conv = True
            w = P[f"{name}.weight"]
            w, bias = w.reshape(-1, *w.shape[2:]), P[f"{name}.bias"].reshape(-1)
            if CONV_2D:
                x = F.conv2d(x, w.unsqueeze(2), bias, stride=(1, m.stride[0]), padding=(0, m.padding[0]),
                             groups=G)
            else:
                x = F.conv1d(x, w, bias, stride=m.stride, padding=m.padding, groups=G)
        elif isinstance(m, nn.BatchNorm1d):
            shape = x.shape
            xb = x if conv else x.transpose(0, 1).reshape(b, -1)  # (b, G*C[, 1, L])
            xb = F.batch_norm(xb, B[f"{name}.running_mean"].view(-1), B[f"{name}.running_var"].view(-1),
                              P[f"{name}.weight"].reshape(-1), P[f"{name}.bias"].reshape(-1),
                              training, m.momentum, m.eps)  # updates the stacked running stats in place
            x = xb if conv else xb.reshape(b, G, -1).transpose(0, 1).reshape(shape)
        elif isinstance(m, nn.ReLU):
            x = torch.relu(x)
        else:  # _bmm_supported guards this
            raise TypeError(f"forward_bmm: layer {name} ({type(m).__name__}) is not supported")
    return x


def _mlp_layers(plan):
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


class _FusedMLP:
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
        if self.shape is None or self.shape[:2] != (G, b) or self.shape[3] != tuple(
                P[w].data_ptr() for w, _, _ in self.layers):
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
            xb, yb = xf[i:i + rows], y[i:i + rows]
            r = len(xb)
            a = xb.unsqueeze(0).expand(g, r, xb.shape[1])
            for j, ((w, bn, relu), d) in enumerate(zip(self.layers, dims)):
                if j < len(dims) - 1:
                    h = bufs[j % 2][:g * r * d].view(g, r, d)
                    torch.baddbmm(P[bn].unsqueeze(1), a, P[w].transpose(1, 2), out=h)
                else:  # logits transposed, (g, C, r), as in step()
                    h = bufs[j % 2][:g * r * d].view(g, d, r)
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


# ----------------------------------------------------------------------------------------------------
# Optimizer over stacked parameters, with per-model hyper-parameters


class StackedOptimizer:
    """Adam / AdamW / SGD(momentum) on stacked params, with per-model lr, weight decay and momentum.

    Models with equal hyper-parameters form a bucket; each bucket is one call of torch's fused
    multi-tensor kernel (one pass over memory, the same update as torch.optim) on the stacked tensors,
    or on per-model slices (views) when hyper-parameters differ. The elementwise Adam/SGD of
    torch.optim's single-tensor path is the fallback where the fused kernels are missing. Slots in
    `dead` (diverged models) are left out, so they stay frozen exactly as run_trial leaves them."""

    FUSED = hasattr(torch, "_fused_adam_") and hasattr(torch, "_fused_sgd_")

    def __init__(self, kind: str, params: list, hparams: list[tuple], betas=(0.9, 0.999), eps=1e-8):
        # the same refusals as make_optimizer (one trial id, one outcome on either path)
        if kind not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}; allowed: adam, adamw, sgd")
        if any(not h[0] > 0 for h in hparams):
            raise ValueError(f"learning rates {[h[0] for h in hparams]}; allowed: > 0")
        self.kind, self.params, self.hp, self.betas, self.eps, self.t = kind, params, hparams, betas, eps, 0
        n_state = 1 if kind == "sgd" else 2
        self.state = [[torch.zeros_like(p) for p in params] for _ in range(n_state)]
        self.step_t = torch.zeros((), dtype=torch.float32, device=params[0].device)
        self._views = {}  # (dead, grads) -> per-bucket views, rebuilt after select()

    @torch.no_grad()
    def step(self, dead=frozenset(), grads: list | None = None):
        """One update. grads: the gradients in the order of `params` (the fused MLP step's persistent
        buffers, whose bucket views are cached with the params'); None: each param's .grad (autograd),
        cleared afterwards."""
        self.t += 1
        self.step_t.fill_(self.t)
        key = (frozenset(dead), None if grads is None else id(grads[0]))
        if key not in self._views:
            buckets: dict[tuple, list[int]] = {}
            for s, hp in enumerate(self.hp):
                if s not in dead:
                    buckets.setdefault(hp, []).append(s)
            views = []
            for hp, slots in buckets.items():
                if len(slots) == len(self.hp):
                    take = lambda ts: list(ts)  # noqa: E731  (whole stacked tensors)
                elif slots == list(range(slots[0], slots[-1] + 1)):  # contiguous (the trainer sorts by hp)
                    take = lambda ts, a=slots[0], b=slots[-1] + 1: [t[a:b] for t in ts]  # noqa: E731
                else:
                    take = lambda ts, slots=slots: [t[s] for t in ts for s in slots]  # noqa: E731  (per-model views)
                views.append((hp, take, take(self.params), [take(x) for x in self.state],
                              None if grads is None else take(grads)))
            self._views = {key: views}
        for (lr, wd, mom), take, ps, st, gs in self._views[key]:
            if gs is None:
                gs = take([p.grad for p in self.params])
            if self.kind == "sgd":
                self._sgd(ps, gs, st[0], lr, wd, mom)
            else:
                self._adam(ps, gs, st[0], st[1], lr, wd)
        if grads is None:
            for p in self.params:
                p.grad = None

    def _adam(self, ps, gs, ms, vs, lr, wd):
        b1, b2 = self.betas
        if self.FUSED:
            fn = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
            fn(ps, gs, ms, vs, [], [self.step_t] * len(ps), lr=lr, beta1=b1, beta2=b2, weight_decay=wd,
               eps=self.eps, amsgrad=False, maximize=False)
            return
        for p, g, m, v in zip(ps, gs, ms, vs):  # torch.optim.adam._single_tensor_adam
            if self.kind == "adamw":
                p.mul_(1 - lr * wd)
            elif wd:
                g = g.add(p, alpha=wd)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(1 - b2 ** self.t)).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / (1 - b1 ** self.t))

    def _sgd(self, ps, gs, bufs, lr, wd, mom):
        if self.FUSED:
            torch._fused_sgd_(ps, gs, bufs if mom else [], weight_decay=wd, momentum=mom, lr=lr, dampening=0.0,
                              nesterov=False, maximize=False, is_first_step=self.t == 1)
            return
        for p, g, buf in zip(ps, gs, bufs):  # torch.optim.sgd._single_tensor_sgd, zero-initialised buffer
            d = g.add(p, alpha=wd) if wd else g
            if mom:
                d = buf.mul_(mom).add_(d)
            p.add_(d, alpha=-lr)

    def select(self, keep: list[int], params: list):
        self.params, self.hp = params, [self.hp[s] for s in keep]
        kt = torch.as_tensor(keep, device=params[0].device)
        self.state = [[t[kt] for t in st] for st in self.state]
        self._views = {}


# ----------------------------------------------------------------------------------------------------
# The group trainer


class _DataOrder:
    """One model's batch order, replayed exactly as run_trial draws it (new permutation when the next
    batch would run past the end of the subset)."""

    def __init__(self, n: int, bs: int, seed: int):
        self.n, self.bs, self.pos = n, bs, 0
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.gen)

    def take(self, k: int) -> torch.Tensor:  # (k, bs) positions in the subset
        out = []
        while k:
            if self.pos + self.bs > self.n:
                self.perm, self.pos = torch.randperm(self.n, generator=self.gen), 0
            j = min(k, (self.n - self.pos) // self.bs)
            out.append(self.perm[self.pos:self.pos + j * self.bs].view(j, self.bs))
            self.pos += j * self.bs
            k -= j
        return torch.cat(out)


def _fused_single(spec: dict, key: str, device: str) -> bool:
    """A group of one goes through the group trainer only where that trainer skips autograd: a plain
    fp32 MLP (no batch norm) on the CPU, whose hand-written step (_FusedMLP) trained one model 1.4x
    (width 512) to 2.7x (width 32) faster than run_trial (benchmarks/trainer.py --single). Elsewhere
    (CNNs, batch norm, CUDA's autocast path, and the specs group_key keeps apart: auxiliary data, byo
    factories) one model gains nothing and run_trial, the reference, trains it."""
    return (FUSED_MLP and device == "cpu" and not key.startswith(("aux:", "single:"))
            and spec["model"]["family"] == "mlp" and not spec["model"].get("batchnorm", False))


def run_group(specs: list[dict], device: str = "cpu", *, engine: str = "auto", amp: bool | None = None,
              compile: bool = False, fallback: bool = True) -> list[dict]:
    """Train `specs` (all of one `group_key`) together; return their results in order, each with the keys
    and meaning of `run_trial`'s result.

    engine: "auto" (bmm where supported, else vmap, else run_trial per model), "bmm" or "vmap".
    amp: bf16 autocast for the forward pass; default on for CUDA, off on CPU (fp32, as run_trial).
    compile: wrap the forward pass in torch.compile (CUDA use; recompiles as the group shrinks).
    fallback: on an unexpected error of the batched path (not a training problem), warn and train each
    model alone with run_trial; False re-raises (tests).
    """
    if not specs:
        return []
    keys = {group_key(s) for s in specs}
    if len(keys) > 1:
        raise ValueError(f"run_group: the specs fall into {len(keys)} groups; split them with pack() first")
    if len(specs) == 1 and engine == "auto" and not _fused_single(specs[0], next(iter(keys)), device):
        return [run_trial(specs[0], device)]
    t0 = time.perf_counter()
    try:
        results = _GroupTrainer(specs, device, engine, amp, compile).run()
    except _Unsupported:
        return [run_trial(s, device) for s in specs]
    except Exception as e:
        if not fallback:
            raise
        warnings.warn(f"run_group: batched training failed ({type(e).__name__}: {e}); "
                      f"training the {len(specs)} models one at a time")
        return [run_trial(s, device) for s in specs]
    wall = (time.perf_counter() - t0) / len(specs)
    for r in results:
        r["wall_time"] = wall
    return results


class _Unsupported(Exception):
    pass


class _GroupTrainer:
    def __init__(self, specs, device, engine, amp, compile):
        self.specs, self.device, self.dev = specs, device, torch.device(device)
        s0 = specs[0]
        ms, self.kind = s0["model"], s0["train"]["optimizer"]
        self.ds = ds = subset(s0["data"], 1)[0]
        order = subset(s0["data"], ds.x_train.shape[0])[1]
        self.order = torch.as_tensor(order, device=self.dev)  # nested subsets are prefixes of this order
        self.x = torch.as_tensor(ds.x_train, device=self.dev)
        self.y = torch.as_tensor(ds.y_train, device=self.dev)

        built = []
        for s in specs:  # init exactly as run_trial: models are built on the CPU, from its generator
            # (torch.manual_seed would also queue CUDA/XPU/MTIA seeding with a formatted traceback each
            # time, ~0.4 ms per model while CUDA is not initialised; the batched families use no dropout)
            torch.default_generator.manual_seed(s["seed"])
            built.append(models_mod.build(ms["family"], ms["size"], ds.input_shape, ds.n_classes,
                                          batchnorm=ms.get("batchnorm", False)))
        self.template = built[0].to(self.dev)
        bn = any(isinstance(m, nn.BatchNorm1d) for m in self.template.modules())
        if engine == "auto":
            engine = "bmm" if _bmm_supported(ms["family"], self.template) else ("vmap" if not bn else None)
        if engine is None or (engine == "vmap" and bn) or (
                engine == "bmm" and not _bmm_supported(ms["family"], self.template)):
            raise _Unsupported(engine)
        self.engine, self.plan = engine, _plan(self.template)
        self.info = {"params": self.template.n_params(),
                     "train_flops_per_example": 3 * self.template.forward_flops()}
        pnames = [n for n, _ in self.template.named_parameters()]
        bnames = [n for n, b in self.template.named_buffers() if b.is_floating_point()]
        self.amp = (self.dev.type == "cuda") if amp is None else amp
        layers = _mlp_layers(self.plan) if engine == "bmm" and not self.amp and not compile else None
        self.mlp = _FusedMLP(layers) if layers and FUSED_MLP else None  # else autograd over forward_bmm
        sds = [m.state_dict() for m in built]
        G = len(specs)
        tr = [s["train"] for s in specs]
        hp = [(t["lr"], t.get("weight_decay", 0.0), t.get("momentum", 0.9)) for t in tr]
        # slots in hyper-parameter order (stable): each optimizer bucket is a contiguous slice of the stack
        self.active = sorted(range(G), key=lambda m: hp[m])  # model index of each slot
        self.P = {n: torch.stack([sds[m][n] for m in self.active]).to(self.dev).requires_grad_(self.mlp is None)
                  for n in pnames}
        self.B = {n: torch.stack([sds[m][n] for m in self.active]).to(self.dev) for n in bnames}
        self.best = {n: torch.stack([sd[n] for sd in sds]).to(self.dev) for n in pnames + bnames}  # by model index

        self.fwd = forward_bmm if engine == "bmm" else forward_vmap
        if compile:
            self.fwd = torch.compile(self.fwd, dynamic=True)

        self.opt = StackedOptimizer(self.kind, list(self.P.values()), [hp[m] for m in self.active])
        self.n = [s["data_size"] for s in specs]
        self.bs = min(tr[0]["batch_size"], self.n[0])  # equal in a group (group_key)
        self.spe = [steps_per_epoch(n, t) for n, t in zip(self.n, tr)]
        self.orders = [_DataOrder(n, self.bs, s["seed"]) for n, s in zip(self.n, specs)]
        self.first_bad = {}  # slot -> global step of its first non-finite loss (its update count)
        self.tot_loss = torch.zeros(G, dtype=torch.float64, device=self.dev)
        self.tot_wrong = torch.zeros(G, dtype=torch.long, device=self.dev)
        self.epoch_start = [0] * G  # global step at which each model's current epoch began
        self.hist = [[] for _ in range(G)]
        self.best_err, self.best_epoch, self.since = [math.inf] * G, [None] * G, [0] * G
        self.results = [None] * G

    # -- forward / evaluation ------------------------------------------------------------------------

    def forward(self, P, B, x, training):
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            if self.engine == "bmm":
                return self.fwd(self.plan, P, B, x, training).float()
            return self.fwd(self.template, P, B, x, training).float()

    @torch.no_grad()
    def evaluate(self, P, B, x, y):
        """Stacked (P, B) of g models on shared (x, y), eval mode -> (mean CE (g,), error (g,)) lists."""
        if self.mlp is not None:
            loss, wrong = self.mlp.evaluate(P, x, y)
            return (loss / len(x)).tolist(), (wrong.double() / len(x)).tolist()
        g = next(iter(P.values())).shape[0]
        loss = torch.zeros(g, dtype=torch.float64, device=self.dev)
        wrong = torch.zeros(g, dtype=torch.long, device=self.dev)
        rows = max(256, EVAL_ROWS // g)
        for i in range(0, len(x), rows):
            xb, yb = x[i:i + rows], y[i:i + rows]
            logits = self.forward(P, B, xb.unsqueeze(0).expand(g, *xb.shape), False)  # (g, r, C)
            yy = yb.unsqueeze(0).expand(g, -1)
            loss += F.cross_entropy(logits.transpose(1, 2), yy, reduction="none").sum(1)
            wrong += (logits.argmax(-1) != yy).sum(1)
        return (loss / len(x)).tolist(), (wrong.double() / len(x)).tolist()

    def _sub(self, d, slots):
        if list(slots) == list(range(len(self.active))):  # the whole stack (the usual epoch end): no copy
            return {k: v.detach() for k, v in d.items()}
        idx = torch.as_tensor(slots, device=self.dev)
        return {k: v.detach()[idx] for k, v in d.items()}

    # -- training --------------------------------------------------------------------------------------

    def run(self):
        step = 0
        while self.active:
            nxt = [self.epoch_start[m] + self.spe[m] for m in self.active]
            t_next = min(nxt)
            k = t_next - step
            # (G, k, bs) pool indices: each model's own subset positions, mapped through the split order
            sched = self.order[torch.stack([self.orders[m].take(k) for m in self.active]).to(self.dev)]
            for j in range(k):
                self.train_step(sched[:, j], step + j)
            step = t_next
            self.epoch_end([s for s, t in enumerate(nxt) if t == step], step)
        return self.results

    def train_step(self, idx, step):  # idx: (G, bs)
        if self.mlp is not None:
            pred, losses = self.mlp.step(self.P, self.x, self.y, idx)
            yb, grads = self.mlp.Y, [self.mlp.grads[n] for n in self.P]
        else:
            xb, yb, grads = self.x[idx], self.y[idx], None
            logits = self.forward(self.P, self.B, xb, True)  # (G, bs, C)
            ce = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none")  # (G, bs)
            losses = ce.mean(1)
            losses.sum().backward()  # models are independent: each gets its own gradient
            pred = logits.argmax(-1)
        finite = torch.isfinite(losses)
        if not bool(finite.all()):  # a host sync: free on CPU, a few us per step on CUDA
            for s in (~finite).nonzero().flatten().tolist():
                self.first_bad.setdefault(s, step)
        self.opt.step(self.first_bad.keys(), grads)  # a diverged model is frozen where run_trial stops it
        with torch.no_grad():
            self.tot_loss += losses.detach().double() * self.bs
            self.tot_wrong += (pred != yb).sum(1)

    def epoch_end(self, ending, step):
        """Slots in `ending` finished an epoch at global step `step`: evaluate, record, stop."""
        stop = {s: "diverged" for s in self.first_bad}  # slot -> status
        ev = [s for s in ending if s not in stop]
        if ev:
            dev_loss, dev_err = self.evaluate(self._sub(self.P, ev), self._sub(self.B, ev),
                                              torch.as_tensor(self.ds.x_dev, device=self.dev),
                                              torch.as_tensor(self.ds.y_dev, device=self.dev))
            tl, tw = self.tot_loss.tolist(), self.tot_wrong.tolist()
            improved = []
            for s, dl, de in zip(ev, dev_loss, dev_err):
                m = self.active[s]
                if not math.isfinite(dl):
                    stop[s] = "diverged"
                    continue
                seen = (step - self.epoch_start[m]) * self.bs
                h = self.hist[m]
                h.append({"epoch": len(h) + 1, "train_loss": tl[s] / seen, "train_error": tw[s] / seen,
                          "dev_loss": dl, "dev_error": de})
                if de < self.best_err[m]:
                    self.best_err[m], self.since[m], self.best_epoch[m] = de, 0, len(h)
                    improved.append(s)
                else:
                    self.since[m] += 1
                    if self.since[m] >= self.specs[m]["train"]["patience"]:
                        stop[s] = "ok"
                if len(h) >= self.specs[m]["train"]["max_epochs"] and s not in stop:
                    stop[s] = "ok"
                self.epoch_start[m] = step
            if improved:
                idx = torch.as_tensor([self.active[s] for s in improved], device=self.dev)
                sl = torch.as_tensor(improved, device=self.dev)
                for k, v in {**self.P, **self.B}.items():
                    self.best[k][idx] = v.detach()[sl]
            with torch.no_grad():
                sl = torch.as_tensor(ev, device=self.dev)
                self.tot_loss[sl], self.tot_wrong[sl] = 0, 0
        if stop:
            self.finish(stop)

    def finish(self, stop: dict):
        """Write the results of the stopping slots and drop them from the stacked state."""
        slots = sorted(stop)
        with_hist = [s for s in slots if self.hist[self.active[s]]]
        final = {}
        for n in sorted({self.n[self.active[s]] for s in with_hist}):  # equal n: the same subset
            same = [s for s in with_hist if self.n[self.active[s]] == n]
            sub = self.order[:n]
            fl, fe = self.evaluate(self._sub(self.P, same), self._sub(self.B, same), self.x[sub], self.y[sub])
            final.update({s: (a, b) for s, a, b in zip(same, fl, fe)})
        if with_hist:
            idx = torch.as_tensor([self.active[s] for s in with_hist], device=self.dev)
            best = {k: v[idx] for k, v in self.best.items()}
            _, te = self.evaluate({k: best[k] for k in self.P}, {k: best[k] for k in self.B},
                                  torch.as_tensor(self.ds.x_test, device=self.dev),
                                  torch.as_tensor(self.ds.y_test, device=self.dev))
            test = dict(zip(with_hist, te))
        for s in slots:
            m = self.active[s]
            spec, h = self.specs[m], self.hist[m]
            steps = self.first_bad.get(s, self.epoch_start[m])
            if stop[s] == "diverged" and s not in self.first_bad:  # non-finite dev loss: it made the epoch's steps
                steps = self.epoch_start[m] + self.spe[m]
            r = new_result(trial_id(spec), self.device)
            r.update({"status": stop[s], "history": h, "epochs": len(h), "steps": steps, **self.info,
                      "train_flops": self.info["train_flops_per_example"] * steps * self.bs})
            if h:
                r["final_train_loss"], r["final_train_error"] = final[s]
                r["min_dev_error"], r["best_epoch"] = self.best_err[m], self.best_epoch[m]
                r["test_error"] = test[s]
            if stop[s] == "diverged":
                r["error"] = f"non-finite loss at epoch {len(h) + 1}"
            self.results[m] = r
        keep = [s for s in range(len(self.active)) if s not in stop]
        if keep:
            kt = torch.as_tensor(keep, device=self.dev)
            self.P = {k: v.detach()[kt].requires_grad_(self.mlp is None) for k, v in self.P.items()}
            self.B = {k: v[kt] for k, v in self.B.items()}
            self.opt.select(keep, list(self.P.values()))
            self.tot_loss, self.tot_wrong = self.tot_loss[kt], self.tot_wrong[kt]
        self.first_bad = {}  # every diverged slot has just stopped
        self.active = [self.active[s] for s in keep]
