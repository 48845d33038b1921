"""``python -m bench search-bench``: how fast a distilled search is on this CPU, as ratios to the targets.

Measures (1) a full 30-iteration HAT search scored by ``distill`` under the latency constraint (median of
``--repeats`` fresh searches; scorer fitting excluded and reported apart), (2) one batched distilled prediction
of 10 architectures (median of 1,000), (3) the hybrid (distill, then ``gp``) vs non-hybrid (``gp`` only) cost
with the same seed.  Prints ratios side by side and writes ``reports/search/benchmark.md``.
"""
from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

from ..outdir import out_file
from ..search.evolve import EvoParams
from ..search.run import DEFAULT_LATENCY, fit_predictor, pick_target, run_search
from ..suite import load_suite
from . import _args

HELP = "benchmark: search time, distilled query time, hybrid cost ratio"


def add_arguments(p):
    _args.suite(p, default="suites/wmt14.yaml")
    _args.task(p)
    p.add_argument("--scorer", default="distill[teacher=gp]")
    p.add_argument("--then", default="gp", help="second-stage scorer of the hybrid comparison")
    p.add_argument("--latency-ms", type=float, default=150.0)
    p.add_argument("--latency-predictor", default=DEFAULT_LATENCY)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    _args.out(p, "folder for benchmark.md (default reports/search/); a path ending in .md names the file")
    _args.no_write(p)


def main(args) -> int:
    args.suite = _args.suite_path(args)
    _args.one(args.task, "--task")
    suite = load_suite(args.suite)
    task = suite.task(args.task) if args.task else suite.tasks[0]
    target, split = pick_target(task, None, "quality"), task.seeds[0]
    fitted = {}
    for spec in (args.scorer, args.then):
        print(f"fitting {spec}...", file=sys.stderr)
        fitted[spec] = fit_predictor(spec, task, target, split, {})
    lat_pred = fit_predictor(args.latency_predictor, task, pick_target(task, None, "latency"), split, {}).pred

    def cargs():
        return {"latency": lambda a: lat_pred.predict(a), "latency_ms": args.latency_ms}

    params, opts = EvoParams(), {"amortize_over": 1}
    times = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        run = run_search(task, [(0, args.scorer)], fitted, cargs(), params, args.seed + r, split, target, opts, False)
        times.append(time.perf_counter() - t0)
    search_s = float(np.median(times))
    pred = fitted[args.scorer].pred
    batch = [r.arch for r in task.split(split)[1]][:10]
    pred.predict(batch)
    q = []
    for _ in range(1000):
        t0 = time.perf_counter()
        pred.predict(batch)
        q.append(time.perf_counter() - t0)
    q10_ms = 1000 * float(np.median(q))
    hyb = run_search(task, [(0, args.scorer), (params.iterations // 2, args.then)], fitted, cargs(), params,
                     args.seed, split, target, opts, False)
    base = run_search(task, [(0, args.then)], fitted, cargs(), params, args.seed, split, target, opts, False)

    def ratio(a, b):
        return a / b if b else float("nan")

    he, be = hyb["ledger"]["expensive"], base["ledger"]["expensive"]
    hs, bs = hyb["spend"]["wall_s"], base["spend"]["wall_s"]
    rows = [
        [f"30-iteration search scored by {args.scorer} (s, median of {args.repeats}, constraint incl.)",
         f"{search_s:.3f}", "5 s (target)", f"{ratio(search_s, 5.0):.3f}"],
        ["  of which latency predictor (s)", f"{run['spend']['wall_s']['constraint']:.3f}", "", ""],
        [f"  of which {args.scorer} scoring (s)", f"{run['spend']['wall_s']['score'][args.scorer]:.3f}", "", ""],
        [f"fit {args.scorer} once (s, excluded above; student from cache: "
         f"{fitted[args.scorer].pred.details().get('student_cached', 'n/a')})", f"{fitted[args.scorer].fit_s:.2f}", "", ""],
        ["distilled prediction, batch of 10 archs (ms, median of 1000)", f"{q10_ms:.3f}", "1 ms (target)",
         f"{ratio(q10_ms, 1.0):.3f}"],
        ["  vs the paper's LLM-Distill-PP (10 ms per 10 archs, reported)", f"{q10_ms:.3f}", "10 ms",
         f"{ratio(q10_ms, 10.0):.4f}"],
        [f"expensive ({args.then}) HAT-style evaluations: hybrid vs non-hybrid", he["hat_evals"], be["hat_evals"],
         f"{ratio(he['hat_evals'], be['hat_evals']):.3f}"],
        [f"expensive ({args.then}) distinct queries: hybrid vs non-hybrid", he["queries"], be["queries"],
         f"{ratio(he['queries'], be['queries']):.3f}"],
        [f"expensive ({args.then}) scoring wall time (s): hybrid vs non-hybrid", f"{hs['expensive_score']:.3f}",
         f"{bs['expensive_score']:.3f}", f"{ratio(hs['expensive_score'], bs['expensive_score']):.3f}"],
        ["search wall time (s): hybrid vs non-hybrid", f"{hs['search']:.3f}", f"{bs['search']:.3f}",
         f"{ratio(hs['search'], bs['search']):.3f}"],
        [f"best predicted {target} (by {args.then}): hybrid vs non-hybrid", f"{hyb['best']['final_score']:.3f}",
         f"{base['best']['final_score']:.3f}", f"{ratio(hyb['best']['final_score'], base['best']['final_score']):.4f}"],
    ]
    text = tabulate(rows, headers=["measure", "value", "baseline", "ratio"], tablefmt="github")
    print(text)
    if not args.no_write:
        out = out_file(args.out, Path("reports/search/benchmark.md"), "benchmark.md", (".md",))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join([
            f"# Search benchmark: {task.name}, latency <= {args.latency_ms:g} ms (`{args.latency_predictor}`)", "",
            f"Machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
            "shared CPU (numbers vary with load). Command: `python -m bench search-bench "
            f"{args.suite}{' --task ' + args.task if args.task else ''}`. The expensive scorer `{args.then}` is a "
            "stand-in for HAT's supernet, which cannot run offline; its cost is counted in evaluations.", "",
            text, ""]))
        print(f"wrote {out}", file=sys.stderr)
    return 0
