"""Per-trial overhead of the user-trainer runners (train/user.py) on a trivial trainer.

    python benchmarks/trainer_overhead.py            # about 30 s on 2 CPU cores
    python benchmarks/trainer_overhead.py --trials 40

The trainer does no work (it returns {"dev": f(n)} at once), so every millisecond measured is what
scalinglab adds. Side by side, in one run, per trial:
  bare loop           the function called directly on a ready-made trial object: the floor
  function runner     run_user_trial(spec): trial id, the nested subset, the work folder, the import
                      (cached), the result schema and the metric conversion
  function, study     `run_study` of a grid of such trials, in-process: the runner plus planning, the
                      SQLite commit of every trial, the fits and summary.json, divided by the trials
  command (echo)      run_user_trial of a command that prints its JSON line (/bin/echo): the runner's
                      own cost of a command (fork/exec, pipes, the per-trial folder, parsing)
  command (python)    the same with `python -c`: what a Python script pays before its first line
                      (interpreter start-up, no imports), the usual case
Goals (issue 13): < 50 ms per trial for a function, < 300 ms for a command. The cores may be shared
with other work: expect +-20 % between runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TRAINER = textwrap.dedent("""
    def train(trial):
        return {"dev": 1.0 / (1 + trial.data_size) ** 0.5, "params": trial.model_size["width"]}
""")

STUDY = """
name = "overhead"
seeds = {seeds}
[train]
{trainer}
[data]
kind = "indices"
pool_size = 4096
sizes = {{ min = 64, max = 4096 }}
[model]
sizes = [{{ width = 8 }}, {{ width = 16 }}]
[search]
kind = "grid"
"""


def _study(folder: Path, trainer: str, seeds: int):
    from scalinglab.config import load_study

    (folder / "trivial.py").write_text(TRAINER)
    p = folder / f"study{abs(hash(trainer))}.toml"
    p.write_text(STUDY.format(trainer=trainer, seeds=seeds))
    study, _ = load_study(str(p))
    return study


def _specs(study, trials: int, trials_dir: Path):
    from scalinglab.search import plan_grid

    specs = [s for s, _ in plan_grid(study)]
    specs = (specs * (trials // len(specs) + 1))[:trials]
    return [{**s, "env": {**s.get("env", {}), "trials_dir": str(trials_dir)}} for s in specs]


def per_trial_ms(fn, items) -> float:
    t0 = time.perf_counter()
    for it in items:
        fn(it)
    return 1e3 * (time.perf_counter() - t0) / len(items)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=28, help="trials per runner (default 28)")
    args = ap.parse_args(argv)

    from scalinglab.data.indices import nested_indices
    from scalinglab.runner import run_study
    from scalinglab.train.user import Trial, run_user_trial

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fstudy = _study(tmp, 'function = "trivial:train"', seeds=4)
        specs = _specs(fstudy, args.trials, tmp / "trials")
        run_user_trial(specs[0])  # import the module and warm the caches outside the timing
        sys.path.insert(0, str(tmp))
        import trivial

        ready = [Trial(s, "cpu", tmp, nested_indices(s["data"], s["data_size"])) for s in specs]
        rows.append(("bare loop", per_trial_ms(trivial.train, ready), len(ready)))
        rows.append(("function runner", per_trial_ms(run_user_trial, specs), len(specs)))

        t0 = time.perf_counter()
        s = run_study(fstudy, tmp / "out", log=lambda m: None)
        n = s["trials"]["total"]
        rows.append(("function, study", 1e3 * (time.perf_counter() - t0) / n, n))

        for label, cmd in (
            ("command (echo)", '["/bin/echo", "{\\"dev\\": 0.1}"]'),
            ("command (python)", f'["{sys.executable}", "-c", "print(\'{{\\"dev\\": 0.1}}\')"]'),
        ):
            cstudy = _study(tmp, f"command = {cmd}", seeds=4)
            cspecs = _specs(cstudy, args.trials, tmp / "trials")
            first = run_user_trial(cspecs[0])
            assert first["status"] == "ok", first.get("error")
            rows.append((label, per_trial_ms(run_user_trial, cspecs), len(cspecs)))

    base = rows[0][1]  # the trainer's own time: what is left is scalinglab's
    print(f"{'runner':<18} {'trials':>6} {'ms/trial':>9} {'overhead ms':>12}")
    for label, ms, n in rows:
        print(f"{label:<18} {n:>6} {ms:>9.3f} {ms - base:>12.3f}")
    print(
        f"goals: function < 50 ms (runner {rows[1][1]:.1f}, whole study {rows[2][1]:.1f}); "
        f"command < 300 ms (echo {rows[3][1]:.1f}, python {rows[4][1]:.1f})"
    )


if __name__ == "__main__":
    main()
