"""``bench validate SUITE...``: every check ``run`` makes, without running."""
from __future__ import annotations

import sys

from . import _args

HELP = "validate suite files (and load their data)"


def add_arguments(p) -> None:
    p.add_argument("suites", nargs="+")
    p.add_argument("--no-data", action="store_true", help="check the YAML only, do not load data")
    p.add_argument("--predictors", help="also check these predictor specs (as `run --predictors` would)")


def main(args) -> int:
    from predictors.registry import split_specs

    from ..cli import ERRORS
    from ..suite import load_suite

    failed = 0
    for path in args.suites:
        try:
            suite = load_suite(path)
            _args.check_specs(suite.predictors, f"{suite.path}: predictors")
            if args.predictors:
                _args.check_specs(split_specs(args.predictors), "--predictors")
            for t in suite.tasks:
                if not args.no_data:
                    n = len(t.records)
                    print(f"{path}: task {t.name}: {n} records, seeds {t.seeds}, targets {list(t.targets)}")
                    for note in t.data.notes:
                        print(f"{path}: task {t.name}: note: {note}")
            print(f"{path}: ok")
        except ERRORS as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0
