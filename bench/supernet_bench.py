"""``python -m bench supernet bench``: what one supernet score costs against training the architecture itself.

For the first ``--n`` architectures ``bench measure`` samples for a task, side by side in one process
(same threads): (a) the supernet's ``score=loss`` query (extract the inherited weights, dev-split NLL) and
``score=metric`` query (extract, greedy-decode the dev split, chrF), cold, without the score cache; (b)
training the architecture from scratch with the task's ``measure`` recipe (``bench.mt.train.train``, early
stopping included) followed by its dev loss, the from-scratch route to the same number.  The ratio
(b)/(a) is the point of a supernet; its one-off training time (from the checkpoint's header) is reported
with the break-even number of architectures.  A query's cost does not depend on how well the supernet is
trained, so without ``--checkpoint`` a freshly initialised supernet of the task's space is timed.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from .suite import SuiteError, load_suite


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def add_arguments(p) -> None:
    p.add_argument("suite", help="suite YAML whose task has a `measure:` block")
    p.add_argument("--task", required=True)
    p.add_argument("--kind", default="hat", help="hat, layer-mos or neuron-mos (default hat)")
    p.add_argument("--checkpoint", type=Path, help="a supernet.pt (default: a freshly initialised supernet)")
    p.add_argument("--n", type=int, default=2, help="architectures (default 2; each is trained from scratch)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="also write the Markdown report here")


def main(args) -> int:
    import torch

    from .measure import prepare, sample_archs
    from .model.subtransformer import build_model
    from .model.supernet import KINDS, SuperTransformer
    from .mt.train import dev_loss, train, translate_and_score
    from .supernet import load_supernet

    if args.kind not in KINDS:
        raise SuiteError(f"--kind: {args.kind!r} is not allowed; allowed values: {list(KINDS)}")
    if args.n < 1:
        raise SuiteError(f"--n: must be >= 1, got {args.n}")
    if args.checkpoint and not args.checkpoint.is_file():
        raise SuiteError(f"--checkpoint: {args.checkpoint} not found")
    torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    task = suite.task(args.task)
    prep = prepare(task)
    r = prep.recipe
    head = None
    if args.checkpoint:
        model, head = load_supernet(args.checkpoint)
        if head.get("task") != task.name or head.get("kind") != args.kind:
            raise SuiteError(f"--checkpoint: {args.checkpoint} holds a {head.get('kind')} supernet of task "
                             f"{head.get('task')}, not {args.kind} of {task.name}")
    else:
        model = SuperTransformer(prep.space, len(prep.vocab), args.kind, seed=0).eval()
    archs = sample_archs(prep.space, args.n, prep.sample_seed)
    dev_loss(model.extract(model.smallest), prep.dev_pairs[:8], r, torch, "cpu")  # warm-up: lazy inits untimed
    rows = []
    for i, arch in enumerate(archs):
        c0 = _clock()
        sub = model.extract(arch)
        loss = dev_loss(sub, prep.dev_pairs, r, torch, "cpu")
        c1 = _clock()
        chrf = translate_and_score(model.extract(arch), prep.vocab, prep.corpus.splits["valid"], r, "cpu")["chrf"]
        c2 = _clock()
        torch.manual_seed(0)  # as bench measure (measure_one): the same training run as the record's seed 0
        scratch = build_model(arch, len(prep.vocab), prep.space.qkv_dim, r.dropout, r.attention_dropout, 1,
                              r.max_positions, seed=0)
        log = train(scratch, prep.train_pairs, prep.dev_pairs, r, 0, "cpu", progress=False)
        own = dev_loss(scratch, prep.dev_pairs, r, torch, "cpu")
        c3 = _clock()
        row = {"arch": str(arch), "steps": log["steps"], "inherited_loss": loss, "inherited_chrf": chrf,
               "scratch_loss": own}
        for j, k in enumerate(("wall", "cpu")):
            row[f"loss_{k}"], row[f"metric_{k}"], row[f"scratch_{k}"] = \
                c1[j] - c0[j], c2[j] - c1[j], c3[j] - c2[j]
        rows.append(row)
        print(f"[{i}] {arch}: supernet loss query {row['loss_cpu']:.1f} CPU s, metric query {row['metric_cpu']:.1f} "
              f"CPU s; from scratch {row['scratch_cpu']:.1f} CPU s ({log['steps']} steps)", file=sys.stderr)

    def med(k):
        return statistics.median(x[k] for x in rows)

    q, qm, s = med("loss_cpu"), med("metric_cpu"), med("scratch_cpu")
    from .supernet_score import shown  # a path under the working directory, relative: reports carry no home dirs

    ck = f" --checkpoint {shown(args.checkpoint)}" if args.checkpoint else ""
    what = f"checkpoint {shown(args.checkpoint)}" if args.checkpoint else "freshly initialised supernet"
    lines = [f"# Supernet query cost vs training from scratch: {suite.name} / {task.name}", "",
             (f"`python -m bench supernet bench {args.suite} --task {task.name} --kind {args.kind} --n {args.n}"
              f"{ck}` — {torch.get_num_threads()} thread(s), torch {torch.__version__}, {what} ({args.kind}); "
              f"from scratch = the task's measure recipe (max {r.max_steps} steps, early stopping) + its dev loss. "
              "Costs are this process's CPU seconds (wall seconds in brackets: on a shared machine the wall clock "
              "mostly measures waiting for a core)."),
             "",
             ("| architecture | supernet score=loss | supernet score=metric | from scratch | steps | "
              "ratio scratch / loss |"), "|---|---|---|---|---|---|"]
    for x in rows:
        lines.append(f"| {x['arch'].replace('|', '/')} | {x['loss_cpu']:.1f} ({x['loss_wall']:.1f}) | "
                     f"{x['metric_cpu']:.1f} ({x['metric_wall']:.1f}) | {x['scratch_cpu']:.1f} "
                     f"({x['scratch_wall']:.1f}) | {x['steps']} | {x['scratch_cpu'] / x['loss_cpu']:.1f} |")
    lines += ["", (f"Median CPU seconds per architecture: score=loss {q:.2f}, score=metric {qm:.2f}, from scratch "
                   f"{s:.1f}: **training from scratch costs {s / q:.1f}x a score=loss query** "
                   f"({s / qm:.1f}x a score=metric query).")]
    if head is not None:
        if "train_cpu_seconds" in head:
            tr, kind_s, gain = float(head["train_cpu_seconds"]), "CPU", s - q
        else:  # older checkpoints: wall seconds only
            tr, kind_s, gain = float(head["train_seconds"]), "wall", med("scratch_wall") - med("loss_wall")
        pays = (f"it pays for itself after {tr / gain:.1f} architectures scored by loss instead of trained"
                if gain > 0 else "a query costs more than training here, so it never pays for itself")
        lines.append(f"The supernet itself trained in {tr:.1f} {kind_s} s ({head['steps']} steps, {head['sampling']}, "
                     f"{head.get('device')}, {head.get('threads')} thread(s)): {pays}.")
    else:
        lines.append("Supernet training time is not included (no --checkpoint); its header records it.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0
