"""The flags every command spells the same way.

A suite is the first positional argument; ``--tasks`` names tasks (a comma list; a command that takes one task
takes one name) and ``--task`` is accepted for it everywhere; ``--targets`` likewise (``--target``); ``--out`` is
a folder; ``--no-write`` prints only; ``--no-progress`` hides progress bars; ``--format`` picks what stdout shows.
Older spellings that committed reports and READMEs use stay accepted, hidden from ``--help``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..outdir import UsageError

SUPPRESS = argparse.SUPPRESS


def suite(p, default: str | None = None, help: str = "suite YAML, e.g. suites/wmt14.yaml") -> None:
    """The suite, positional (optional when there is a default); ``--suite PATH`` is a hidden alias."""
    if default is None:
        p.add_argument("suite", help=help)
    else:
        p.add_argument("suite", nargs="?", default=None, help=f"{help} (default {default})")
        p.set_defaults(_suite_default=default)
    p.add_argument("--suite", dest="suite_flag", metavar="SUITE", help=SUPPRESS)


def suite_path(args) -> str:
    """The suite the user named (positional or ``--suite``), else the command's default."""
    return args.suite or getattr(args, "suite_flag", None) or args._suite_default


def tasks(p, help: str = "comma list of task names (default: all)") -> None:
    p.add_argument("--tasks", help=help)
    p.add_argument("--task", dest="tasks", help=SUPPRESS)


def task(p, required: bool = False, help: str = "task name (default: the suite's first task)") -> None:
    """One task: ``--task NAME`` (``--tasks NAME`` is accepted too, as everywhere)."""
    p.add_argument("--task", required=required, help=help)
    p.add_argument("--tasks", dest="task", help=SUPPRESS)


def targets(p, help: str = "comma list of targets, or 'all' (default: each task's primary target)") -> None:
    p.add_argument("--targets", help=help)
    p.add_argument("--target", dest="targets", help=SUPPRESS)


def target(p, help: str, default: str | None = None) -> None:
    """One target: ``--target NAME`` (``--targets NAME`` is accepted too)."""
    p.add_argument("--target", default=default, help=help)
    p.add_argument("--targets", dest="target", help=SUPPRESS)


def out(p, help: str) -> None:
    p.add_argument("--out", type=Path, metavar="DIR", help=help)


def no_write(p) -> None:
    p.add_argument("--no-write", action="store_true", help="print only; write no files")


def no_progress(p) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def fmt(p, choices: tuple[str, ...] = ("text", "json"), default: str | None = None) -> None:
    """``--format``; where ``json`` is a choice, ``--json`` (a flag, as before) is a hidden alias."""
    p.add_argument("--format", choices=list(choices), default=default or choices[0], help="what stdout shows")
    if "json" in choices:
        p.add_argument("--json", dest="format", action="store_const", const="json", help=SUPPRESS)


def comma_list(value: str | None) -> list[str] | None:
    return value.split(",") if value else None


def one(value: str | None, flag: str) -> str | None:
    """A one-task (or one-target) command given a comma list: say so instead of looking for a task named 'a,b'."""
    if value and "," in value:
        raise UsageError(f"{flag} {value}: this command takes one name; give one, e.g. {flag} {value.split(',')[0]}")
    return value


def check_specs(specs, where: str) -> None:
    """Every spec parses and names a registered predictor with valid options, before anything runs."""
    from predictors.registry import SpecError, check_spec

    for spec in specs:
        try:
            check_spec(spec)
        except SpecError as exc:
            raise UsageError(f"{where}: {exc}") from None
