"""``bench search SUITE``: HAT's evolutionary search or the HS-NAS hybrid, any predictor as scorer; the
scorers, outputs and their determinism are described in the library half, ``bench.search.run``."""
from __future__ import annotations

from .. import executors
from ..outdir import UsageError
from ..search.run import DEFAULT_LATENCY
from . import _args

HELP = "HAT evolutionary search / HS-NAS hybrid with any predictor as scorer"


def add_arguments(p) -> None:
    _args.suite(p)
    _args.task(p)
    _args.target(p, "quality target the scorers are fitted on (default: the task's first quality target)")
    p.add_argument("--scorer", required=True, help="predictor spec scoring iterations < --switch-at (or all)")
    p.add_argument("--then", help="second-stage (expensive) scorer spec: the HS-NAS hybrid")
    p.add_argument("--switch-at", type=int, help="first iteration of --then (default: iterations // 2, as HS-NAS 0-14)")
    p.add_argument("--latency-ms", type=float, help="latency constraint (ms) on the latency predictor")
    p.add_argument("--latency-predictor", default=DEFAULT_LATENCY,
                   help=f"latency predictor spec (default {DEFAULT_LATENCY}, the paper's TitanXP predictor)")
    p.add_argument("--flops-constraint", type=float, help="GFLOPs constraint (computed, batch 1, 30+30 tokens)")
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--population", type=int, default=125)
    p.add_argument("--parents", type=int, default=25)
    p.add_argument("--mutations", type=int, default=50)
    p.add_argument("--crossovers", type=int, default=50)
    p.add_argument("--mutation-prob", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0, help="search RNG seed")
    p.add_argument("--split-seed", type=int, help="split the scorers are fitted on (default: see module doc)")
    _args.out(p, "output dir (default reports/search/<task>-<constraint>-seed<seed>)")
    p.add_argument("--compare-baseline", action="store_true",
                   help="also run the non-hybrid search (--then for all iterations) with the same seed")
    p.add_argument("--amortize-over", type=int, default=1,
                   help="number of searches that share the distillation teacher's labels (for the ledger)")
    p.add_argument("--expensive-s-per-eval", type=float,
                   help="seconds one expensive-scorer evaluation would take (e.g. a supernet pass) to project hours")
    p.add_argument("--llm", help="LLM backend for llm-pp scorers, PROVIDER:MODEL")
    _args.no_progress(p)
    p.add_argument("--seeds", help="comma list of search seeds, one search each as a task on --executor; outputs in "
                                   "OUT/seed<k>/ (default: the single --seed)")
    executors.add_arguments(p)


def main(args) -> int:
    """One search (``--seed``), or several (``--seeds``) spread over the executor's workers."""
    from ..search import run

    _args.one(args.task, "--task")
    _args.one(args.target, "--target")
    if not args.seeds:
        return run.search(args)
    try:
        seeds = list(dict.fromkeys(int(x) for x in args.seeds.split(",")))
    except ValueError:
        raise UsageError(f"--seeds {args.seeds}: must be a comma list of integers, e.g. 0,1,2") from None
    return run.search_seeds(args, seeds)
