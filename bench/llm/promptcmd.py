"""``python -m bench prompt``: print the exact LLM-PP prompt that would be sent, spending nothing."""
from __future__ import annotations

import json
import sys

from .prompt import DEFAULT_TEMPLATE, PROBES, TEMPLATES, PromptBuilder, PromptError


def add_arguments(p) -> None:
    p.add_argument("suite", help="suite YAML, e.g. suites/wmt14.yaml")
    p.add_argument("--task", help="task name (default: the suite's first task)")
    p.add_argument("--seed", type=int, help="split seed (default: the task's first)")
    p.add_argument("--arch", type=int, default=0, help="index into the seed's test split (or the pool with --pool)")
    p.add_argument("--pool", action="store_true", help="--arch indexes the unlabelled pool")
    p.add_argument("--target", help="target (default: the task's first, e.g. valid_bleu; latency_ms for latency)")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, choices=TEMPLATES)
    p.add_argument("--demos", type=int, default=10, help="number of demonstrations (paper ablation: 1/3/10)")
    p.add_argument("--probe", default="none", choices=PROBES, help="memorisation probe rewrite")
    p.add_argument("--flops-vocab", type=int, help="vocabulary for computed GFLOPS (paper's pool rows: 32768)")
    p.add_argument("--constraint", type=float, help="GFLOPs constraint for the default_flops generator prompt")
    p.add_argument("--json", action="store_true", help="print the full request (messages + sampling params)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-tokens", type=int, default=25)


def main(args) -> int:
    from ..suite import load_suite

    suite = load_suite(args.suite)
    task = suite.task(args.task) if args.task else suite.tasks[0]
    seed = args.seed if args.seed is not None else task.seeds[0]
    target = args.target or task.default_target
    try:
        pb = PromptBuilder(task, target, seed, template=args.template, demos=args.demos, probe=args.probe,
                           flops_vocab=args.flops_vocab, constraint=args.constraint).demos_from_split()
        if args.template == "default_flops":
            text = pb.prefix
        else:
            archs = task.pool if args.pool else [r.arch for r in task.split(seed)[1]]
            if not 0 <= args.arch < len(archs):
                print(f"error: --arch {args.arch} out of range; allowed: 0..{len(archs) - 1}", file=sys.stderr)
                return 2
            text = pb.query(archs[args.arch])
    except PromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"messages": [{"role": "user", "content": text}], "temperature": args.temperature,
                          "max_tokens": args.max_tokens}, indent=1, ensure_ascii=False))
    else:
        sys.stdout.write(text)  # the exact bytes sent: no newline added (the prompt ends in "BLEU: ")
        sys.stdout.flush()
    return 0
