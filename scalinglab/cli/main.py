"""`scalinglab` command line: one module per subcommand, each with `register(sub)` and `run(args)`.

Errors a user can fix (`UserError`) become one line on stderr and exit code 2; `--debug` keeps the
traceback. Subcommand modules are imported lazily so `scalinglab --help` stays fast (no torch import).
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys

from scalinglab.errors import UserError

# name -> module under scalinglab.cli; each module defines HELP, register(parser), run(args) -> int
COMMANDS = {
    "run": "scalinglab.cli.run_cmd",
    "presets": "scalinglab.cli.presets_cmd",
    "export": "scalinglab.cli.export_cmd",
    "fit": "scalinglab.cli.fit_cmd",
    "status": "scalinglab.cli.status_cmd",
    "report": "scalinglab.cli.report_cmd",
    "diagnose": "scalinglab.cli.diagnose_cmd",
    "plan": "scalinglab.cli.plan_cmd",
    "backtest": "scalinglab.cli.backtest_cmd",
    "reproduce": "scalinglab.cli.reproduce_cmd",
}


def _available():
    for name, modname in COMMANDS.items():
        try:
            yield name, importlib.import_module(modname)
        except ModuleNotFoundError as e:  # a command whose module is not written yet
            if e.name != modname:
                raise


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scalinglab",
        description="Measure learning curves and model-size laws, fit them, and decide what to buy.",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available():
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for errors")
        mod.register(sp)
        sp.set_defaults(_run=mod.run)
    return p


def _environment_fault(e: BaseException) -> bool:
    import errno

    if isinstance(e, sqlite3.OperationalError):
        return any(
            w in str(e) for w in ("disk is full", "readonly database", "disk I/O error", "unable to open database")
        )
    return getattr(e, "errno", None) in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except UserError as e:
        if args.debug:
            raise
        print(f"scalinglab: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, sqlite3.OperationalError) as e:
        # The machine, not the input: a full disk, a read-only or vanished folder. Finished trials are
        # committed one by one, so the store stays consistent; anything else is a bug (traceback).
        if args.debug or not _environment_fault(e):
            raise
        print(
            f"scalinglab: error: {' '.join(str(e).split())} (finished trials are in the store; free the "
            f"space or fix the folder and rerun to resume)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("scalinglab: interrupted; finished trials are in the store, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
