"""``bench llm-bench``: how fast the LLM client scores the 8,500-architecture pool (bench.llm.throughput)."""
from __future__ import annotations

import json

from . import _args

HELP = "LLM client throughput: concurrency 1 vs N against a local server"


def add_arguments(p) -> None:
    _args.suite(p, default="suites/wmt14.yaml")
    _args.task(p, help="task name (default wmt14-en-de)")
    p.set_defaults(task="wmt14-en-de")
    p.add_argument("--delay", type=float, default=0.02, help="server answer delay in seconds (default 0.02)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--n", type=int, default=8500, help="pool architectures scored at --concurrency")
    p.add_argument("--n1", type=int, default=400, help="architectures scored at concurrency 1 (a sample: it is slow)")
    _args.fmt(p, ("text", "json"))


def main(args) -> int:
    from ..llm.throughput import run

    args.suite = _args.suite_path(args)
    _args.one(args.task, "--task")
    res = run(args)
    if args.format == "json":
        print(json.dumps(res, indent=1))
        return 0
    c = args.concurrency
    print(f"llm-bench: {res['c1']['archs']} archs at concurrency 1, {res[f'c{c}']['archs']} at {c}; "
          f"server delay {1000 * args.delay:.0f} ms; {res['cpu_count']} CPUs")
    print(f"  concurrency 1 : {res['c1']['calls_per_s']:8.1f} calls/s  ({res['c1']['wall_s']} s)")
    print(f"  concurrency {c}: {res[f'c{c}']['calls_per_s']:8.1f} calls/s  ({res[f'c{c}']['wall_s']} s)")
    print(f"  speedup       : {res['speedup']:.1f}x (target >= 25x at 32)")
    print(f"  harness overhead per call at concurrency 1: {res['overhead_ms_per_call_c1']:.2f} ms "
          f"(server delay {1000 * args.delay:.0f} ms)")
    print(f"  client CPU per call (SDK + harness): {res['client_cpu_ms_per_call']:.2f} ms; "
          f"load average {res['load_avg_1m']} on {res['cpu_count']} CPUs (a busy machine caps the speedup)")
    print(f"  cached re-run : {res['cached_rerun']['calls']} calls, {res['cached_rerun']['us_per_arch']} us/arch")
    return 0
