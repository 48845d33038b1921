"""One CLI: ``python -m bench <command>``.  Subcommands register themselves in COMMANDS."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from predictors.registry import SpecError

from . import executors, report
from .cache import CacheError
from .data import DataError
from .space import ArchError
from .suite import SuiteError, load_suite


class UsageError(ValueError):
    """A bad flag or spec: one line, exit 2."""


# Bad input: printed as one `error: ...` line, exit 2, never a traceback.
ERRORS = (SuiteError, DataError, ArchError, UsageError, SpecError, CacheError)

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
    "ranks": ("bench.ranks", "mean ranks across suites: Friedman test and critical-difference diagram"),
    "sweep-bench": ("bench.sweep_bench", "benchmark: sweep wall time with 2 workers vs 1 (local, Ray); Ray start-up"),
    "supernet": ("bench.supernet", "train weight-sharing supernets (HAT, layer-/neuron-wise MoS); benchmark them"),
}


# ---------------------------------------------------------------- run
def add_run(p):
    p.add_argument("suite", help="suite YAML, e.g. suites/wmt14.yaml")
    p.add_argument("--predictors", help="comma list of predictor specs (default: the suite's list)")
    p.add_argument("--tasks", help="comma list of task names (default: all)")
    p.add_argument("--targets", help="comma list of targets, or 'all' (default: each task's primary target)")
    p.add_argument("--out", type=Path, help="output dir (default: a new runs/<suite>/<UTC time>/, with runs/<suite>/"
                                            "latest pointing at it); the committed reports/ only when named here")
    p.add_argument("--format", choices=["markdown", "csv", "json"], default="markdown", help="stdout format")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; write no files")
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


RUN_OPTIONS = ("llm", "concurrency", "max_calls", "max_dollars", "samples", "refresh_failures")


def check_specs(specs, where: str) -> None:
    """Every spec parses and names a registered predictor with valid options, before anything runs."""
    from predictors.registry import SpecError, check_spec

    for spec in specs:
        try:
            check_spec(spec)
        except SpecError as exc:
            raise UsageError(f"{where}: {exc}") from None


def _writable_dir(out: Path, flag: str = "--out ") -> None:
    """Fail before running (not after an hour of LLM calls) when --out cannot be written."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag}{out}: not writable ({exc.strerror or exc}); choose a folder you can write"
                         + ("" if flag else " with --out")) from None


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def run_dir(suite_name: str, root: Path = Path("runs")) -> Path:
    """A new runs/<suite>/<UTC time>/ folder (git-ignored), never an existing one."""
    import datetime as dt

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = root / suite_name
    out, i = base / stamp, 1
    while out.exists():
        i += 1
        out = base / f"{stamp}-{i}"
    return out


def point_latest(out: Path) -> Path:
    """runs/<suite>/latest -> the newest run folder (a relative symlink; a text file where links fail)."""
    import os

    latest = out.parent / "latest"
    tmp = out.parent / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(out.name, tmp)
        os.replace(tmp, latest)
    except OSError:
        if latest.is_symlink():
            latest.unlink()
        latest.write_text(out.name + "\n")
    return latest


def verdict(res, specs: list[str], explicit: bool, budget: dict) -> tuple[list[str], list[str]]:
    """(problems, warnings).  Problems fail the run: nothing ran (every predictor skipped or failed, whether the
    user named them or the suite did), or a row at 0% coverage (a budget spent before that row got an answer,
    a predictor that only returned NaN).  A predictor the user named that produced nothing while others ran is
    a warning on stderr; a suite-default one skipped here (llm-pp without a key) stays a note in the leaderboard."""
    problems, warnings = [], []
    if not res.rows:
        reasons = sorted({f"{s['predictor']}: {s['reason']}" for s in res.skipped})
        problems.append("nothing ran: every " + ("requested " if explicit else "") + "predictor was skipped or "
                        "failed (" + "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "") + ")")
        return problems, warnings
    if explicit:
        for spec in specs:
            if spec not in res.produced:
                why = next((s["reason"] for s in res.skipped if s["predictor"] == spec), "no result")
                warnings.append(f"--predictors {spec}: produced no result ({why})")
    for r in res.rows:
        if r["metric"] == "coverage" and r["mean"] is not None and not r["mean"] > 0:
            cause = f" (budget {budget} spent)" if budget else ""
            problems.append(f"{r['task']}/{r['target']}/{r['predictor']}: 0% coverage{cause}; no prediction was made")
    return problems, warnings


def cmd_run(args) -> int:
    from predictors.registry import split_specs

    from .invocation import Run
    from .runner import run_suite

    suite = load_suite(args.suite)
    explicit = bool(args.predictors)
    specs = split_specs(args.predictors) if explicit else suite.predictors
    if explicit and not specs:
        raise UsageError("--predictors: empty list; give comma-separated specs, e.g. --predictors mean,gp")
    check_specs(specs, "--predictors" if explicit else f"{suite.path}: predictors")
    out, made = None, False
    if not args.no_write:
        out = args.out or run_dir(suite.name)
        made = not out.exists()
        _writable_dir(out if args.out else out.parent, "--out " if args.out else "")  # fail before running
    options = {k: getattr(args, k) for k in RUN_OPTIONS if getattr(args, k, None) not in (None, False)}
    run = Run(options=options)
    with executors.using(executors.from_args(args, threads=None)):
        res = run_suite(suite, predictors=specs,
                        tasks=args.tasks.split(",") if args.tasks else None,
                        targets=args.targets.split(",") if args.targets else None,
                        progress=not args.no_progress, run=run, split=args.split)
    results = res.to_json()
    problems, warnings = verdict(res, specs, explicit, run.budget)
    if args.format == "json":
        print(report.dumps(results["results"]))
    elif args.format == "csv":  # the tidy frame of bench.load_results: one row per ... x metric x seed
        from .api import to_frame

        print(to_frame(results).to_csv(index=False), end="")
    else:
        print(report.markdown(results))
    for w in warnings:
        print(f"warning: {args.suite}: {w}", file=sys.stderr)
    if problems:
        for p in problems:
            print(f"error: {args.suite}: {p}", file=sys.stderr)
        if made:
            _remove_if_empty(out)
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
    p.add_argument("--baseline", type=Path, help="baseline results.json (default: the committed "
                                                 "reports/<suite>/results.json)")
    p.add_argument("--results", type=Path, help="compare these results instead of a fresh run")
    p.add_argument("--predictors", help="comma list (default: those in the baseline)")


def _read_json(path: Path, flag: str) -> dict:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{flag} {path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} {path}: not JSON ({exc.msg}, line {exc.lineno}); expected a results.json "
                         f"written by `bench run`") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("results"), list):
        raise UsageError(f"{flag} {path}: no 'results' list; expected a results.json written by `bench run`")
    return obj


def default_baseline(suite) -> Path:
    """The committed reports/<suite>/results.json: under the working directory, else next to the suite's folder."""
    here = Path("reports") / suite.name / "results.json"
    if here.exists():
        return here
    beside = suite.path.resolve().parent.parent / "reports" / suite.name / "results.json"
    return beside if beside.exists() else here


def cmd_check(args) -> int:
    from predictors.registry import split_specs

    from .gate import compare
    from .runner import run_suite

    suite = load_suite(args.suite)
    baseline_path = args.baseline or default_baseline(suite)
    baseline = _read_json(baseline_path, "--baseline")
    if args.results:
        new = _read_json(args.results, "--results")
    else:
        preds = split_specs(args.predictors) if args.predictors else sorted({r["predictor"] for r in baseline["results"]})
        check_specs(preds, "--predictors" if args.predictors else f"--baseline {baseline_path}")
        targets = sorted({r["target"] for r in baseline["results"]})
        new = run_suite(suite, predictors=preds, targets=targets or None, progress=False,
                        split=(baseline.get("split") or {}).get("kind", "random")).to_json()
        if args.predictors:  # gate only what was re-run
            ran = {r["predictor"] for r in new["results"]} | set(preds)
            baseline = dict(baseline, results=[r for r in baseline["results"] if r["predictor"] in ran])
    from .metrics import gate_tolerances

    ok, text = compare(new, baseline, suite.gate)
    print(text)
    print(f"gate {'passed' if ok else 'FAILED'} for suite {suite.name} against {baseline_path} "
          f"(tolerances: {gate_tolerances(suite.gate)})")
    return 0 if ok else 1


# ---------------------------------------------------------------- validate
def add_validate(p):
    p.add_argument("suites", nargs="+")
    p.add_argument("--no-data", action="store_true", help="check the YAML only, do not load data")
    p.add_argument("--predictors", help="also check these predictor specs (as `run --predictors` would)")


def cmd_validate(args) -> int:
    from predictors.registry import split_specs

    failed = 0
    for path in args.suites:
        try:
            suite = load_suite(path)
            check_specs(suite.predictors, f"{suite.path}: predictors")
            if args.predictors:
                check_specs(split_specs(args.predictors), "--predictors")
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


LOCAL = {"run": (add_run, cmd_run), "list": (add_list, cmd_list), "check": (add_check, cmd_check),
         "validate": (add_validate, cmd_validate)}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + traceback-looking noise
        self.exit(2, f"error: {self.prog}: {message}; see `{self.prog} --help`\n")


# Count and budget flags of every subcommand: zero or negative is a usage error, not a silent no-op.
POSITIVE = {"n": "--n", "max_calls": "--max-calls", "max_dollars": "--max-dollars", "concurrency": "--concurrency",
            "samples": "--samples"}


def _check_positive(args) -> None:
    for attr, flag in POSITIVE.items():
        v = getattr(args, attr, None)
        if v is not None and not v > 0:
            raise UsageError(f"{flag}: must be greater than 0, got {v}")


def main(argv=None) -> int:
    import importlib

    parser = _Parser(prog="python -m bench", description="Benchmark NAS performance predictors.")
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
        _check_positive(args)
        return handlers[args.command](args)
    except ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: stopped; answers already received are kept in the cache and a re-run resumes "
              "from them; nothing was written over earlier results", file=sys.stderr)
        return 130

