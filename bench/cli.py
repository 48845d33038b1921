"""One CLI: ``bench <command>`` (or ``python -m bench``).  The dispatcher only: the commands are in bench/commands/.

Every command runs inside one ``bench.invocation.Run`` (its argv, options, budget and the files it reads), and
bad input of any command is one ``error:`` line and exit 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from predictors.registry import SpecError

from .cache import CacheError
from .commands import COMMANDS
from .data import DataError
from .invocation import Run
from .outdir import UsageError
from .space import ArchError
from .suite import SuiteError

__all__ = ["COMMANDS", "ERRORS", "UsageError", "main"]

# Bad input: printed as one `error: ...` line, exit 2, never a traceback.
ERRORS = (SuiteError, DataError, ArchError, UsageError, SpecError, CacheError)

# Count and budget flags of every subcommand: zero or negative is a usage error, not a silent no-op.
POSITIVE = {"n": "--n", "max_calls": "--max-calls", "max_dollars": "--max-dollars", "concurrency": "--concurrency",
            "samples": "--samples"}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + traceback-looking noise
        self.exit(2, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")


def _check_positive(args) -> None:
    for attr, flag in POSITIVE.items():
        v = getattr(args, attr, None)
        if v is not None and not v > 0:
            raise UsageError(f"{flag}: must be greater than 0, got {v}")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="python -m bench", description="Benchmark NAS performance predictors.")
    sub = top.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"bench.commands.{module}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main)
    return top


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    run = Run(argv=list(sys.argv) if argv is None else ["bench", *argv])
    try:
        _check_positive(args)
        with run:
            return args._main(args)
    except ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: stopped; answers already received are kept in the cache and a re-run resumes "
              "from them; nothing was written over earlier results", file=sys.stderr)
        return 130
