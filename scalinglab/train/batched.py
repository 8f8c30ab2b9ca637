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

Which specs share a group: `train/packing.py`. The stacked layer ops and the hand-written MLP step:
`train/stacked.py`; the optimizer: `train/stacked_optim.py`; this module: the group trainer.

Plain ReLU MLPs in fp32 (no batch norm) on the bmm engine train without autograd: `FusedMLP` writes
their forward and backward out by hand into preallocated buffers, and evaluates in cache-sized chunks.

Engines: "bmm" (hand-batched layers, the default: faster on CPU, see the benchmark) and "vmap"
(`torch.func.functional_call` under `vmap`, for families the bmm interpreter does not know; no batch
norm). Anything else falls back to `run_trial` per model.
"""

from __future__ import annotations

import math
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from scalinglab import models as models_mod
from scalinglab.train import resume
from scalinglab.train.packing import group_key
from scalinglab.train.result import new_result
from scalinglab.train.stacked import FusedMLP, bmm_supported, forward_bmm, forward_vmap, mlp_layers, plan
from scalinglab.train.stacked_optim import StackedOptimizer
from scalinglab.train.trial import run_trial, steps_per_epoch, subset, trial_id

EVAL_ROWS = 1 << 16  # rows (models x examples) per evaluation chunk


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
            out.append(self.perm[self.pos : self.pos + j * self.bs].view(j, self.bs))
            self.pos += j * self.bs
            k -= j
        return torch.cat(out)


def _fused_single(spec: dict, key: str, device: str, fused_mlp: bool) -> bool:
    """A group of one goes through the group trainer only where that trainer skips autograd: a plain
    fp32 MLP (no batch norm) on the CPU, whose hand-written step (FusedMLP) trained one model 1.4x
    (width 512) to 2.7x (width 32) faster than run_trial (benchmarks/trainer.py --single). Elsewhere
    (CNNs, batch norm, CUDA's autocast path, and the specs group_key keeps apart: auxiliary data, byo
    factories) one model gains nothing and run_trial, the reference, trains it."""
    return (
        fused_mlp
        and device == "cpu"
        and not key.startswith(("aux:", "single:"))
        and spec["model"]["family"] == "mlp"
        and not spec["model"].get("batchnorm", False)
        and spec["model"].get("activation") in (None, "relu")  # FusedMLP is written for ReLU
    )


def run_group(
    specs: list[dict],
    device: str = "cpu",
    *,
    engine: str = "auto",
    amp: bool | None = None,
    compile: bool = False,
    fallback: bool = True,
    fused_mlp: bool = True,
    conv_2d: bool = True,
) -> list[dict]:
    """Train `specs` (all of one `group_key`) together; return their results in order, each with the keys
    and meaning of `run_trial`'s result.

    engine: "auto" (bmm where supported, else vmap, else run_trial per model), "bmm" or "vmap".
    amp: bf16 autocast for the forward pass; default on for CUDA, off on CPU (fp32, as run_trial).
    compile: wrap the forward pass in torch.compile (CUDA use; recompiles as the group shrinks).
    fallback: on an unexpected error of the batched path (not a training problem), warn and train each
    model alone with run_trial; False re-raises (tests).
    fused_mlp: plain fp32 MLPs on the bmm engine take the hand-written step (stacked.FusedMLP); False:
    autograd over forward_bmm (the reference the tests compare it with).
    conv_2d: conv layers as channels-last conv2d (the default, faster on CPU); False: grouped conv1d.
    """
    if not specs:
        return []
    keys = {group_key(s) for s in specs}
    if len(keys) > 1:
        raise ValueError(f"run_group: the specs fall into {len(keys)} groups; split them with pack() first")
    # models that go on from a rung's snapshot (train/resume.py) share the optimizer's step count only
    # with models that start at the same step: one group per starting step
    snaps = [resume.peek(s) for s in specs]
    if len(specs) > 1 and any(resume.finished(sn, s) for sn, s in zip(snaps, specs)):
        # a rung that had stopped early left its trial nothing to train: run_trial only evaluates it
        done = [i for i, (sn, s) in enumerate(zip(snaps, specs)) if resume.finished(sn, s)]
        rest = [i for i in range(len(specs)) if i not in done]
        kw = dict(engine=engine, amp=amp, compile=compile, fallback=fallback, fused_mlp=fused_mlp, conv_2d=conv_2d)
        out = [None] * len(specs)
        for i in done:
            out[i] = run_trial(specs[i], device)
        for i, r in zip(rest, run_group([specs[i] for i in rest], device, **kw)):
            out[i] = r
        return out
    starts = [(sn or {}).get("steps", 0) for sn in snaps]
    if len(set(starts)) > 1:
        kw = dict(engine=engine, amp=amp, compile=compile, fallback=fallback, fused_mlp=fused_mlp, conv_2d=conv_2d)
        out = [None] * len(specs)
        for t0 in sorted(set(starts)):
            idx = [i for i, t in enumerate(starts) if t == t0]
            for i, r in zip(idx, run_group([specs[i] for i in idx], device, **kw)):
                out[i] = r
        return out
    if len(specs) == 1 and (
        resume.finished(snaps[0], specs[0])
        or (engine == "auto" and not _fused_single(specs[0], next(iter(keys)), device, fused_mlp))
    ):
        return [run_trial(specs[0], device)]
    t0 = time.perf_counter()
    try:
        results = _GroupTrainer(specs, device, engine, amp, compile, fused_mlp, conv_2d).run()
    except _Unsupported:
        return [run_trial(s, device) for s in specs]
    except Exception as e:
        if not fallback:
            raise
        warnings.warn(
            f"run_group: batched training failed ({type(e).__name__}: {e}); "
            f"training the {len(specs)} models one at a time",
            stacklevel=2,
        )
        return [run_trial(s, device) for s in specs]
    wall = (time.perf_counter() - t0) / len(specs)
    for r in results:
        r["wall_time"] = wall
    return results


class _Unsupported(Exception):
    pass


class _GroupTrainer:
    def __init__(self, specs, device, engine, amp, compile, fused_mlp=True, conv_2d=True):
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
            # build_spec: the spec's activation and init too (a group shares them: group_key keys on
            # the whole model entry), so each member starts from run_trial's very weights
            built.append(models_mod.build_spec(ms, ds.input_shape, ds.n_classes))
        self.template = built[0].to(self.dev)
        bn = any(isinstance(m, nn.BatchNorm1d) for m in self.template.modules())
        if engine == "auto":
            engine = "bmm" if bmm_supported(ms["family"], self.template) else ("vmap" if not bn else None)
        if (
            engine is None
            or (engine == "vmap" and bn)
            or (engine == "bmm" and not bmm_supported(ms["family"], self.template))
        ):
            raise _Unsupported(engine)
        self.engine, self.plan = engine, plan(self.template)
        self.info = {"params": self.template.n_params(), "train_flops_per_example": 3 * self.template.forward_flops()}
        pnames = [n for n, _ in self.template.named_parameters()]
        bnames = [n for n, b in self.template.named_buffers() if b.is_floating_point()]
        self.amp = (self.dev.type == "cuda") if amp is None else amp
        layers = mlp_layers(self.plan) if engine == "bmm" and not self.amp and not compile else None
        self.mlp = FusedMLP(layers) if layers and fused_mlp else None  # else autograd over forward_bmm
        sds = [m.state_dict() for m in built]
        snaps = [resume.take(s) for s in specs]  # a rung's state to go on from (all at one step: run_group)
        best_sds = list(sds)
        for m, sn in enumerate(snaps):
            if sn:
                sds[m] = {**sds[m], **sn["state"]}
                best_sds[m] = {**sds[m], **sn["best_state"]}
        G = len(specs)
        tr = [s["train"] for s in specs]
        hp = [(t["lr"], t.get("weight_decay", 0.0), t.get("momentum", 0.9)) for t in tr]
        # slots in hyper-parameter order (stable): each optimizer bucket is a contiguous slice of the stack
        self.active = sorted(range(G), key=lambda m: hp[m])  # model index of each slot
        self.P = {
            n: torch.stack([sds[m][n] for m in self.active]).to(self.dev).requires_grad_(self.mlp is None)
            for n in pnames
        }
        self.B = {n: torch.stack([sds[m][n] for m in self.active]).to(self.dev) for n in bnames}
        self.best = {n: torch.stack([sd[n] for sd in best_sds]).to(self.dev) for n in pnames + bnames}  # by model

        self.conv_2d = conv_2d
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
        self.step0 = [0] * G  # steps a model made before this group (in its rung)
        for slot, m in enumerate(self.active):
            sn = snaps[m]
            if not sn:
                continue
            self.opt.t = sn["steps"]  # equal for every model of the group (run_group)
            for i, (mm, vv) in enumerate(zip(sn["opt"]["m"], sn["opt"]["v"] or [None] * len(sn["opt"]["m"]))):
                for st, val in zip(self.opt.state, (mm, vv)):
                    if val is not None:
                        st[i][slot] = val.to(self.dev)
            o = self.orders[m]
            o.gen.set_state(sn["gen"])
            o.perm, o.pos = sn["perm"], sn["pos"]
            self.hist[m] = [dict(h) for h in sn["history"]]
            self.best_err[m], self.best_epoch[m], self.since[m] = sn["best"], sn["best_epoch"], sn["since"]
            self.step0[m] = sn["steps"]

    # -- forward / evaluation ------------------------------------------------------------------------

    def forward(self, P, B, x, training):
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.amp):
            if self.engine == "bmm":
                return self.fwd(self.plan, P, B, x, training, self.conv_2d).float()
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
            xb, yb = x[i : i + rows], y[i : i + rows]
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
            dev_loss, dev_err = self.evaluate(
                self._sub(self.P, ev),
                self._sub(self.B, ev),
                torch.as_tensor(self.ds.x_dev, device=self.dev),
                torch.as_tensor(self.ds.y_dev, device=self.dev),
            )
            tl, tw = self.tot_loss.tolist(), self.tot_wrong.tolist()
            improved = []
            for s, dl, de in zip(ev, dev_loss, dev_err):
                m = self.active[s]
                if not math.isfinite(dl):
                    stop[s] = "diverged"
                    continue
                seen = (step - self.epoch_start[m]) * self.bs
                h = self.hist[m]
                h.append(
                    {
                        "epoch": len(h) + 1,
                        "train_loss": tl[s] / seen,
                        "train_error": tw[s] / seen,
                        "dev_loss": dl,
                        "dev_error": de,
                    }
                )
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
            _, te = self.evaluate(
                {k: best[k] for k in self.P},
                {k: best[k] for k in self.B},
                torch.as_tensor(self.ds.x_test, device=self.dev),
                torch.as_tensor(self.ds.y_test, device=self.dev),
            )
            test = dict(zip(with_hist, te))
        for s in slots:
            m = self.active[s]
            spec, h = self.specs[m], self.hist[m]
            steps = self.first_bad.get(s, self.epoch_start[m])
            if stop[s] == "diverged" and s not in self.first_bad:  # non-finite dev loss: it made the epoch's steps
                steps = self.epoch_start[m] + self.spe[m]
            steps += self.step0[m]
            if resume.wants_snapshot(spec, stop[s]):
                self.snapshot(s, m, steps)
            r = new_result(trial_id(spec), self.device)
            r.update(
                {
                    "status": stop[s],
                    "history": h,
                    "epochs": len(h),
                    "steps": steps,
                    **self.info,
                    "train_flops": self.info["train_flops_per_example"] * steps * self.bs,
                    "resumed_flops": self.info["train_flops_per_example"] * self.step0[m] * self.bs,
                }
            )
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

    def snapshot(self, s: int, m: int, steps: int) -> None:
        """Leave slot s (model m, a rung at its budget) for its full trial to go on from (resume.py)."""
        o = self.orders[m]
        cpu = lambda t: t.detach().cpu().clone()  # noqa: E731
        resume.save(
            self.specs[m],
            {
                "state": {k: cpu(v[s]) for k, v in {**self.P, **self.B}.items()},
                "opt": {
                    "t": self.opt.t,
                    "m": [cpu(t[s]) for t in self.opt.state[0]],
                    "v": [cpu(t[s]) for t in self.opt.state[1]] if len(self.opt.state) > 1 else None,
                },
                "gen": o.gen.get_state(),
                **{"perm": o.perm.clone(), "pos": o.pos, "steps": steps, "since": self.since[m]},
                **{
                    "best": self.best_err[m],
                    "best_epoch": self.best_epoch[m],
                    "history": [dict(h) for h in self.hist[m]],
                },
                "best_state": {k: cpu(v[m]) for k, v in self.best.items()},
            },
        )
