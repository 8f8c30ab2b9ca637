"""One trial = one model of one size trained on one nested subset with one seed.

`run_trial(spec)` is pure: its result depends only on the spec (and on floating-point reassociation
across devices/thread counts), which is why the store can key trials by a hash of the spec and why
backends only decide *where* it runs. It never raises for a training problem: a NaN/inf loss returns
`status="diverged"`, any other exception `status="failed"` with the error text.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
import traceback
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from scalinglab import data as data_mod
from scalinglab import models as models_mod
from scalinglab.train import resume
from scalinglab.train.result import new_result

SPEC_VERSION = 1  # bump when a change to training makes old results incomparable


def trial_id(spec: dict) -> str:
    """Stable id of a trial: sha256 of its canonical JSON (sorted keys).

    The spec's "env" entry is left out: it says where the trial runs (the study file's folder, the
    per-trial work folders), not what it is, so a moved study folder keeps its trial ids."""
    blob = json.dumps(
        {"v": SPEC_VERSION, **{k: v for k, v in spec.items() if k != "env"}}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def resolve_device(device: str = "auto", field: str = "--device") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from scalinglab.errors import UserError

        raise UserError(f"{field}: given 'cuda'; allowed: auto or cpu (no CUDA device is visible to torch)")
    return device


@lru_cache(maxsize=8)
def _subset_order(name: str, options_json: str, split_seed: int) -> np.ndarray:
    ds = data_mod.load(name, json.loads(options_json))
    return data_mod.stratified_order(ds.y_train, split_seed)


def subset(spec_data: dict, n: int):
    """(dataset, indices of the nested subset of size n)."""
    ds = data_mod.load(spec_data["name"], spec_data.get("options", {}))
    order = _subset_order(
        spec_data["name"], json.dumps(spec_data.get("options", {}), sort_keys=True), spec_data.get("split_seed", 0)
    )
    return ds, order[:n]


def make_optimizer(params, tr: dict):
    # No silent fallback: an unknown name once trained as Adam (the study loader refuses it earlier).
    if tr["optimizer"] not in ("adam", "adamw", "sgd"):
        raise ValueError(f"unknown optimizer {tr['optimizer']!r}; allowed: adam, adamw, sgd")
    if not tr["lr"] > 0:
        raise ValueError(f"learning rate {tr['lr']!r}; allowed: > 0")
    if tr["optimizer"] == "sgd":
        return torch.optim.SGD(
            params, lr=tr["lr"], momentum=tr.get("momentum", 0.9), weight_decay=tr.get("weight_decay", 0.0)
        )
    cls = torch.optim.AdamW if tr["optimizer"] == "adamw" else torch.optim.Adam
    return cls(params, lr=tr["lr"], weight_decay=tr.get("weight_decay", 0.0))


TOP5_MIN_CLASSES = 20  # top-5 error is stored beside top-1 from this many classes (below, it says little)


def topk_wrong(logits: torch.Tensor, y: torch.Tensor, k: int) -> int:
    """How many rows of `logits` (n, K) do not have the true class y (n,) among their k highest."""
    return int((logits.topk(min(k, logits.shape[1]), dim=1).indices != y[:, None]).all(1).sum().item())


@torch.no_grad()
def evaluate(model, x, y, batch: int = 8192, bits: bool = False, top5: bool = False) -> tuple[float, ...]:
    """(mean cross-entropy, error rate) of `model` on (x, y), in eval mode; with top5=True a third value,
    the top-5 error rate (the true class not among the 5 highest logits), from the same forward pass.

    Sequence targets y (n, T) with logits (n, V, T) (charlm): means over all n*T positions; positions
    whose target is -100 (translation's padding, F.cross_entropy's ignore_index) are left out of both
    means. bits=True (a data set with meta metric "bits"): the second value is the cross-entropy in
    bits, loss / ln 2."""
    model.eval()
    loss, wrong, wrong5 = 0.0, 0, 0
    for i in range(0, len(x), batch):
        logits, yb = model(x[i : i + batch]), y[i : i + batch]
        loss += F.cross_entropy(logits.float(), yb, reduction="sum").item()
        wrong += ((logits.argmax(1) != yb) & (yb != -100)).sum().item()
        if top5:  # class labels only (image classification)
            wrong5 += topk_wrong(logits, yb, 5)
    model.train()
    n = (y != -100).sum().item()  # = len(x) for class labels
    out = (loss / n, (loss / n / math.log(2) if bits else wrong / n))
    return (*out, wrong5 / n) if top5 else out


def steps_per_epoch(n: int, tr: dict) -> int:
    return max(math.ceil(n / tr["batch_size"]), tr.get("min_steps_per_epoch", 1))


def run_trial(spec: dict, device: str = "cpu") -> dict:
    """Train the trial described by `spec`; return a flat, JSON-serialisable result dict.

    spec: {"data": {"name", "options", "split_seed"}, "data_size": int,
           "model": {"family", "size": {...}, "batchnorm"}, "train": {...}, "seed": int}
    optional "aux": {"data": {"name", "options", "split_seed"}, "size": int, "weight": float}:
           auxiliary training examples of another distribution, weighted in the loss (see _train).
    """
    t0 = time.perf_counter()
    out = new_result(trial_id(spec), device)
    try:
        out.update(_train(spec, device))
    except Exception as e:  # a failed trial is a result, not a crash of the study
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc(limit=5)
    out["wall_time"] = time.perf_counter() - t0
    return out


def _train(spec: dict, device: str) -> dict:
    tr, ms = spec["train"], spec["model"]
    ds, idx = subset(spec["data"], spec["data_size"])
    dev = torch.device(device)
    x = torch.as_tensor(ds.x_train[idx], device=dev)
    y = torch.as_tensor(ds.y_train[idx], device=dev)
    wt = None  # per-example loss weights; None = all 1 (the plain study)
    aux = spec.get("aux")
    if aux and aux["weight"] > 0:
        # Weighting study: train on target subset + auxiliary examples; target weighs 1, auxiliary w.
        # A batch's loss is sum(w_i * l_i) / sum(w_i): the weighted mean, so the step size does not
        # shrink with w. At w = 0 the auxiliary examples are left out altogether (the same objective,
        # and the baseline "target only" run). Dev and test stay on the target distribution.
        ads, aidx = subset(aux["data"], aux["size"])
        if ads.input_shape != ds.input_shape or ads.n_classes != ds.n_classes:
            raise ValueError(
                f"auxiliary data {ads.input_shape}/{ads.n_classes} classes does not match "
                f"the target's {ds.input_shape}/{ds.n_classes} classes"
            )
        x = torch.cat([x, torch.as_tensor(ads.x_train[aidx], device=dev)])
        y = torch.cat([y, torch.as_tensor(ads.y_train[aidx], device=dev)])
        wt = torch.cat([torch.ones(len(idx), device=dev), torch.full((len(aidx),), float(aux["weight"]), device=dev)])
    x_dev, y_dev = torch.as_tensor(ds.x_dev, device=dev), torch.as_tensor(ds.y_dev, device=dev)
    bits = ds.metric == "bits"  # charlm: every "error" below is cross-entropy in bits per symbol
    top5 = not bits and ds.n_classes >= TOP5_MIN_CLASSES  # glyphs: top-5 error beside top-1 (Hestness)

    torch.manual_seed(spec["seed"])
    model = models_mod.build_spec(ms, ds.input_shape, ds.n_classes).to(dev)  # a family or a byo factory
    info = {"params": model.n_params(), "train_flops_per_example": 3 * model.forward_flops()}
    opt = make_optimizer(model.parameters(), tr)
    gen = torch.Generator(device="cpu").manual_seed(spec["seed"])  # data order, per trial

    n = len(x)  # the target subset, plus auxiliary examples in a weighting study
    bs = min(tr["batch_size"], n)
    spe = steps_per_epoch(n, tr)
    perm, pos = torch.randperm(n, generator=gen), 0
    best, best_state, since, history, status, steps = math.inf, None, 0, [], "ok", 0
    snap = resume.take(spec)  # a rung of this trial trained here: go on from its last epoch
    if snap:
        sd = model.state_dict()
        sd.update(snap["state"])
        model.load_state_dict(sd)
        _load_opt(opt, snap["opt"], tr["optimizer"])
        gen.set_state(snap["gen"])
        perm, pos, steps, since = snap["perm"], snap["pos"], snap["steps"], snap["since"]
        best, best_epoch, history = snap["best"], snap["best_epoch"], copy.deepcopy(snap["history"])
        best_state = {**sd, **snap["best_state"]}
    resumed = steps
    first = tr["max_epochs"] + 1 if resume.finished(snap, spec) else len(history) + 1  # stopped early: done
    for epoch in range(first, tr["max_epochs"] + 1):
        tot_loss, tot_wrong, seen = 0.0, 0, 0
        for _ in range(spe):
            if pos + bs > n:  # next pass over the subset, freshly shuffled
                perm, pos = torch.randperm(n, generator=gen), 0
            b = perm[pos : pos + bs].to(dev)
            pos += bs
            logits = model(x[b])
            if wt is None:
                loss = F.cross_entropy(logits, y[b])
            else:  # weighted mean over the batch (see above); clamp: a batch of tiny weights
                wb = wt[b]
                loss = (F.cross_entropy(logits, y[b], reduction="none") * wb).sum() / wb.sum().clamp_min(1e-12)
            if not torch.isfinite(loss):
                status = "diverged"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            tot_loss += loss.item() * bs
            tot_wrong += (logits.argmax(1) != y[b]).sum().item()
            seen += bs
        if status == "diverged":
            break
        dev_loss, dev_err, *dev_top5 = evaluate(model, x_dev, y_dev, bits=bits, top5=top5)
        if not math.isfinite(dev_loss):
            status = "diverged"
            break
        history.append(
            {
                "epoch": epoch,
                "train_loss": tot_loss / seen,
                "train_error": tot_loss / seen / math.log(2) if bits else tot_wrong / seen,
                "dev_loss": dev_loss,
                "dev_error": dev_err,
                **({"dev_top5_error": dev_top5[0]} if top5 else {}),
            }
        )
        if dev_err < best:
            best, since = dev_err, 0
            best_state = copy.deepcopy(model.state_dict())
            best_epoch = epoch
        else:
            since += 1
            if since >= tr["patience"]:
                break
    if resume.wants_snapshot(spec, status):
        resume.save(
            spec,
            {
                "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if v.is_floating_point()},
                "opt": _opt_state(opt, tr["optimizer"]),
                "gen": gen.get_state(),
                **{"perm": perm, "pos": pos, "steps": steps, "since": since},
                **{"best": best, "best_epoch": best_epoch, "history": copy.deepcopy(history)},
                "best_state": {k: v.cpu().clone() for k, v in best_state.items() if v.is_floating_point()},
            },
        )
    res = {
        "status": status,
        "history": history,
        "epochs": len(history),
        "steps": steps,
        **info,
        "train_flops": info["train_flops_per_example"] * steps * bs,
        # the FLOPs of the epochs a rung's snapshot gave this trial (spent by the rung, not here)
        "resumed_flops": info["train_flops_per_example"] * resumed * bs,
    }
    if history:
        # on the target subset only (the first len(idx) rows), also in a weighting study
        res["final_train_loss"], res["final_train_error"] = evaluate(model, x[: len(idx)], y[: len(idx)], bits=bits)
        res["min_dev_error"], res["best_epoch"] = best, best_epoch
        if top5:  # minimised on its own, as the paper reports each metric's best (result JSON only)
            res["min_dev_top5_error"] = min(h["dev_top5_error"] for h in history)
        model.load_state_dict(best_state)  # test error of the model that scored min dev error
        x_te, y_te = torch.as_tensor(ds.x_test, device=dev), torch.as_tensor(ds.y_test, device=dev)
        res["test_error"] = evaluate(model, x_te, y_te, bits=bits)[1]
        if hasattr(model, "decode_metrics"):  # seq2seq: greedy decoding scored beside the cross-entropy
            for part, (xp, yp) in (("dev", (x_dev, y_dev)), ("test", (x_te, y_te))):
                res.update({f"{part}_{k}": v for k, v in model.decode_metrics(xp, yp).items()})
    if status == "diverged":
        res["error"] = f"non-finite loss at epoch {len(history) + 1}"
    return res


def _opt_state(opt, kind: str) -> dict:
    """A torch.optim optimizer's state in resume.py's format (per parameter, in parameter order)."""
    ps = opt.param_groups[0]["params"]
    st = [opt.state.get(p, {}) for p in ps]
    if kind == "sgd":  # no buffer without momentum
        bufs = [s.get("momentum_buffer") for s in st]
        return {"t": None, "m": [None if b is None else b.cpu().clone() for b in bufs], "v": None}
    return {
        "t": int(st[0]["step"]),
        "m": [s["exp_avg"].cpu().clone() for s in st],
        "v": [s["exp_avg_sq"].cpu().clone() for s in st],
    }


def _load_opt(opt, snap: dict, kind: str) -> None:
    for i, p in enumerate(opt.param_groups[0]["params"]):
        if kind == "sgd":
            if snap["m"][i] is not None:
                opt.state[p] = {"momentum_buffer": snap["m"][i].to(p.device).clone()}
        else:
            opt.state[p] = {
                "step": torch.tensor(float(snap["t"])),
                "exp_avg": snap["m"][i].to(p.device).clone(),
                "exp_avg_sq": snap["v"][i].to(p.device).clone(),
            }
