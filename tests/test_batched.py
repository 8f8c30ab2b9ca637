"""The batched trainer (scalinglab/train/batched.py) against the one-at-a-time trainer (run_trial).

Equivalence is checked where it is exact up to floating-point reassociation: same init (torch seed),
same batch order (per-model generator), same updates. With data_size == batch_size and
min_steps_per_epoch = 1 an "epoch" is one step, so the history is the per-step loss trajectory.
"""

import math

import pytest
import torch

from scalinglab.backends import make_backend
from scalinglab.train.batched import run_group
from scalinglab.train.packing import group_key, pack
from scalinglab.train.trial import run_trial

DATA = {"name": "mnist1d", "options": {"n_train": 1000, "n_dev": 300, "n_test": 300}, "split_seed": 0}
MLP = {"family": "mlp", "size": {"width": 32, "depth": 2}, "batchnorm": False}
CNN = {"family": "cnn1d", "size": {"channels": 8, "depth": 2}, "batchnorm": False}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models: one thread is as fast, and far faster when the cores are shared (oversubscribed
    # OpenMP threads spin); restored afterwards for the other test modules.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def spec(seed=0, n=200, model=MLP, **train):
    tr = {
        "optimizer": "adam",
        "lr": 3e-3,
        "weight_decay": 0.0,
        "momentum": 0.9,
        "batch_size": 64,
        "max_epochs": 4,
        "min_steps_per_epoch": 5,
        "patience": 100,
    }
    tr.update(train)
    return {"data": DATA, "data_size": n, "model": dict(model), "train": tr, "seed": seed}


def rel(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


@pytest.mark.parametrize(
    "model,opt",
    [(MLP, "adam"), (CNN, "sgd"), ({**MLP, "batchnorm": True}, "adamw"), ({**CNN, "batchnorm": True}, "adam")],
    ids=["mlp-adam", "cnn-sgd", "mlp-bn-adamw", "cnn-bn-adam"],
)
def test_step_trajectories_match_run_trial(model, opt):
    # one step per "epoch": history = per-step train loss (before the update) and dev loss after it
    specs = [
        spec(
            s,
            n=64,
            model=model,
            optimizer=opt,
            lr=lr,
            weight_decay=wd,
            max_epochs=12,
            min_steps_per_epoch=1,
            patience=100,
        )
        for s, lr, wd in [(0, 3e-3, 0.0), (1, 1e-2, 0.01), (2, 1e-3, 0.1)]
    ]
    alone = [run_trial(s) for s in specs]
    together = run_group(specs, fallback=False)
    # With batch norm, the bias of the layer before it has a gradient that is zero up to rounding; Adam
    # normalises that noise into O(lr) steps, invisible in training mode (batch statistics cancel the
    # bias) but seen by the eval-mode running mean. So eval-mode dev loss is looser there; run_trial
    # itself differs this much across thread counts.
    dev_tol = 1e-3 if model["batchnorm"] else 1e-4
    for a, b in zip(alone, together):
        assert a["status"] == b["status"] == "ok"
        assert len(a["history"]) == len(b["history"]) == 12
        for ha, hb in zip(a["history"], b["history"]):
            assert rel(ha["train_loss"], hb["train_loss"]) < 1e-4, (ha, hb)
            assert rel(ha["dev_loss"], hb["dev_loss"]) < dev_tol, (ha, hb)


@pytest.mark.parametrize("conv_2d", [True, False], ids=["conv2d-channels-last", "grouped-conv1d"])
def test_both_conv_forms_match_run_trial(conv_2d):
    """The CNN group's two conv forms (conv_2d: channels-last conv2d, the default; grouped conv1d) give
    run_trial's per-step losses, with batch norm and with the read-out after the last conv."""
    model = {"family": "cnn1d", "size": {"channels": 6, "depth": 3}, "batchnorm": True}
    specs = [
        spec(s, n=64, model=model, optimizer="adam", lr=lr, max_epochs=6, min_steps_per_epoch=1, patience=100)
        for s, lr in [(0, 3e-3), (1, 1e-2)]
    ]
    for a, b in zip([run_trial(s) for s in specs], run_group(specs, fallback=False, conv_2d=conv_2d)):
        for ha, hb in zip(a["history"], b["history"]):
            assert rel(ha["train_loss"], hb["train_loss"]) < 1e-4, (ha, hb)
            assert rel(ha["dev_loss"], hb["dev_loss"]) < 1e-3, (ha, hb)


def test_mixed_group_agrees_with_run_trial():
    # different data sizes (so different epoch lengths), lr, weight decay, max_epochs in one group
    specs = [
        spec(0, n=100),
        spec(1, n=300, lr=1e-3),
        spec(2, n=1000, weight_decay=0.05, max_epochs=2),
        spec(3, n=640, model=MLP),
    ]
    assert len({group_key(s) for s in specs}) == 1
    alone = [run_trial(s) for s in specs]
    together = run_group(specs, fallback=False)
    for a, b in zip(alone, together):
        assert (a["epochs"], a["steps"], a["best_epoch"]) == (b["epochs"], b["steps"], b["best_epoch"])
        assert a["train_flops"] == b["train_flops"] and a["params"] == b["params"]
        # deterministic on one machine: equal up to reassociation, i.e. within an example or two
        assert abs(a["min_dev_error"] - b["min_dev_error"]) <= 2 / 300
        assert abs(a["test_error"] - b["test_error"]) <= 2 / 300
        assert rel(a["final_train_loss"], b["final_train_loss"]) < 1e-3


def test_result_keys_identical_to_run_trial():
    specs = [spec(0), spec(1, optimizer="sgd", lr=1e5)]  # one ok, one diverged
    specs[1]["train"]["optimizer"] = "adam"  # same group; lr 1e5 still diverges under Adam
    alone = [run_trial(s) for s in specs]
    together = run_group(specs, fallback=False)
    for a, b in zip(alone, together):
        assert set(a) - {"traceback"} == set(b)
        assert a["id"] == b["id"] and a["status"] == b["status"] and a["device"] == b["device"]
        assert b["wall_time"] > 0
        for h in b["history"]:
            assert set(h) == {"epoch", "train_loss", "train_error", "dev_loss", "dev_error"}


def test_independent_early_stopping():
    specs = [spec(0, patience=1, max_epochs=30, lr=3e-2), spec(1, patience=100, max_epochs=6)]
    alone = [run_trial(s) for s in specs]
    together = run_group(specs, fallback=False)
    assert together[1]["epochs"] == 6
    assert together[0]["epochs"] == alone[0]["epochs"] < 30  # stopped on its own patience
    assert together[0]["best_epoch"] == alone[0]["best_epoch"]
    assert together[0]["min_dev_error"] == min(h["dev_error"] for h in together[0]["history"])


def test_a_diverging_model_does_not_touch_the_others():
    ok = [spec(0, optimizer="sgd", lr=0.05), spec(2, optimizer="sgd", lr=0.02, n=500)]
    bad = spec(1, optimizer="sgd", lr=1e5)
    with_bad = run_group([ok[0], bad, ok[1]], fallback=False)
    without = run_group(ok, fallback=False)
    alone = run_trial(bad)
    assert with_bad[1]["status"] == alone["status"] == "diverged"
    assert with_bad[1]["steps"] == alone["steps"] and with_bad[1]["epochs"] == alone["epochs"]
    assert with_bad[1]["error"] == alone["error"]
    for a, b in zip([with_bad[0], with_bad[2]], without):
        assert a["status"] == "ok"
        assert [h["train_loss"] for h in a["history"]] == pytest.approx(
            [h["train_loss"] for h in b["history"]], rel=1e-5
        )
        assert a["min_dev_error"] == b["min_dev_error"]


def test_vmap_engine_matches_bmm():
    specs = [spec(0, n=64, min_steps_per_epoch=1, max_epochs=8), spec(1, n=64, min_steps_per_epoch=1, max_epochs=8)]
    a = run_group(specs, engine="bmm", fallback=False)
    b = run_group(specs, engine="vmap", fallback=False)
    for ra, rb in zip(a, b):
        assert [h["train_loss"] for h in ra["history"]] == pytest.approx(
            [h["train_loss"] for h in rb["history"]], rel=1e-4
        )


def test_batchnorm_under_vmap_falls_back_to_run_trial():
    specs = [spec(s, model={**MLP, "batchnorm": True}, max_epochs=2) for s in (0, 1)]
    res = run_group(specs, engine="vmap")
    assert [r["status"] for r in res] == ["ok", "ok"]
    assert [r["min_dev_error"] for r in res] == [run_trial(s)["min_dev_error"] for s in specs]


def test_group_key_and_pack():
    a = spec(0, n=200)
    assert group_key(a) == group_key(spec(5, n=1000, lr=1e-4, weight_decay=0.1, max_epochs=9, patience=2))
    assert group_key(a) != group_key(spec(0, n=32))  # batch min(64, 32) = 32: another shape
    assert group_key(a) != group_key(spec(0, model={**MLP, "size": {"width": 64, "depth": 2}}))
    assert group_key(a) != group_key(spec(0, model={**MLP, "batchnorm": True}))
    assert group_key(a) != group_key(spec(0, optimizer="sgd"))
    with pytest.raises(ValueError, match="groups"):
        run_group([a, spec(0, n=32)])

    specs = [spec(s, n=n, model=m) for n in (32, 200, 400) for m in (MLP, CNN) for s in range(5)]
    groups = pack(specs, max_group=4)
    assert sorted(id(s) for g in groups for s in g) == sorted(id(s) for s in specs)
    assert all(len({group_key(s) for s in g}) == 1 for g in groups)
    assert all(len(g) <= 4 for g in groups)
    # n=32 MLPs: 5 -> 2 + 3 (near-equal), n=200 and 400 MLPs share a key: 10 -> 3 + 4 + 3
    assert sorted(len(g) for g in groups if g[0]["model"]["family"] == "mlp") == [2, 3, 3, 3, 4]
    assert groups[0][0] is specs[0]  # plan order: smallest data first
    # a memory budget of about two of the largest models: every group fits, the largest come in twos
    from scalinglab.train.packing import model_bytes

    budget = 2 * max(model_bytes(s) for s in specs) + 1
    groups = pack(specs, max_group=32, memory_budget=budget)
    assert all(sum(model_bytes(s) for s in g) <= budget for g in groups)
    assert max(len(g) for g in groups if g[0]["model"]["family"] == "cnn1d") == 2


def test_backends_batched_and_not_give_the_same_results():
    specs = [spec(s, n=n, max_epochs=2) for n in (64, 128) for s in (0, 1)]
    on = dict((s["seed"], s["data_size"]) and (r["id"], r) for s, r in make_backend("local").map(specs))
    off = dict((r["id"], r) for _, r in make_backend("local", batched=False).map(specs))
    assert on.keys() == off.keys() and len(on) == 4
    for k in on:
        assert on[k]["steps"] == off[k]["steps"]
        assert abs(on[k]["min_dev_error"] - off[k]["min_dev_error"]) <= 2 / 300
    assert math.isfinite(sum(r["wall_time"] for r in on.values()))


def test_fused_mlp_step_matches_autograd():
    # the hand-written MLP forward/backward (stacked.FusedMLP) against autograd over forward_bmm: mixed
    # hyper-parameters and epoch lengths, models that stop early (the group shrinks, buffers are
    # reallocated) and, under SGD, a diverging member
    import scalinglab.train.batched as batched

    groups = [
        [
            spec(0, n=64, min_steps_per_epoch=1, max_epochs=8, lr=1e-2),
            spec(1, n=200, max_epochs=3),
            spec(2, patience=1, max_epochs=30, lr=3e-2),
            spec(3, n=64, min_steps_per_epoch=1, max_epochs=8, weight_decay=0.1),
        ],
        [spec(0, optimizer="sgd", lr=0.05), spec(1, optimizer="sgd", lr=1e5), spec(2, optimizer="sgd", lr=0.02, n=500)],
    ]
    g = batched._GroupTrainer(groups[0], "cpu", "bmm", None, False)
    assert g.mlp is not None and not any(p.requires_grad for p in g.P.values())
    fused = [run_group(specs, fallback=False) for specs in groups]
    assert batched._GroupTrainer(groups[0], "cpu", "bmm", None, False, fused_mlp=False).mlp is None
    auto = [run_group(specs, fallback=False, fused_mlp=False) for specs in groups]
    assert fused[1][1]["status"] == "diverged"
    for a, b in zip(fused[0] + fused[1], auto[0] + auto[1]):
        assert (a["status"], a["steps"], a["epochs"]) == (b["status"], b["steps"], b["epochs"])
        assert [h["train_loss"] for h in a["history"]] == pytest.approx(
            [h["train_loss"] for h in b["history"]], rel=1e-5
        )
        assert [h["dev_loss"] for h in a["history"]] == pytest.approx([h["dev_loss"] for h in b["history"]], rel=1e-5)
        assert a["min_dev_error"] == b["min_dev_error"]


@pytest.mark.parametrize("fused", [True, False], ids=["fused-kernels", "public-foreach"])
@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd"])
def test_stacked_optimizer_buckets_match_torch_optim(kind, fused):
    # buckets as whole stacks, contiguous slices (the trainer's hp order) and interleaved per-model
    # views, with a dead slot: each model's update equals torch.optim's on that model alone, on torch's
    # private fused kernels and on the public fallback (what runs if a torch release drops them)
    from scalinglab.train.stacked_optim import StackedOptimizer

    assert StackedOptimizer.FUSED  # this torch has the fused kernels: the fused case is really fused
    from scalinglab.train.trial import make_optimizer

    for hps in (
        [(1e-2, 0.0, 0.9)] * 4,
        [(1e-2, 0.0, 0.9)] * 2 + [(3e-2, 0.1, 0.5)] * 2,
        [(1e-2, 0.0, 0.9), (3e-2, 0.1, 0.5)] * 2,
    ):
        torch.manual_seed(0)
        p0, grads = torch.randn(4, 5, 3), [torch.randn(4, 5, 3) for _ in range(3)]
        p = p0.clone()
        opt = StackedOptimizer(kind, [p], hps, fused=fused)
        assert opt.fused is fused
        for g in grads:
            opt.step(dead={3}, grads=[g])
        for s, (lr, wd, mom) in enumerate(hps):
            q = torch.nn.Parameter(p0[s].clone())
            ref = make_optimizer([q], {"optimizer": kind, "lr": lr, "weight_decay": wd, "momentum": mom})
            for g in grads:
                q.grad = g[s].clone()
                ref.step()
            expect = p0[s] if s == 3 else q.detach()  # the dead slot stays frozen
            assert torch.allclose(p[s], expect, rtol=1e-5, atol=1e-7), (hps, s)


@pytest.mark.parametrize(
    "model,fused", [(MLP, True), (CNN, False), ({**MLP, "batchnorm": True}, False)], ids=["mlp", "cnn", "mlp-bn"]
)
def test_group_of_one(model, fused, monkeypatch):
    """A group of one plain MLP trains on the fused step (faster than run_trial), with run_trial's
    results; other groups of one are run_trial itself."""
    from scalinglab.train import batched

    s = spec(0, n=64, model=model, max_epochs=6, min_steps_per_epoch=1)
    alone = run_trial(s)
    calls = []
    monkeypatch.setattr(batched, "run_trial", lambda *a, **k: calls.append(a) or run_trial(*a, **k))
    (one,) = run_group([s])
    assert bool(calls) is not fused
    assert (one["status"], one["epochs"], one["steps"], one["best_epoch"]) == (
        alone["status"],
        alone["epochs"],
        alone["steps"],
        alone["best_epoch"],
    )
    for ha, hb in zip(alone["history"], one["history"]):
        assert rel(ha["train_loss"], hb["train_loss"]) < 1e-4 and rel(ha["dev_loss"], hb["dev_loss"]) < 1e-4
    assert set(one) == set(alone)


def test_rung_of_successive_halving_is_a_prefix_of_the_full_run():
    """A rung's trial (search/halving.py: max_epochs = the budget) trains exactly the full run's first
    epochs, alone and in a group with its full run (where it leaves the group at its budget)."""
    from scalinglab.search.halving import rung_spec

    full = spec(max_epochs=4, patience=2)
    rung = rung_spec(full, 2)
    alone = run_trial(rung)
    grouped_full, grouped_rung = run_group([full, rung], fallback=False)
    from scalinglab.train import resume

    resume.clear()  # the rungs' snapshots: the reference trains from scratch
    ref = run_trial(full)
    for r in (alone, grouped_rung):
        assert r["epochs"] == 2 and r["steps"] == ref["steps"] * 2 // ref["epochs"]
        for h, g in zip(r["history"], ref["history"][:2]):
            assert rel(h["dev_loss"], g["dev_loss"]) < 1e-4
    assert grouped_full["epochs"] == ref["epochs"]


@pytest.mark.parametrize(
    "model,opt", [(CNN, "adam"), ({**MLP, "batchnorm": True}, "sgd")], ids=["cnn-adam", "mlp-bn-sgd"]
)
def test_survivor_goes_on_from_its_rung_snapshot(model, opt):
    """A rung that ends at its budget leaves its state (train/resume.py); the full trial, trained
    later in this process, takes it over and pays only the remaining epochs, with the result of
    training from scratch: in a group mixing starting steps (two budgets and a fresh model) and
    alone (run_trial after a batched rung)."""
    from scalinglab.search.halving import rung_spec
    from scalinglab.train import resume

    resume.clear()
    fulls = [
        spec(seed=s, model=model, optimizer=opt, max_epochs=6, lr=lr) for s, lr in ((1, 3e-3), (2, 1e-3), (3, 3e-3))
    ]
    fresh = spec(seed=4, model=model, optimizer=opt, max_epochs=6)
    refs = [run_trial(s) for s in fulls + [fresh]]
    run_group([rung_spec(fulls[0], 2), rung_spec(fulls[1], 2), rung_spec(fulls[2], 3)], fallback=False)
    got = run_group(fulls + [fresh], fallback=False)
    for g, ref, paid in zip(got, refs, (4, 4, 3, 6)):
        assert g["epochs"] == ref["epochs"] == 6 and g["train_flops"] == ref["train_flops"]
        assert g["resumed_flops"] == pytest.approx(ref["train_flops"] * (6 - paid) / 6)
        for h, r in zip(g["history"], ref["history"]):
            assert rel(h["dev_loss"], r["dev_loss"]) < 1e-4
        assert g["min_dev_error"] == pytest.approx(ref["min_dev_error"], abs=0.01)
    run_group([rung_spec(fulls[0], 2), rung_spec(fulls[1], 2)], fallback=False)
    alone = run_trial(fulls[0])
    assert (
        alone["resumed_flops"] > 0 and rel(alone["history"][-1]["dev_loss"], refs[0]["history"][-1]["dev_loss"]) < 1e-4
    )
    assert len(resume._SNAPS) == 1  # the other rung's snapshot waits for its trial
    resume.clear()


def test_rung_that_stopped_early_leaves_nothing_to_train():
    """A rung stopped by patience before its budget: its full trial would have stopped at the same
    epoch, so it takes the snapshot and trains nothing (its result is the from-scratch one)."""
    from scalinglab.search.halving import rung_spec
    from scalinglab.train import resume

    resume.clear()
    full = spec(seed=1, max_epochs=40, patience=1, lr=0.05)
    ref = run_trial(full)
    assert ref["epochs"] < 20
    (r,) = run_group([rung_spec(full, 20)], fallback=False)
    assert r["epochs"] == ref["epochs"]
    got = run_group([full, spec(seed=2, max_epochs=3)], fallback=False)[0]
    assert got["epochs"] == ref["epochs"] and got["resumed_flops"] == got["train_flops"] == ref["train_flops"]
    assert got["min_dev_error"] == ref["min_dev_error"] and got["test_error"] == ref["test_error"]
    resume.clear()
