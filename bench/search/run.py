"""One search on a suite's task: fit the scorers, evolve, write the outputs (``bench search`` drives it).

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

from ..blas import one_blas_thread
from ..costs import compute_costs
from ..suite import load_suite
from . import report as search_report
from .evolve import Constraint, EvoParams, Genes, Scorer, SearchError, evolve

DEFAULT_LATENCY = "hat-latency-released[device=gpu_titanxp]"


# ---------------------------------------------------------------- building blocks
def pick_target(task, name: str | None, kind: str) -> str:
    """The named target, else the task's first target of this kind."""
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
    bounds = [(start, (stage_specs[i + 1][0] - 1) if i + 1 < len(stage_specs) else params.iterations - 1)
              for i, (start, _) in enumerate(stage_specs)]
    genes = Genes(task.space)
    return {
        "task": task.name, "target": target, "seed": seed, "split_seed": split_seed,
        "constraint": constraint.describe(), "latency_predictor": constraint_args.get("_spec"),
        "evo": params.__dict__, "best": _best(task, genes, res, scorers, constraint),
        "population": _population(genes, res, constraint, params), "trajectory": res.trajectory,
        "ledger": _ledger(res, scorers, bounds, constraint, params),
        "spend": _spend(res, scorers, bounds, fitted, before, constraint, search_s, opts),
    }


def _best(task, genes, res, scorers, constraint) -> dict:
    best = genes.arch(res.best)
    best_lat = constraint.latencies([best])[0]
    costs = compute_costs(best, task.vocab_size, task.space.qkv_dim) if task.vocab_size else None
    rec = task.lookup(best)
    return {
        "arch": best.to_dict(), "summary": str(best), "gene": list(res.best), "hat_yaml": best.to_hat_yaml_dict(),
        "final_scorer": scorers[-1].spec, "final_score": res.scores[0],
        "predicted": {sc.label: sc.peek(best) for sc in scorers},
        "predicted_latency_ms": None if not np.isfinite(best_lat) else float(best_lat),
        "gflops": costs.total_flops / 1e9 if costs else None, "params": costs.params if costs else None,
        "params_no_emb": costs.params_no_emb if costs else None,
        "measured": dict(rec.targets) if rec else None,
    }


def _population(genes, res, constraint, params) -> list[dict]:
    pop_archs = [genes.arch(g) for g in res.population]
    pop_lat = constraint.latencies(pop_archs)
    return [{"rank": i, "parent": i < params.parents, "score": s, "predicted_latency_ms":
             None if not np.isfinite(lat) else float(lat), "arch": a.to_dict(), "gene": list(g)}
            for i, (g, s, a, lat) in enumerate(zip(res.population, res.scores, pop_archs, pop_lat))]


def _ledger(res, scorers, bounds, constraint, params) -> dict:
    final = scorers[-1]
    it_total = params.iterations * params.population
    return {
        "stages": [dict(sc.ledger(), label=sc.label, iterations=list(b)) for sc, b in zip(scorers, bounds)],
        "queries_total": sum(sc.queries for sc in scorers),
        "expensive": {"scorer": final.spec, "queries": final.queries, "hat_evals": final.hat_evals,
                      "hat_evals_if_not_hybrid": it_total, "hat_evals_avoided": it_total - final.hat_evals},
        "failed_archs": {sc.label: len(sc.failed) for sc in scorers},
        "constraint": {"description": constraint.describe(), **res.sample_stats,
                       "latency_predictions": len(constraint._lat)},
    }


def _spend(res, scorers, bounds, fitted, before, constraint, search_s, opts) -> dict:
    """Machine- and cache-dependent spend (wall times, LLM calls, dollars), kept out of the byte-identical files:
    the scorers' cost() counters during the search, plus their fit-time spend (e.g. teacher labels) if no
    earlier run sharing the fitted scorer was billed for it."""
    final = scorers[-1]
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
    return spend


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


def print_summary(run: dict, name: str) -> None:
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


def search_seeds(args, seeds: list[int]) -> int:
    """Several searches (one per seed) spread over the executor's workers; the driver writes every output."""
    from .. import executors

    executor = executors.from_args(args, threads=1)
    base = args.out or Path("reports") / "search" / (
        f"{args.task or 'task'}-{'lat' + format(args.latency_ms, 'g') if args.latency_ms is not None else 'flops'}")
    tasks = [executors.Task(f"seed {k}", (k,)) for k in seeds]
    failed = 0
    argv = dict(vars(args), suite=str(Path(args.suite).resolve()))  # workers need not share the driver's cwd
    for o, bar in executors.run_tasks(executor, seed_task, argv, tasks, "search seeds", not args.no_progress):
        seed = o.task.args[0]
        if o.error or o.value["rc"] != 0:
            failed += 1
            bar.write(f"seed {seed}: FAILED {o.error or o.value['stderr'][-1000:]}")
            continue
        out = base / f"seed{seed}"
        for rel, data in sorted(o.value["files"].items()):
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
        bar.write(f"seed {seed} on {o.worker}: wrote {out}/\n" + o.value["stdout"].rstrip())
    return 2 if failed else 0


def seed_task(argv: dict, seed: int) -> dict:
    """One ``bench search --seed SEED`` on a worker; its output files come back as bytes (workers write none)."""
    import argparse
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        a = argparse.Namespace(**dict(argv, seed=seed, seeds=None, out=Path(d) / "out", no_progress=True))
        so, se = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            rc = search(a)
        files = {str(f.relative_to(a.out)): f.read_bytes() for f in sorted(a.out.rglob("*")) if f.is_file()} \
            if a.out.exists() else {}
    return {"rc": rc, "files": files, "stdout": so.getvalue(), "stderr": se.getvalue()}


def _stages(args, task) -> tuple[int, list[tuple[int, str]], EvoParams]:
    """(split seed, [(first iteration, scorer spec)], evolution parameters) from the command's flags."""
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
    return split_seed, stage_specs, params


def _constraint_args(args, task, split_seed: int, options: dict) -> tuple[dict, str | None]:
    """The constraint's inputs (latency predictor, FLOPs function, limits) and the latency predictor's spec."""
    cargs: dict = {"latency_ms": args.latency_ms, "gflops": args.flops_constraint}
    spec = None
    try:  # needed for --latency-ms; otherwise only reported (and plotted) when the task allows it
        lat_target = pick_target(task, None, "latency")
        lat_pred = fit_predictor(args.latency_predictor, task, lat_target, split_seed, options).pred
        cargs["latency"] = lambda archs: lat_pred.predict(archs)
        spec = args.latency_predictor
    except SearchError as exc:
        if args.latency_ms is not None:
            raise SearchError(f"--latency-ms needs a latency predictor: {exc}") from None
        print(f"note: no predicted latency ({exc})", file=sys.stderr)
    if args.flops_constraint is not None:
        if not task.vocab_size:
            raise SearchError(f"--flops-constraint: task {task.name} has no vocab_size to compute FLOPs")
        cargs["flops_fn"] = lambda a: compute_costs(a, task.vocab_size, task.space.qkv_dim).total_flops
    return cargs, spec


def _searches(args, task) -> tuple[dict, str, list]:
    """Fit the scorers once and run the search (and, with --compare-baseline, its non-hybrid baseline)."""
    target = pick_target(task, args.target, "quality")
    split_seed, stage_specs, params = _stages(args, task)
    options = {"llm": args.llm} if args.llm else {}
    fitted = {}
    for _, spec in stage_specs:
        if spec not in fitted:
            print(f"fitting scorer {spec} on {task.name}/{target} split {split_seed}...", file=sys.stderr)
            fitted[spec] = fit_predictor(spec, task, target, split_seed, options)
    cargs, spec_label = _constraint_args(args, task, split_seed, options)
    opts = {"amortize_over": args.amortize_over, "expensive_s_per_eval": args.expensive_s_per_eval}
    runs = {}
    for name, specs in [("main", stage_specs)] + ([("baseline", [(0, args.then)])] if args.compare_baseline else []):
        run = run_search(task, specs, fitted, dict(cargs), params, args.seed, split_seed, target, opts,
                         progress=not args.no_progress)
        run["latency_predictor"] = spec_label
        runs[name] = run
    return runs, target, stage_specs


def search(args) -> int:
    """One search (``--seed``) with the flags of ``bench search``: outputs in ``--out``, a summary on stdout."""
    suite = load_suite(args.suite)
    task = suite.task(args.task) if args.task else suite.tasks[0]
    try:
        runs, target, stage_specs = _searches(args, task)
    except SearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("reports") / "search" / (
        f"{task.name}-{'lat' + format(args.latency_ms, 'g') if args.latency_ms is not None else 'flops'}-seed{args.seed}")
    write_outputs(out, runs, f"predicted {target} ({stage_specs[-1][1]})", args.latency_ms)
    print(f"wrote {out}/ (report.md, best.yml, best.json, population.json, trajectory.json, ledger.json, spend.json"
          + (", baseline/, comparison.json" if "baseline" in runs else "") + ")", file=sys.stderr)
    return 0


def write_outputs(out: Path, runs: dict, quality_label: str, latency_ms: float | None) -> None:
    """Every file of a search (and its baseline) in ``out``, and the summary on stdout."""
    from tabulate import tabulate

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
        search_report.pareto_png(out / "pareto.png", plot_runs, quality_label, latency_ms)
        files["pareto"] = "pareto.png"
    (out / "report.md").write_text(search_report.markdown(runs["main"], base, files))
    print_summary(runs["main"], "hybrid" if base else "search")
    if base:
        print_summary(base, "non-hybrid")
        rows = [[r[0], search_report._f(r[1]), search_report._f(r[2]), search_report._f(r[3])]
                for r in search_report.comparison_rows(runs["main"], base)]
        print(tabulate(rows, headers=["", "hybrid", "non-hybrid", "hybrid / non-hybrid"], tablefmt="github"))
