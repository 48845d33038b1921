"""``python -m bench search``: run HAT's evolutionary search (or the HS-NAS hybrid) on a suite's task.

Scorers are registered predictor specs fitted on one split of the task (``--split-seed``; default the
search ``--seed`` when it names a split, else the task's first split).  Outputs in ``--out``:
``best.yml`` (HAT subtransformer format), ``best.json``, ``population.json``, ``trajectory.json``,
``ledger.json`` (all byte-identical for the same seed), ``spend.json`` (wall times and the scorers'
``cost()``, which depend on the machine and the cache), ``report.md`` and ``pareto.png``; with
``--compare-baseline`` the non-hybrid run goes to ``OUT/baseline/`` and ``comparison.json``.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predictors import registry
from predictors.base import Context

from . import search_report
from .blas import one_blas_thread
from .costs import compute_costs
from .search import Constraint, EvoParams, Genes, Scorer, SearchError, evolve
from .suite import load_suite

DEFAULT_LATENCY = "hat-latency-released[device=gpu_titanxp]"


def add_arguments(p):
    p.add_argument("suite", help="suite YAML, e.g. suites/wmt14.yaml")
    p.add_argument("--task", help="task name (default: the suite's first task)")
    p.add_argument("--target", help="quality target the scorers are fitted on (default: the task's first quality target)")
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
    p.add_argument("--out", type=Path, help="output dir (default reports/search/<task>-<constraint>-seed<seed>)")
    p.add_argument("--compare-baseline", action="store_true",
                   help="also run the non-hybrid search (--then for all iterations) with the same seed")
    p.add_argument("--amortize-over", type=int, default=1,
                   help="number of searches that share the distillation teacher's labels (for the ledger)")
    p.add_argument("--expensive-s-per-eval", type=float,
                   help="seconds one expensive-scorer evaluation would take (e.g. a supernet pass) to project hours")
    p.add_argument("--llm", help="LLM backend for llm-pp scorers, PROVIDER:MODEL")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--seeds", help="comma list of search seeds, one search each as a task on --executor; outputs in "
                                   "OUT/seed<k>/ (default: the single --seed)")
    from .executors import add_arguments as executor_arguments
    executor_arguments(p)


# ---------------------------------------------------------------- building blocks
def _target(task, name: str | None, kind: str) -> str:
    if name:
        if name not in task.targets:
            raise SearchError(f"task {task.name}: no target {name!r}; allowed values: {list(task.targets)}")
        return name
    for t in task.targets.values():
        if t.kind == kind:
            return t.name
    raise SearchError(f"task {task.name} has no {kind} target (targets: {list(task.targets)})")


@dataclass
class Fitted:
    """A fitted scorer shared by a search and its baseline; its fit-time spend is billed to the first run."""

    pred: object
    fit_s: float
    fit_cost: dict
    billed: bool = False


def fit_predictor(spec: str, task, target: str, seed: int, options: dict) -> Fitted:
    """Create, check and fit a predictor on the split's training architectures."""
    name, cfg = registry.parse_spec(spec)
    entry = registry.get(name)
    why = entry.availability(cfg)
    if why:
        raise SearchError(f"predictor {spec!r} cannot run here: {why}")
    pred = registry.create(spec, Context(task=task, target=target, seed=seed, options=options))
    why = pred.supports(task, target)
    if why:
        raise SearchError(f"predictor {spec!r} does not apply to {task.name}/{target}: {why}")
    train, _ = task.split(seed)
    train = [r for r in train if np.isfinite(r.targets.get(target, np.nan))]
    t0 = time.perf_counter()
    pred.fit([r.arch for r in train], np.array([r.targets[target] for r in train], dtype=float))
    return Fitted(pred, time.perf_counter() - t0, _numeric(pred.cost()))


def _numeric(d):
    return {k: v for k, v in (d or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _cost_of(pred) -> dict:
    return getattr(pred, "cost", dict)() or {}


def _cost_text(c: dict) -> str:
    keys = [k for k in ("calls", "cache_hits", "dollars", "teacher_labels_new", "teacher_labels_cached") if k in c]
    return ", ".join(f"{k}={c[k]:.4g}" if isinstance(c[k], float) else f"{k}={c[k]}" for k in keys) or "–"


def run_search(task, stage_specs: list[tuple[int, str]], fitted: dict, constraint_args: dict, params: EvoParams,
               seed: int, split_seed: int, target: str, opts: dict, progress: bool) -> dict:
    """One search; ``fitted`` maps spec -> Fitted and is shared with a baseline run."""
    scorers, stages, labels = [], [], set()
    for start, spec in stage_specs:
        label = spec if spec not in labels else f"{spec} (stage {len(stages) + 1})"
        labels.add(label)
        sc = Scorer(label, fitted[spec].pred, spec)
        scorers.append(sc)
        stages.append((start, sc))
    constraint = Constraint(**constraint_args)
    before = {spec: _numeric(_cost_of(fitted[spec].pred)) for _, spec in stage_specs}
    t0 = time.perf_counter()
    with one_blas_thread():  # batched forwards of small MLPs: see bench.blas
        res = evolve(task.space, stages, constraint, params, seed, progress=progress)
    search_s = time.perf_counter() - t0
    genes = Genes(task.space)
    final = scorers[-1]
    best = genes.arch(res.best)
    best_lat = constraint.latencies([best])[0]
    costs = compute_costs(best, task.vocab_size, task.space.qkv_dim) if task.vocab_size else None
    rec = task.lookup(best)
    bounds = [(start, (stage_specs[i + 1][0] - 1) if i + 1 < len(stage_specs) else params.iterations - 1)
              for i, (start, _) in enumerate(stage_specs)]
    pop_archs = [genes.arch(g) for g in res.population]
    pop_lat = constraint.latencies(pop_archs)
    best_out = {
        "arch": best.to_dict(), "summary": str(best), "gene": list(res.best), "hat_yaml": best.to_hat_yaml_dict(),
        "final_scorer": final.spec, "final_score": res.scores[0],
        "predicted": {sc.label: sc.peek(best) for sc in scorers},
        "predicted_latency_ms": None if not np.isfinite(best_lat) else float(best_lat),
        "gflops": costs.total_flops / 1e9 if costs else None, "params": costs.params if costs else None,
        "params_no_emb": costs.params_no_emb if costs else None,
        "measured": dict(rec.targets) if rec else None,
    }
    population = [{"rank": i, "parent": i < params.parents, "score": s, "predicted_latency_ms":
                   None if not np.isfinite(lat) else float(lat), "arch": a.to_dict(), "gene": list(g)}
                  for i, (g, s, a, lat) in enumerate(zip(res.population, res.scores, pop_archs, pop_lat))]
    it_total = params.iterations * params.population
    stage_ledger = [dict(sc.ledger(), label=sc.label, iterations=list(b)) for sc, b in zip(scorers, bounds)]
    ledger = {
        "stages": stage_ledger,
        "queries_total": sum(sc.queries for sc in scorers),
        "expensive": {"scorer": final.spec, "queries": final.queries, "hat_evals": final.hat_evals,
                      "hat_evals_if_not_hybrid": it_total, "hat_evals_avoided": it_total - final.hat_evals},
        "failed_archs": {sc.label: len(sc.failed) for sc in scorers},
        "constraint": {"description": constraint.describe(), **res.sample_stats,
                       "latency_predictions": len(constraint._lat)},
    }
    # Spend: machine- and cache-dependent (wall times, LLM calls, dollars); kept out of the byte-identical files.
    # What this run spent: the scorers' cost() counters during the search, plus their fit-time spend
    # (e.g. teacher labels) if no earlier run sharing the fitted scorer was billed for it.
    costs_by = {}
    for spec in dict.fromkeys(sc.spec for sc in scorers):
        f, now = fitted[spec], _numeric(_cost_of(fitted[spec].pred))
        c = {k: v - before[spec].get(k, 0) for k, v in now.items() if k in ("calls", "cache_hits", "dollars",
                                                                           "tokens_in", "tokens_out")}
        if not f.billed:
            f.billed = True
            c = {k: c.get(k, 0) + f.fit_cost.get(k, 0) for k in set(c) | set(f.fit_cost)}
        costs_by[spec] = c
    num = list(costs_by.values())
    label_dollars = sum(_numeric(_cost_of(fitted[spec].pred)).get("label_total_dollars", 0.0) for spec in costs_by)
    stage_wall = {}
    for sc, (a, b) in zip(scorers, bounds):
        stage_wall[sc.label] = float(sum(res.iteration_s[a:b + 1]))
    spend = {
        "wall_s": {"search": search_s, "fit": {sc.spec: fitted[sc.spec].fit_s for sc in scorers},
                   "score": {sc.label: sc.score_s for sc in scorers}, "stage": stage_wall,
                   "expensive_score": final.score_s, "constraint": constraint.lat_s,
                   "per_iteration": res.iteration_s},
        "cost": costs_by, "cost_text": {k: _cost_text(_numeric(_cost_of(fitted[k].pred))) for k in costs_by},
        "scorer_cost": {spec: _cost_of(fitted[spec].pred) for spec in costs_by},
        "scorer_details": {spec: getattr(fitted[spec].pred, "details", dict)() for spec in costs_by},
        "llm_calls": int(sum(c.get("calls", 0) for c in num)),
        "dollars": float(sum(c.get("dollars", 0.0) or 0.0 for c in num)),
        "teacher_label_dollars": label_dollars, "amortised_over": opts["amortize_over"],
        "teacher_label_dollars_amortised": label_dollars / max(1, opts["amortize_over"]),
    }
    if opts.get("expensive_s_per_eval"):
        spend["projected_expensive_h"] = final.hat_evals * opts["expensive_s_per_eval"] / 3600
    return {
        "task": task.name, "target": target, "seed": seed, "split_seed": split_seed,
        "constraint": constraint.describe(), "latency_predictor": constraint_args.get("_spec"),
        "evo": params.__dict__, "best": best_out, "population": population, "trajectory": res.trajectory,
        "ledger": ledger, "spend": spend,
    }


# ---------------------------------------------------------------- outputs
def hat_yaml(arch_yaml: dict) -> str:
    """HAT's subtransformer YAML layout (flow lists truncated to the layer counts)."""
    k = arch_yaml
    order = [["encoder-embed-dim-subtransformer", "decoder-embed-dim-subtransformer"],
             ["encoder-ffn-embed-dim-all-subtransformer", "decoder-ffn-embed-dim-all-subtransformer"],
             ["encoder-layer-num-subtransformer", "decoder-layer-num-subtransformer"],
             ["encoder-self-attention-heads-all-subtransformer", "decoder-self-attention-heads-all-subtransformer",
              "decoder-ende-attention-heads-all-subtransformer"]]
    blocks = ["\n".join(f"{name}: {k[name]}" for name in block) for block in order]
    blocks.append("# for arbitrary encoder decoder attention. -1 means attending to last one encoder layer\n"
                  "# 1 means last two encoder layers, 2 means last three encoder layers\n"
                  f"decoder-arbitrary-ende-attn-all-subtransformer: {k['decoder-arbitrary-ende-attn-all-subtransformer']}")
    return "\n\n".join(blocks) + "\n"


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, default=float) + "\n")


def write_run(out: Path, run: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "best.yml").write_text(hat_yaml(run["best"]["hat_yaml"]))
    meta = {k: run[k] for k in ("task", "target", "seed", "split_seed", "constraint", "latency_predictor", "evo")}
    _dump(out / "best.json", dict(meta, **run["best"]))
    _dump(out / "population.json", run["population"])
    _dump(out / "trajectory.json", run["trajectory"])
    _dump(out / "ledger.json", run["ledger"])
    _dump(out / "spend.json", run["spend"])
    return {n: n for n in ("best.yml", "best.json", "population.json", "trajectory.json", "ledger.json", "spend.json")}


def _print_summary(run: dict, name: str) -> None:
    b, led = run["best"], run["ledger"]
    print(f"[{name}] best: {b['summary']}")
    print(f"[{name}]   predicted: " + ", ".join(f"{k}={v:.4f}" for k, v in b["predicted"].items())
          + f"; latency {b['predicted_latency_ms'] if b['predicted_latency_ms'] is None else round(b['predicted_latency_ms'], 1)} ms"
          + (f"; {b['gflops']:.3f} GFLOPs; {b['params'] / 1e6:.1f} M params" if b["gflops"] else ""))
    for st in led["stages"]:
        print(f"[{name}]   {st['scorer']} iterations {st['iterations'][0]}-{st['iterations'][1]}: "
              f"{st['queries']} distinct queries, {st['hat_evals']} HAT-style evaluations, "
              f"{st['failed_archs']} failed archs")
    print(f"[{name}]   search {run['spend']['wall_s']['search']:.2f} s; expensive-scorer evaluations avoided: "
          f"{led['expensive']['hat_evals_avoided']} of {led['expensive']['hat_evals_if_not_hybrid']}")


def main(args) -> int:
    """One search (``--seed``), or several (``--seeds``) spread over the executor's workers."""
    if not args.seeds:
        return _main_one(args)
    from . import executors

    try:
        seeds = list(dict.fromkeys(int(x) for x in args.seeds.split(",")))
    except ValueError:
        print(f"error: --seeds {args.seeds}: must be a comma list of integers, e.g. 0,1,2", file=sys.stderr)
        return 2
    executor = executors.from_args(args, threads=1)
    base = args.out or Path("reports") / "search" / (
        f"{args.task or 'task'}-{'lat' + format(args.latency_ms, 'g') if args.latency_ms is not None else 'flops'}")
    tasks = [executors.Task(f"seed {k}", (k,)) for k in seeds]
    failed = 0
    argv = dict(vars(args), suite=str(Path(args.suite).resolve()))  # workers need not share the driver's cwd
    for o, bar in executors.run_tasks(executor, _seed_task, argv, tasks, "search seeds", not args.no_progress):
        seed = o.task.args[0]
        if o.error or o.value["rc"] != 0:
            failed += 1
            bar.write(f"seed {seed}: FAILED {o.error or o.value['stderr'][-1000:]}")
            continue
        out = base / f"seed{seed}"
        for rel, data in sorted(o.value["files"].items()):  # the driver writes every output
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
        bar.write(f"seed {seed} on {o.worker}: wrote {out}/\n" + o.value["stdout"].rstrip())
    return 2 if failed else 0


def _seed_task(argv: dict, seed: int) -> dict:
    """One ``bench search --seed SEED`` on a worker; its output files come back as bytes (workers write none)."""
    import argparse
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        a = argparse.Namespace(**dict(argv, seed=seed, seeds=None, out=Path(d) / "out", no_progress=True))
        so, se = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            rc = _main_one(a)
        files = {str(f.relative_to(a.out)): f.read_bytes() for f in sorted(a.out.rglob("*")) if f.is_file()} \
            if a.out.exists() else {}
    return {"rc": rc, "files": files, "stdout": so.getvalue(), "stderr": se.getvalue()}


def _main_one(args) -> int:
    from tabulate import tabulate

    suite = load_suite(args.suite)
    task = suite.task(args.task) if args.task else suite.tasks[0]
    try:
        target = _target(task, args.target, "quality")
        split_seed = args.split_seed if args.split_seed is not None else (
            args.seed if args.seed in task.seeds else task.seeds[0])
        if split_seed not in task.seeds:
            raise SearchError(f"--split-seed {split_seed}: task {task.name} has splits {task.seeds}")
        params = EvoParams(iterations=args.iterations, population=args.population, parents=args.parents,
                           mutations=args.mutations, crossovers=args.crossovers, mutation_prob=args.mutation_prob)
        params.check()
        stage_specs = [(0, args.scorer)]
        if args.then:
            switch = args.switch_at if args.switch_at is not None else args.iterations // 2
            if not 1 <= switch <= args.iterations - 1:
                raise SearchError(f"--switch-at {switch}: must lie in 1..{args.iterations - 1}")
            stage_specs.append((switch, args.then))
        elif args.switch_at is not None:
            raise SearchError("--switch-at needs --then (the second-stage scorer)")
        if args.compare_baseline and not args.then:
            raise SearchError("--compare-baseline needs --then: the baseline scores every iteration with it")
        options = {"llm": args.llm} if args.llm else {}
        fitted = {}
        for _, spec in stage_specs:
            if spec not in fitted:
                print(f"fitting scorer {spec} on {task.name}/{target} split {split_seed}...", file=sys.stderr)
                fitted[spec] = fit_predictor(spec, task, target, split_seed, options)
        cargs: dict = {"latency_ms": args.latency_ms, "gflops": args.flops_constraint}
        try:  # needed for --latency-ms; otherwise only reported (and plotted) when the task allows it
            lat_target = _target(task, None, "latency")
            lat_pred = fit_predictor(args.latency_predictor, task, lat_target, split_seed, options).pred
            cargs.update(latency=lambda archs: lat_pred.predict(archs), _spec=args.latency_predictor)
        except SearchError as exc:
            if args.latency_ms is not None:
                raise SearchError(f"--latency-ms needs a latency predictor: {exc}") from None
            print(f"note: no predicted latency ({exc})", file=sys.stderr)
        if args.flops_constraint is not None:
            if not task.vocab_size:
                raise SearchError(f"--flops-constraint: task {task.name} has no vocab_size to compute FLOPs")
            cargs["flops_fn"] = lambda a: compute_costs(a, task.vocab_size, task.space.qkv_dim).total_flops
        spec_label = cargs.pop("_spec", None)

        def constraint_args():
            return dict(cargs)

        opts = {"amortize_over": args.amortize_over, "expensive_s_per_eval": args.expensive_s_per_eval}
        out = args.out or Path("reports") / "search" / (
            f"{task.name}-{'lat' + format(args.latency_ms, 'g') if args.latency_ms is not None else 'flops'}-seed{args.seed}")
        runs = {}
        for name, specs in [("main", stage_specs)] + ([("baseline", [(0, args.then)])] if args.compare_baseline else []):
            run = run_search(task, specs, fitted, constraint_args(), params, args.seed, split_seed, target, opts,
                             progress=not args.no_progress)
            run["latency_predictor"] = spec_label
            runs[name] = run
    except SearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files = write_run(out, runs["main"])
    base = runs.get("baseline")
    if base:
        write_run(out / "baseline", base)
        rows = search_report.comparison_rows(runs["main"], base)
        _dump(out / "comparison.json", [dict(zip(["metric", "hybrid", "baseline", "ratio"], r)) for r in rows
                                        if "wall time" not in r[0]])
        files["comparison.json"] = "comparison.json"
        files["baseline"] = "baseline/"
    plot_runs = [{"label": "hybrid" if base else "search", "latency": [p["predicted_latency_ms"] or np.nan for p in
                                                                       runs["main"]["population"]],
                  "quality": [p["score"] for p in runs["main"]["population"]]}]
    if base:
        plot_runs.append({"label": "non-hybrid", "latency": [p["predicted_latency_ms"] or np.nan
                                                            for p in base["population"]],
                          "quality": [p["score"] for p in base["population"]]})
    if any(np.isfinite(plot_runs[0]["latency"])):
        search_report.pareto_png(out / "pareto.png", plot_runs, f"predicted {target} ({stage_specs[-1][1]})",
                                 args.latency_ms)
        files["pareto"] = "pareto.png"
    (out / "report.md").write_text(search_report.markdown(runs["main"], base, files))
    _print_summary(runs["main"], "hybrid" if base else "search")
    if base:
        _print_summary(base, "non-hybrid")
        rows = [[r[0], search_report._f(r[1]), search_report._f(r[2]), search_report._f(r[3])]
                for r in search_report.comparison_rows(runs["main"], base)]
        print(tabulate(rows, headers=["", "hybrid", "non-hybrid", "hybrid / non-hybrid"], tablefmt="github"))
    print(f"wrote {out}/ (report.md, best.yml, best.json, population.json, trajectory.json, ledger.json, spend.json"
          + (", baseline/, comparison.json" if base else "") + ")", file=sys.stderr)
    return 0
