"""One CLI: ``python -m bench <command>``.  Subcommands register themselves in COMMANDS."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import report
from .data import DataError
from .space import ArchError
from .suite import SuiteError, load_suite

# name -> (module, help); each module has add_arguments(parser) and main(args) -> int
COMMANDS = {
    "run": ("bench.cli", "score predictors on a suite and write a leaderboard"),
    "list": ("bench.cli", "list every registered predictor"),
    "check": ("bench.cli", "CI gate: fail when predictor quality regresses against a baseline"),
    "validate": ("bench.cli", "validate suite files (and load their data)"),
    "latency": ("bench.latency_cli", "measure latency on this device (HAT protocol); latency learning curves"),
    "measure": ("bench.measure", "train sampled architectures from scratch on a task's corpus and record them"),
    "prompt": ("bench.llm.promptcmd", "print the exact LLM-PP prompt for one architecture (spends nothing)"),
    "llm-bench": ("bench.llm.throughput", "LLM client throughput: concurrency 1 vs N against a local server"),
    "pool-flops": ("bench.poolcosts", "pool GFLOPs: released (En-De vocabulary) vs recomputed for the task's vocabulary"),
    "zc-bench": ("bench.model.zcbench", "benchmark: every zero-cost proxy on a task's labelled architectures, cold"),
    "search": ("bench.search_cli", "HAT evolutionary search / HS-NAS hybrid with any predictor as scorer"),
    "distill-curve": ("bench.distill_curve", "LLM-Distill-PP learning curve over pool size, teacher vs student"),
    "search-bench": ("bench.search_bench", "benchmark: search time, distilled query time, hybrid cost ratio"),
    "supernet": ("bench.supernet", "train weight-sharing supernets (HAT, layer-/neuron-wise MoS); benchmark them"),
}


# ---------------------------------------------------------------- run
def add_run(p):
    p.add_argument("suite", help="suite YAML, e.g. suites/wmt14.yaml")
    p.add_argument("--predictors", help="comma list of predictor specs (default: the suite's list)")
    p.add_argument("--tasks", help="comma list of task names (default: all)")
    p.add_argument("--targets", help="comma list of targets, or 'all' (default: each task's primary target)")
    p.add_argument("--out", type=Path, help="output dir (default reports/<suite>/)")
    p.add_argument("--format", choices=["markdown", "csv", "json"], default="markdown", help="stdout format")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
    p.add_argument("--llm", help="LLM backend for llm-pp predictors, PROVIDER:MODEL")
    p.add_argument("--concurrency", type=int, help="concurrent LLM requests")
    p.add_argument("--max-calls", type=int, help="run-level budget: at most this many LLM calls")
    p.add_argument("--max-dollars", type=float, help="run-level budget: at most this many dollars")
    p.add_argument("--samples", type=int, help="LLM answers per architecture (repeatability: mean and std)")


def cmd_run(args) -> int:
    from predictors.registry import split_specs

    from .runner import run_suite

    suite = load_suite(args.suite)
    options = {k: getattr(args, k) for k in ("llm", "concurrency", "max_calls", "max_dollars", "samples")
               if getattr(args, k, None) is not None}
    res = run_suite(suite, predictors=split_specs(args.predictors) if args.predictors else None,
                    tasks=args.tasks.split(",") if args.tasks else None,
                    targets=args.targets.split(",") if args.targets else None,
                    options=options, progress=not args.no_progress)
    results = res.to_json()
    if args.format == "json":
        print(json.dumps(results["results"], indent=1))
    elif args.format == "csv":
        print(report.to_csv(results), end="")
    else:
        print(report.markdown(results))
    if not args.no_write:
        out = args.out or Path("reports") / suite.name
        md, js = report.write(results, out)
        print(f"wrote {md} and {js}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- list
def add_list(p):
    p.add_argument("--format", choices=["text", "json"], default="text")


def cmd_list(args) -> int:
    from tabulate import tabulate

    from predictors.registry import entries

    rows = []
    for name, e in sorted(entries().items(), key=lambda kv: (kv[1].family, kv[0])):
        why = e.availability({})
        needs = ", ".join(e.requires) or "nothing"
        rows.append({"name": name, "family": e.family, "what": e.description, "needs": needs,
                     "runs here": "yes" if not why else f"no: {why}"})
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(tabulate([list(r.values()) for r in rows], headers=list(rows[0]), tablefmt="github"))
        print("\nOptions: NAME[key=value,...], e.g. gp[features=fine]; see README.")
    return 0


# ---------------------------------------------------------------- check
def add_check(p):
    p.add_argument("suite")
    p.add_argument("--baseline", type=Path, help="baseline results.json (default reports/<suite>/results.json)")
    p.add_argument("--results", type=Path, help="compare these results instead of re-running")
    p.add_argument("--predictors", help="comma list (default: those in the baseline)")


def cmd_check(args) -> int:
    from predictors.registry import split_specs

    from .gate import compare
    from .runner import run_suite

    suite = load_suite(args.suite)
    baseline_path = args.baseline or Path("reports") / suite.name / "results.json"
    if not baseline_path.exists():
        print(f"error: baseline {baseline_path} not found", file=sys.stderr)
        return 2
    baseline = json.loads(baseline_path.read_text())
    if args.results:
        new = json.loads(args.results.read_text())
    else:
        preds = split_specs(args.predictors) if args.predictors else sorted({r["predictor"] for r in baseline["results"]})
        targets = sorted({r["target"] for r in baseline["results"]})
        new = run_suite(suite, predictors=preds, targets=targets, progress=False).to_json()
    ok, text = compare(new, baseline, suite.gate)
    print(text)
    print(f"gate {'passed' if ok else 'FAILED'} for suite {suite.name} (tolerances: {suite.gate})")
    return 0 if ok else 1


# ---------------------------------------------------------------- validate
def add_validate(p):
    p.add_argument("suites", nargs="+")
    p.add_argument("--no-data", action="store_true", help="check the YAML only, do not load data")


def cmd_validate(args) -> int:
    for path in args.suites:
        suite = load_suite(path)
        for t in suite.tasks:
            if not args.no_data:
                n = len(t.records)
                print(f"{path}: task {t.name}: {n} records, seeds {t.seeds}, targets {list(t.targets)}")
        print(f"{path}: ok")
    return 0


LOCAL = {"run": (add_run, cmd_run), "list": (add_list, cmd_list), "check": (add_check, cmd_check),
         "validate": (add_validate, cmd_validate)}


def main(argv=None) -> int:
    import importlib

    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmark NAS performance predictors.")
    sub = parser.add_subparsers(dest="command", required=True)
    handlers = {}
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if module == "bench.cli":
            add, fn = LOCAL[name]
        else:
            mod = importlib.import_module(module)
            add, fn = mod.add_arguments, mod.main
        add(p)
        handlers[name] = fn
    args = parser.parse_args(argv)
    try:
        return handlers[args.command](args)
    except (SuiteError, DataError, ArchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
