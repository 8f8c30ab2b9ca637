"""An optimizer over stacked parameters with per-model hyper-parameters (for `train/batched.py`).

Adam / AdamW / SGD with momentum, each model with its own lr, weight decay and momentum, the same update
as torch.optim. The fast path is torch's fused multi-tensor kernels, which are private
(`torch._fused_adam_`, `_fused_adamw_`, `_fused_sgd_`: a torch release may drop or change them); the
fallback is torch.optim's own public functional path with `foreach=True` (2-7x slower per step,
benchmarks/trainer.py --optimizer), checked against torch.optim in tests/test_batched.py.
"""

from __future__ import annotations

import torch
from torch.optim.adam import adam as _adam_functional
from torch.optim.sgd import sgd as _sgd_functional


class StackedOptimizer:
    """Adam / AdamW / SGD(momentum) on stacked params, with per-model lr, weight decay and momentum.

    Models with equal hyper-parameters form a bucket; each bucket is one call of torch's fused
    multi-tensor kernel (one pass over memory, the same update as torch.optim) on the stacked tensors,
    or on per-model slices (views) when hyper-parameters differ. Where the fused kernels are missing
    (or `fused=False`), each bucket goes through torch.optim's functional `adam` / `sgd` with
    `foreach=True`: public, the same arithmetic, 2-7x slower per optimizer step on CPU
    (benchmarks/trainer.py --optimizer: 0.28 vs 0.04 ms for 16 width-64 MLPs under Adam). Slots in
    `dead` (diverged models) are left out, so they stay frozen exactly as run_trial leaves them."""

    FUSED = hasattr(torch, "_fused_adam_") and hasattr(torch, "_fused_adamw_") and hasattr(torch, "_fused_sgd_")

    def __init__(
        self, kind: str, params: list, hparams: list[tuple], betas=(0.9, 0.999), eps=1e-8, fused: bool | None = None
    ):
        # the same refusals as make_optimizer (one trial id, one outcome on either path)
        if kind not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {kind!r}; allowed: adam, adamw, sgd")
        if any(not h[0] > 0 for h in hparams):
            raise ValueError(f"learning rates {[h[0] for h in hparams]}; allowed: > 0")
        self.kind, self.params, self.hp, self.betas, self.eps, self.t = kind, params, hparams, betas, eps, 0
        self.fused = self.FUSED if fused is None else (fused and self.FUSED)
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
                views.append(
                    (hp, take, take(self.params), [take(x) for x in self.state], None if grads is None else take(grads))
                )
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
        hp = {
            "lr": lr,
            "beta1": b1,
            "beta2": b2,
            "weight_decay": wd,
            "eps": self.eps,
            "amsgrad": False,
            "maximize": False,
        }
        if self.fused:  # private kernels: read the step count, update in one pass
            fn = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
            fn(ps, gs, ms, vs, [], [self.step_t] * len(ps), **hp)
            return
        # the public path increments its step tensors itself: hand it t - 1
        steps = [torch.tensor(float(self.t - 1)) for _ in ps]
        _adam_functional(ps, gs, ms, vs, [], steps, foreach=True, decoupled_weight_decay=self.kind == "adamw", **hp)

    def _sgd(self, ps, gs, bufs, lr, wd, mom):
        if self.fused:
            torch._fused_sgd_(
                ps,
                gs,
                bufs if mom else [],
                weight_decay=wd,
                momentum=mom,
                lr=lr,
                dampening=0.0,
                nesterov=False,
                maximize=False,
                is_first_step=self.t == 1,
            )
            return
        # zero-initialised buffers: mom * 0 + g at the first step, as torch.optim's clone of g
        _sgd_functional(
            ps,
            gs,
            list(bufs) if mom else [None] * len(ps),
            foreach=True,
            weight_decay=wd,
            momentum=mom,
            lr=lr,
            dampening=0.0,
            nesterov=False,
            maximize=False,
        )

    def select(self, keep: list[int], params: list):
        self.params, self.hp = params, [self.hp[s] for s in keep]
        kt = torch.as_tensor(keep, device=params[0].device)
        self.state = [[t[kt] for t in st] for st in self.state]
        self._views = {}
