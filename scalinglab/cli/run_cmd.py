"""`scalinglab run [STUDY]`: run a preset or a study file, resuming from the store."""

from __future__ import annotations

from pathlib import Path

HELP = "run a scaling study (a preset name or a .toml file; default: the 'default' preset)"


def register(p):
    p.add_argument("study", nargs="?", default=None, help="preset name or path to a study .toml")
    p.add_argument("--out", default=None, help="output folder (default: runs/<study name>)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--backend",
        default="local",
        choices=["local", "pool", "ray"],
        help="where trials run (default local: in-process, or a process pool with --workers>1)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="ray: a running cluster's address (HEAD:6379, or auto); default: a local Ray instance",
    )
    p.add_argument(
        "--num-cpus",
        type=float,
        default=None,
        help="ray: CPUs per group of trials (default: the study's [resources], else 1)",
    )
    p.add_argument(
        "--num-gpus",
        type=float,
        default=None,
        help="ray: GPUs per group, fractions share a GPU (default: the study's [resources], "
        "else 1 with a cuda device, else 0)",
    )
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="override the study's train.device")
    p.add_argument("--form", default="auto", help="learning-curve form (default auto: chosen by extrapolation)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads per process (default 1: for small models one thread per "
        "process is fastest; use --workers to use more cores)",
    )
    p.add_argument(
        "--no-batch",
        action="store_true",
        help="train one model at a time instead of same-shape groups (for comparisons)",
    )
    p.add_argument(
        "--no-prune",
        action="store_true",
        help="Hestness search without successive halving: every candidate trains to its own early "
        "stop (the study's [search] prune = false; for comparisons)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="run again the stored trials that failed (an exception or a lost worker; diverged "
        "trials are results and stay); a rerun without it keeps them as they are",
    )


def run(args) -> int:
    from rich.console import Console
    from rich.markup import escape

    from scalinglab.config import load_study
    from scalinglab.errors import UserError

    study, source = load_study(args.study)  # validates everything before anything is written
    if args.no_prune:
        study = study.model_copy(update={"search": study.search.model_copy(update={"prune": False})})
    if args.workers < 1:
        raise UserError(f"--workers: given {args.workers}; allowed: 1 or more")
    ray_opts = {
        k: v
        for k, v in (("address", args.address), ("num_cpus", args.num_cpus), ("num_gpus", args.num_gpus))
        if v is not None
    }
    if ray_opts and args.backend != "ray":
        k = next(iter(ray_opts))
        raise UserError(
            f"--{k.replace('_', '-')}: given {ray_opts[k]!r} with --backend {args.backend}; "
            "allowed: only with --backend ray"
        )
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads: given {args.threads}; allowed: 1 or more")
    from scalinglab.train.trial import resolve_device

    device = resolve_device(
        args.device or study.train.device,  # once: an unusable device fails here
        "--device" if args.device else f"{source}: train.device",
    )
    from scalinglab.fit.laws import LAWS

    forms = ["auto", *(f for f in LAWS if f != "model_size")]
    if args.form not in forms:  # checked before training, not after it
        raise UserError(f"--form: given {args.form!r}; allowed: {', '.join(forms)}")
    out = Path(args.out) if args.out else Path("runs") / study.name
    check_out(out, "--out" if args.out else f"{source}: name (the output folder runs/{study.name})")
    console = Console(stderr=True)
    # names, descriptions and paths are the user's text, not rich markup ("[x]" would crash or vanish)
    header = f"[bold]{escape(study.name)}[/]: {escape(study.description or source)} -> {escape(str(out))}/"

    from scalinglab.cli.progress import StudyProgress
    from scalinglab.runner import run_study

    progress = None if args.no_progress else StudyProgress(study.name, console)
    summary = run_study(
        study,
        out,
        source=source,
        backend=args.backend,
        workers=args.workers,
        device=device,
        progress=progress,
        form=args.form,
        log=console.print,
        backend_options=ray_opts,
        retry_failed=args.retry_failed,
        batched=not args.no_batch,
        threads=args.threads,
        on_open=lambda: console.print(header),
    )
    _print_summary(console, summary, out)
    from scalinglab.report import write_report

    try:  # the trials and summary are safe on disk whatever happens here
        console.print(f"report: {write_report(out)}", markup=False)
    except Exception as e:
        if args.debug:
            raise
        console.print(
            f"[yellow]report failed ({type(e).__name__}: {escape(str(e))}); retry with "
            f"`scalinglab report {escape(str(out))} --debug`"
        )
    return 0


def check_out(out: Path, field: str) -> None:
    """The output folder can be made and written, before anything is trained or written: `--out`
    naming a file, a path under a file, a read-only or missing-permission folder is one line."""
    import os
    import tempfile

    from scalinglab.errors import UserError

    if "\x00" in str(out):
        raise UserError(f"{field}: given {str(out)!r}; allowed: a folder path without NUL bytes")
    if out.exists() and not out.is_dir():
        raise UserError(f"{field}: given {str(out)!r}, an existing file; allowed: a folder (new or a study's)")
    base = out
    while not base.exists():  # the nearest existing folder: where the first mkdir will happen
        base = base.parent
    if not base.is_dir():
        raise UserError(f"{field}: given {str(out)!r}, under the file {str(base)!r}; allowed: a folder path")
    if (base / "results.sqlite").exists() and not os.access(base / "results.sqlite", os.R_OK | os.W_OK):
        raise UserError(f"{field}: given {str(out)!r}; its results.sqlite is not writable; allowed: a writable folder")
    try:  # a probe file, removed at once (os.access says yes to root on a read-only mount)
        with tempfile.TemporaryFile(dir=base, prefix=".scalinglab-probe-"):
            pass
    except OSError as e:
        raise UserError(
            f"{field}: given {str(out)!r}; cannot write in {str(base)!r} ({e.strerror or e}); "
            f"allowed: a writable folder"
        ) from None
    db = out / "results.sqlite"
    if db.exists() and (not db.is_file() or db.stat().st_size > 0):  # someone else's or a torn file: refuse
        from scalinglab.store import Store

        Store.open_existing(out, readonly=True).close()


def _print_summary(console, s: dict, out: Path) -> None:
    def say(text):  # plain text (paths, intervals "[a, b]"), never read as rich markup
        console.print(text, markup=False)

    t = s["trials"]
    say(
        f"trials: {t['total']} ({t.get('ok', 0)} ok, {t.get('diverged', 0)} diverged, "
        f"{t.get('failed', 0)} failed); wall time {s.get('wall_time_s')} s"
    )
    for reason, n in (t.get("failure_reasons") or {}).items():  # each distinct reason once
        say(f"  {n} failed: {reason}")
    lc = s.get("learning_curve")
    if lc:
        lo, hi = lc.get("exponent_ci") or (float("nan"), float("nan"))
        sl = lc.get("slope") or {}
        if sl.get("value") is not None:  # the headline: the slope where the curve is a power law
            slo, shi = sl.get("ci") or (float("nan"), float("nan"))
            say(
                f"learning curve ({lc['form']}): slope {sl['value']:.3f} [{slo:.3f}, {shi:.3f}] over "
                f"m = {sl['from']:,.0f}..{sl['to']:,.0f}"
                + ("" if sl.get("reached") else " (the last doubling: the power-law region is barely measured)")
                + f"; asymptotic exponent {lc['exponent']:.3f} [{lo:.3f}, {hi:.3f}]"
            )
        else:
            say(f"learning curve ({lc['form']}): exponent {lc['exponent']:.3f} [{lo:.3f}, {hi:.3f}]")
        if lc.get("unsupported"):
            say(f"  no forecast to stand behind: {lc['unsupported']}")
        lc5 = s.get("learning_curve_top5")  # many classes: top-5 error fitted too (analysis/top5.py)
        if lc5 and lc5.get("exponent") is not None:
            lo5, hi5 = lc5.get("exponent_ci") or (float("nan"), float("nan"))
            say(f"learning curve of top-5 error ({lc5['form']}): exponent {lc5['exponent']:.3f} [{lo5:.3f}, {hi5:.3f}]")
        fl = s.get("floor") or {}
        if fl.get("value") is not None:
            ci = fl.get("ci90") or (float("nan"), float("nan"))
            say(
                f"floor ({fl['form']}): {fl['value']:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]"
                + (f"; planted Bayes error {s['bayes_error']:.4g}" if "bayes_error" in s else "")
            )
        ax = s.get("model_axis") or {}
        if ax.get("capped"):  # that floor is the grid's (analysis/model_axis.py)
            cf, ir = ax["capacity_floor"], ax["irreducible"]
            say(
                f"  that is the model grid's capacity floor: the largest model tried "
                f"({ax['largest_model_params']:,.0f} params) was the best, and the joint law over every "
                f"candidate puts its floor at {cf['value']:.4g} [{cf['ci'][0]:.4g}, {cf['ci'][1]:.4g}], the "
                f"irreducible error at {ir['value']:.4g}; add larger models"
            )
        pred = (lc.get("predictions") or [{}])[0]
        if pred:
            say(
                f"at {pred['data_size']:,} examples (2x): {pred['value']:.4g} "
                f"[{pred['lo']:.4g}, {pred['hi']:.4g}] (90% interval)"
            )
    say(f"wrote {out / 'results.sqlite'}, {out / 'summary.json'}")
