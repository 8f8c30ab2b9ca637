"""Batched trainer vs one model at a time, and vs the machine's matmul peak.

    python benchmarks/trainer.py                 # about 3-5 minutes on 2 CPU cores
    python benchmarks/trainer.py --quick         # under a minute: fewer epochs, fewer widths
    python benchmarks/trainer.py --engines --padding   # also: bmm vs vmap; padded vs separate widths
    python benchmarks/trainer.py --cnn --widths 64     # also: 1-D CNN groups, conv2d channels-last vs conv1d
    python benchmarks/trainer.py --single              # also: one model, run_group (fused MLP) vs run_trial
    python benchmarks/trainer.py --optimizer           # also: the stacked optimizer, torch's private fused
                                                       # kernels vs the public foreach fallback

Prints, from ONE run on the same machine, for MLPs (depth 2) on MNIST-1D:
  naive    one model at a time: run_trial (standard PyTorch training), same epochs and batch size;
  batched  run_group on the same models;
  peak     large fp32 torch.mm FLOP/s of this torch build, as the limit;
and the ratios naive/batched time and batched FLOP/s / peak. Compared timings are interleaved and
repeated (the cores are shared, timings are noisy); the table shows medians.

FLOPs are the model's training FLOPs (3 x forward: the 6N rule; trial["train_flops"]). "end to end"
divides by the whole group wall time (including dev evaluations each epoch, best-state copies, final
evaluations); "steps" times the training steps alone (same trainer, no evaluation), i.e. the kernels.
Early stopping is off (patience = max_epochs) so both sides do identical work.

"executed" is the achieved FLOP/s in the usual hardware sense: every matrix-multiply FLOP the trainer
actually performs, over the whole run_group wall time. Counted from the layer shapes: training
forward + weight gradients + input gradients (none for the first layer, whose input needs no
gradient; neither trainer computes it), plus the evaluation forwards it must do (dev set every
epoch, then the train subset and the test set at the end). The 6N rule of "batch" over-counts the
skipped input gradient and leaves out the evaluations.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from scalinglab.train.batched import _GroupTrainer, run_group
from scalinglab.train.trial import run_trial

DATA = {"name": "mnist1d", "options": {"n_train": 4000, "n_dev": 1000, "n_test": 1000}, "split_seed": 0}


def specs_for(width: int, models: int, epochs: int, n: int, batch: int) -> list[dict]:
    tr = {
        "optimizer": "adam",
        "lr": 3e-3,
        "weight_decay": 0.0,
        "momentum": 0.9,
        "batch_size": batch,
        "max_epochs": epochs,
        "min_steps_per_epoch": 1,
        "patience": epochs,
    }
    return [
        {
            "data": DATA,
            "data_size": n,
            "model": {"family": "mlp", "size": {"width": width, "depth": 2}, "batchnorm": False},
            "train": {**tr, "lr": tr["lr"] * (1 + 0.1 * (s % 4))},
            "seed": s,
        }
        for s in range(models)
    ]


def peak_flops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def executed_flops(r: dict, width: int, n: int, depth: int = 2) -> int:
    """Matrix-multiply FLOPs one trial of the benchmark's MLP executed: per training example forward
    (2 per multiply-add) + weight gradient + input gradient except the first layer's; per evaluated
    example a forward (dev set each epoch, the train subset and the test set at the end)."""
    dims = [40] + [width] * depth + [10]  # MNIST-1D: 40 inputs, 10 classes
    macs = [a * b for a, b in itertools.pairwise(dims)]
    fwd = 2 * sum(macs)
    train = 2 * fwd - 2 * macs[0] + fwd
    n_eval = r["epochs"] * DATA["options"]["n_dev"] + n + DATA["options"]["n_test"]
    assert fwd * 3 == r["train_flops_per_example"], "the benchmark's model is not the MLP counted here"
    return train * (r["train_flops"] // r["train_flops_per_example"]) + fwd * n_eval  # x trained examples


def time_naive(specs):
    t = time.perf_counter()
    res = [run_trial(s) for s in specs]
    return time.perf_counter() - t, res


def time_batched(specs, **kw):
    t = time.perf_counter()
    res = run_group(specs, fallback=False, **kw)
    return time.perf_counter() - t, res


def time_steps(specs, steps: int = 30, engine: str = "bmm") -> float:
    """Seconds per training step of the group, training steps only (no evaluation)."""
    g = _GroupTrainer(specs, "cpu", engine, None, False)
    idx = g.order[torch.stack([g.orders[m].take(steps) for m in g.active])]  # (G, steps, bs), slot order
    for j in range(3):
        g.train_step(idx[:, j], j)
    t = time.perf_counter()
    for j in range(3, steps):
        g.train_step(idx[:, j], j)
    return (time.perf_counter() - t) / (steps - 3)


def cnn_specs(channels: int, models: int, epochs: int, n: int, batch: int) -> list[dict]:
    return [
        {**s, "model": {"family": "cnn1d", "size": {"channels": channels, "depth": 3}, "batchnorm": False}}
        for s in specs_for(32, models, epochs, n, batch)
    ]


def cnn_table(a):
    """CNN groups as the default study trains them (depth 3, kernel 5): naive vs the two conv forms."""
    print(
        f"\n1-D CNN (depth 3, kernel 5), {a.models} models, n={a.n}, batch {a.batch}, {a.epochs} epochs; "
        f"wall s, medians of {max(2, a.reps)} interleaved reps"
    )
    print(
        f"{'channels':>8} {'naive s':>8} {'conv1d s':>9} {'conv2d-CL s':>11} {'naive/conv2d':>12} {'conv1d/conv2d':>13}"
    )
    for ch in (8, 32, 48):
        specs = cnn_specs(ch, a.models, a.epochs, a.n, a.batch)
        t = {"naive": [], "conv1d": [], "conv2d": []}
        for _ in range(max(2, a.reps)):
            t["naive"].append(time_naive(specs)[0])
            for form in ("conv1d", "conv2d"):
                t[form].append(time_batched(specs, conv_2d=form == "conv2d")[0])
        n, c1, c2 = med(t["naive"]), med(t["conv1d"]), med(t["conv2d"])
        print(f"{ch:>8} {n:>8.2f} {c1:>9.2f} {c2:>11.2f} {n / c2:>11.2f}x {c1 / c2:>12.2f}x")


def optimizer_table(a, widths):
    """One StackedOptimizer step on G stacked MLPs (depth 2): torch's private fused kernels vs the
    public torch.optim functional path with foreach=True (the fallback if a release drops them)."""
    from scalinglab.train.stacked_optim import StackedOptimizer

    print(
        f"\nstacked optimizer step, {a.models} MLPs (depth 2), half the models at another lr (2 buckets); "
        f"ms per step, medians of 5 x 50 steps"
    )
    print(f"{'width':>5} {'kind':>5} {'fused ms':>9} {'public ms':>10} {'public/fused':>12}")
    for w in widths:
        shapes = [(w, 40), (w,), (w, w), (w,), (10, w), (10,)]
        hp = [(1e-3, 0.0, 0.9)] * (a.models // 2) + [(3e-3, 0.0, 0.9)] * (a.models - a.models // 2)
        for kind in ("adam", "sgd"):
            t = {}
            for fused in (True, False):
                ps = [torch.randn(a.models, *sh) for sh in shapes]
                gs = [torch.randn_like(p) for p in ps]
                opt = StackedOptimizer(kind, ps, hp, fused=fused)
                reps = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    for _ in range(50):
                        opt.step(grads=gs)
                    reps.append((time.perf_counter() - t0) / 50 * 1e3)
                t[fused] = med(reps)
            print(f"{w:>5} {kind:>5} {t[True]:>9.3f} {t[False]:>10.3f} {t[False] / t[True]:>11.2f}x")


def med(xs):
    return statistics.median(xs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--widths", default="32,64,128,256,512")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--n", type=int, default=2048, help="training examples per model")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=2, help="interleaved repetitions of naive and batched")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="2 epochs, widths 64,256, 1 rep")
    ap.add_argument("--engines", action="store_true", help="also compare the bmm and vmap engines")
    ap.add_argument("--padding", action="store_true", help="also: one padded group vs groups per width")
    ap.add_argument(
        "--single",
        action="store_true",
        help="also: a group of one (run_group routes a plain MLP to the fused step) vs run_trial, per width",
    )
    ap.add_argument(
        "--cnn",
        action="store_true",
        help="also: 1-D CNN groups (the default study's family): naive "
        "vs batched with conv2d channels-last vs batched with grouped conv1d",
    )
    ap.add_argument(
        "--optimizer",
        action="store_true",
        help="also: one stacked optimizer step, fused kernels vs the public foreach path",
    )
    a = ap.parse_args(argv)
    if a.quick:
        a.epochs, a.widths, a.reps = 2, "64,256", 1
    if a.threads:
        torch.set_num_threads(a.threads)
    widths = [int(w) for w in a.widths.split(",")]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu (no GPU here); "
        f"{a.models} MLPs (depth 2) per width, MNIST-1D n={a.n}, batch {a.batch}, {a.epochs} epochs, "
        f"no early stopping; medians of {a.reps} interleaved reps\n"
    )

    run_trial(specs_for(widths[0], 1, 1, a.n, a.batch)[0])  # load data, warm up
    peaks = [peak_flops()]
    rows = []
    for w in widths:
        specs = specs_for(w, a.models, a.epochs, a.n, a.batch)
        tn, tb, ts = [], [], []
        for r in range(a.reps):  # interleave, alternating order
            for which in ("n", "b") if r % 2 == 0 else ("b", "n"):
                if which == "n":
                    t, res_n = time_naive(specs)
                    tn.append(t)
                else:
                    t, res_b = time_batched(specs)
                    tb.append(t)
            ts.append(time_steps(specs))
            peaks.append(peak_flops())
        flops = sum(r["train_flops"] for r in res_b)
        assert flops == sum(r["train_flops"] for r in res_n)
        step_flops = sum(r["train_flops_per_example"] for r in res_b) * a.batch
        dev = max(abs(x["min_dev_error"] - y["min_dev_error"]) for x, y in zip(res_n, res_b))
        rows.append(
            (w, med(tn), med(tb), flops, step_flops / med(ts), dev, sum(executed_flops(r, w, a.n) for r in res_b))
        )
    peak = max(peaks)

    print(
        f"peak fp32 torch.mm 2048x2048: {peak / 1e9:.1f} GFLOP/s (max of {len(peaks)} measurements, "
        f"median {med(peaks) / 1e9:.1f})\n"
    )
    head = (
        f"{'width':>5} {'naive s':>8} {'batched s':>9} {'speed-up':>8} {'naive GF/s':>10} "
        f"{'batch GF/s':>10} {'% peak':>7} {'steps GF/s':>10} {'% peak':>7} {'exec GF/s':>10} {'% peak':>7} "
        f"{'max |d dev err|':>15}"
    )
    print(head)
    print("-" * len(head))
    for w, tn, tb, fl, sf, dev, ef in rows:
        print(
            f"{w:>5} {tn:>8.2f} {tb:>9.2f} {tn / tb:>7.1f}x {fl / tn / 1e9:>10.2f} {fl / tb / 1e9:>10.2f} "
            f"{100 * fl / tb / peak:>6.0f}% {sf / 1e9:>10.2f} {100 * sf / peak:>6.0f}% {ef / tb / 1e9:>10.2f} "
            f"{100 * ef / tb / peak:>6.0f}% {dev:>15.4f}"
        )
    print(
        "\nGF/s: 'naive', 'batch': model training FLOPs (6N rule, 3 x forward) / wall time of the whole "
        "run (with dev evaluation every epoch); 'steps': the same FLOPs / time of the training steps alone; "
        "'exec': the achieved FLOP/s, every matmul FLOP run_group executes (training without the first "
        "layer's unneeded input gradient, plus the dev evaluation each epoch and the final train and test "
        "evaluations) / its whole wall time. max |d dev err|: min dev error, naive vs batched (same up to "
        "reassociation, which 64 Adam steps amplify to a few examples)."
    )

    if a.optimizer:
        optimizer_table(a, widths)

    if a.engines:
        print("\nengines (training steps only, s/step, medians of interleaved reps):")
        for w in (widths[0], widths[-1]):
            specs = specs_for(w, a.models, a.epochs, a.n, a.batch)
            tt = {"bmm": [], "vmap": []}
            for _ in range(max(3, a.reps)):
                for e in tt:
                    tt[e].append(time_steps(specs, engine=e))
            print(
                f"  width {w:>4}: bmm {med(tt['bmm']) * 1e3:.2f} ms, vmap {med(tt['vmap']) * 1e3:.2f} ms, "
                f"vmap/bmm {med(tt['vmap']) / med(tt['bmm']):.2f}"
            )

    if a.single:
        print(
            f"\none model (a group of one), n={a.n}, batch {a.batch}, {a.epochs} epochs; wall s, medians of "
            f"{max(3, a.reps)} interleaved reps"
        )
        for w in widths:
            specs = specs_for(w, 1, a.epochs, a.n, a.batch)
            tn, tb = [], []
            for _ in range(max(3, a.reps)):
                tn.append(time_naive(specs)[0])
                t = time.perf_counter()
                run_group(specs)  # engine "auto": the path the backends take for a group of one
                tb.append(time.perf_counter() - t)
            print(
                f"  width {w:>4}: run_trial {med(tn):.3f} s, run_group {med(tb):.3f} s, ratio {med(tn) / med(tb):.2f}x"
            )

    if a.cnn:
        cnn_table(a)

    if a.padding:
        pw = [w for w in widths if w <= 128] or widths[:3]
        k = max(1, a.models // len(pw))
        print(
            f"\npadding: {k} models at each width {pw}: separate groups vs one group padded to {max(pw)} "
            f"(same cost as {k * len(pw)} models of width {max(pw)}); training steps only, s/step"
        )
        sep, pad = [], []
        for _ in range(max(3, a.reps)):
            sep.append(sum(time_steps(specs_for(w, k, 1, a.n, a.batch)) for w in pw))
            pad.append(time_steps(specs_for(max(pw), k * len(pw), 1, a.n, a.batch)))
        print(
            f"  separate {med(sep) * 1e3:.2f} ms, padded {med(pad) * 1e3:.2f} ms, padded/separate "
            f"{med(pad) / med(sep):.2f}"
        )


if __name__ == "__main__":
    main()
