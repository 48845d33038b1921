"""``bench ranks RESULTS...``: mean ranks across suites, a Friedman test and critical-difference diagrams."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from . import _args

HELP = "mean ranks across suites: Friedman test and critical-difference diagram"


def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", type=Path, help="results.json files of several suites (bench run)")
    _args.out(p, "folder for ranks.md and the critical-difference PNGs (default: print)")


def main(args) -> int:
    from ..ranks import across_suites, plot

    results = {}
    for path in args.results:
        try:
            res = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"error: {path}: cannot read results ({exc}); pass results.json files written by `bench run`",
                  file=sys.stderr)
            return 2
        if "targets" not in res:
            print(f"error: {path}: no 'targets' block (written before bench ranks existed); re-run `bench run`",
                  file=sys.stderr)
            return 2
        results[path] = res
    text, out = across_suites(results)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ranks.md").write_text(text)
        for fr in out.values():
            if not fr.get("reason"):
                plot(fr, args.out / fr["png"])
        print(f"wrote {args.out / 'ranks.md'}", file=sys.stderr)
    return 0
