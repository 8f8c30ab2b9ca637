"""Which built-in specs train together, and in groups of what size (for `train/batched.py`).

`group_key`: specs with equal keys can share a stacked model: same data set, model family / size /
batchnorm, optimizer and effective batch size min(batch_size, data_size); seed, data size, lr, weight
decay, momentum, max_epochs, patience and min_steps_per_epoch may differ. Models of different widths
are kept in separate groups: a padded group costs the widest model's FLOPs for every member
(benchmarks/trainer.py --padding; docs/batched.md). `pack` cuts a list of specs into such groups,
sized to fit a memory budget (`model_bytes`, `default_memory_budget`). `train/runners.py:plan_units`
is the one caller that backends go through.
"""

from __future__ import annotations

import json
import math

import torch

from scalinglab import models as models_mod
from scalinglab.train.trial import subset, trial_id

# always run_trial (see group_key); cnn2d/crnn/seq2seq/resnet/lstm: the stacked interpreter knows
# linear and 1-D conv layers only, not 2-D convolutions, GRUs, LSTMs or attention
UNBATCHED_FAMILIES = ("transformer", "lstm", "cnn2d", "crnn", "seq2seq", "resnet")
MAX_GROUP = 32  # models per group: beyond this, per-step overhead is already amortised on CPU


def group_key(spec: dict) -> str:
    """Specs with equal keys can be trained in one group (see the module docstring)."""
    tr = spec["train"]
    if spec.get("aux"):  # weighting study (weighted loss, extra data): not batched, one group per spec
        return "aux:" + trial_id(spec)
    # byo: a user's factory model (its layers unknown) and the charlm transformer and lstm (int inputs, bits
    # metric) are not batched: one group per spec, which run_group hands to run_trial
    if spec["model"].get("factory") or spec["model"]["family"] in UNBATCHED_FAMILIES:
        return "single:" + trial_id(spec)
    return json.dumps(
        {
            "data": spec["data"],
            "model": spec["model"],
            "optimizer": tr["optimizer"],
            "batch": min(tr["batch_size"], spec["data_size"]),
        },
        sort_keys=True,
    )


def model_bytes(spec: dict) -> int:
    """Rough bytes one model of `spec` needs inside a group: parameters x 5 (param, grad, 2 Adam moments,
    best state) + training activations x 3 (forward, saved, grad) + an evaluation chunk's activations."""
    ds = subset(spec["data"], 1)[0]
    model = models_mod.build_spec(spec["model"], ds.input_shape, ds.n_classes)
    act = [math.prod(ds.input_shape)]
    hooks = [
        m.register_forward_hook(lambda m, i, o: act.append(o[0].numel()))
        for m in model.modules()
        if not list(m.children())
    ]
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
