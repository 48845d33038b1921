"""``bench hsnas SUITE --task T``: HS-NAS end to end on a measured task (constraint, teacher, distillation,
hybrid / supernet-only / random searches, training what was found, report); resumable, stage by stage.
The pipeline is ``bench.hsnas``; its outputs ``bench.hsnas_report``."""
from __future__ import annotations

from . import _args

HELP = "HS-NAS end to end: search with distill+supernet, train what was found, measure what it cost"


def add_arguments(p) -> None:
    _args.suite(p, help="suite YAML whose task has a measure: block and measured records, e.g. suites/americasnlp.yaml")
    _args.task(p, required=True, help="task name, e.g. bzd-es")
    _args.target(p, "quality target (default: the task's first quality target)")
    _args.out(p, "output folder (default reports/hsnas/<task>); a rerun into it reuses every finished stage")
    p.add_argument("--seeds", default="0,1,2", help="search seeds (default 0,1,2)")
    p.add_argument("--modes", default="hybrid,supernet-only,random", help="comma list of hybrid, supernet-only, random")
    p.add_argument("--checkpoint", help="HAT supernet checkpoint (default: the supernet predictor's lookup)")
    p.add_argument("--gflops", type=float, help="FLOPs limit in GFLOPs (default: --flops-quantile of the space)")
    p.add_argument("--flops-quantile", type=float, default=0.5,
                   help="limit = this quantile of the GFLOPs of --flops-sample random architectures (default 0.5)")
    p.add_argument("--flops-sample", type=int, default=2000, help="seeded random architectures for the quantile")
    p.add_argument("--teacher", help="distillation teacher spec (default: the best of --candidates by Kendall tau)")
    p.add_argument("--candidates", default="linear,gp,rf,mlp,params,params-no-emb,flops",
                   help="offline teacher candidates, ranked on the task's records")
    p.add_argument("--pool", type=int, default=2000, help="architectures the teacher labels for the student")
    p.add_argument("--distill-steps", type=int, default=5000, help="student training steps (the paper's 5000)")
    p.add_argument("--population", type=int, help=_args.SUPPRESS)
    p.add_argument("--parents", type=int, default=4, help="HAT 25; default 4")
    p.add_argument("--mutations", type=int, default=8, help="HAT 50; default 8")
    p.add_argument("--crossovers", type=int, default=8, help="HAT 50; default 8 (population = sum: 20)")
    p.add_argument("--iterations", type=int, default=10, help="HAT 30; default 10")
    p.add_argument("--switch-at", type=int, help="hybrid: first supernet iteration (default iterations // 2)")
    p.add_argument("--mutation-prob", type=float, default=0.3)
    p.add_argument("--best-seeds", default="1,2", help="extra training seeds for the best found architecture")
    p.add_argument("--no-train", action="store_true", help="search only (smoke runs)")
    p.add_argument("--max-steps", type=int, help="smoke runs: cap training at N steps (another recipe hash)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    _args.no_progress(p)


def main(args) -> int:
    from ..hsnas import main as run
    from ..outdir import UsageError

    _args.one(args.task, "--task")
    _args.one(args.target, "--target")
    if args.population is not None and args.population != args.parents + args.mutations + args.crossovers:
        raise UsageError(f"--population {args.population}: must equal --parents + --mutations + --crossovers "
                         f"({args.parents + args.mutations + args.crossovers}), as HAT asserts")
    return run(args)
