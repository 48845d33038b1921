"""``bench run SUITE``: score predictors on a suite and write a leaderboard."""
from __future__ import annotations

import sys

from .. import executors, report
from ..outdir import UsageError, point_latest, remove_if_empty, run_dir, writable_dir
from . import _args

HELP = "score predictors on a suite and write a leaderboard"
RUN_OPTIONS = ("llm", "concurrency", "max_calls", "max_dollars", "samples", "refresh_failures")


def add_arguments(p) -> None:
    _args.suite(p)
    p.add_argument("--predictors", help="comma list of predictor specs (default: the suite's list)")
    _args.tasks(p)
    _args.targets(p)
    _args.out(p, "output dir (default: a new runs/<suite>/<UTC time>/, with runs/<suite>/latest pointing at it); "
                 "the committed reports/ only when named here")
    _args.fmt(p, ("markdown", "csv", "json"))
    _args.no_progress(p)
    _args.no_write(p)
    p.add_argument("--llm", help="LLM backend for llm-pp predictors, PROVIDER:MODEL")
    p.add_argument("--concurrency", type=int, help="concurrent LLM requests")
    p.add_argument("--max-calls", type=int, help="run-level budget: at most this many LLM calls")
    p.add_argument("--max-dollars", type=float, help="run-level budget: at most this many dollars")
    p.add_argument("--samples", type=int, help="LLM answers per architecture (repeatability: mean and std)")
    p.add_argument("--split", default="random", choices=["random", "ood-depth"],
                   help="random: the task's seeded splits (default); ood-depth: train shallow, test deep decoders")
    executors.add_arguments(p)  # zero-cost proxies over a pool (distill[teacher=zc-all]) run on it
    p.add_argument("--refresh-failures", action="store_true",
                   help="re-ask LLM requests whose cached answer was a failure (unparseable or implausible)")


def main(args) -> int:
    from predictors.registry import split_specs

    from ..invocation import Run, current
    from ..runner import run_suite, verdict
    from ..suite import load_suite

    suite = load_suite(args.suite)
    explicit = bool(args.predictors)
    specs = split_specs(args.predictors) if explicit else suite.predictors
    if explicit and not specs:
        raise UsageError("--predictors: empty list; give comma-separated specs, e.g. --predictors mean,gp")
    _args.check_specs(specs, "--predictors" if explicit else f"{suite.path}: predictors")
    out, made = None, False
    if not args.no_write:
        out = args.out or run_dir(suite.name)
        made = not out.exists()
        writable_dir(out if args.out else out.parent, "--out " if args.out else "")  # fail before running
    run = current() or Run()
    run.options.update({k: getattr(args, k) for k in RUN_OPTIONS if getattr(args, k, None) not in (None, False)})
    with executors.using(executors.from_args(args, threads=None)):
        res = run_suite(suite, predictors=specs, tasks=_args.comma_list(args.tasks),
                        targets=_args.comma_list(args.targets), progress=not args.no_progress, run=run,
                        split=args.split)
    results = res.to_json()
    problems, warnings = verdict(res, specs, explicit, run.budget)
    _print(results, args.format)
    for w in warnings:
        print(f"warning: {args.suite}: {w}", file=sys.stderr)
    if problems:
        for p in problems:
            print(f"error: {args.suite}: {p}", file=sys.stderr)
        if made:
            remove_if_empty(out)
        print("error: nothing was written" + (f" (an earlier result in {args.out} is untouched)"
                                              if args.out and not made else ""), file=sys.stderr)
        return 1
    if out is not None:
        try:
            md, js = report.write(results, out)
        except OSError as exc:
            raise UsageError(f"{'--out ' if args.out else ''}{out}: cannot write the results ({exc.strerror or exc})"
                             f"; choose a folder you can write with --out") from None
        latest = "" if args.out else f" ({point_latest(out)} points at it)"
        print(f"wrote {md} and {js}{latest}", file=sys.stderr)
    return 0


def _print(results: dict, fmt: str) -> None:
    if fmt == "json":
        print(report.dumps(results["results"]))
    elif fmt == "csv":  # the tidy frame of bench.load_results: one row per ... x metric x seed
        from ..api import to_frame

        print(to_frame(results).to_csv(index=False), end="")
    else:
        print(report.markdown(results))
