"""Run predictors over a suite: every (task, target, predictor, seed), scored and aggregated over seeds.

A predictor that cannot run here (missing key, package, file) or does not apply to a target is listed
as skipped with the reason; one that raises on a seed is recorded as an error for that seed.  Nothing
is silently dropped.
"""
from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from predictors import registry
from predictors.base import Context

from . import data
from . import metrics as M
from . import provenance
from .cache import CacheError
from .invocation import Run
from .suite import Suite, SuiteError


@dataclass
class RunResult:
    suite: Suite
    runs: list[dict] = field(default_factory=list)  # one per (task, target, predictor, seed)
    skipped: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # aggregated
    configs: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    produced: set = field(default_factory=set)  # requested specs that produced at least one scored row

    def to_json(self) -> dict:
        return {
            "suite": self.suite.name,
            "provenance": self.provenance,
            "results": self.rows,
            "skipped": self.skipped,
            "runs": self.runs,
            "reference": self.suite.reference_rows(),
            "notes": {t.name: t.notes + t.data.notes for t in self.suite.tasks if "data" in t.__dict__},
        }


def metric_names(target) -> list[str]:
    return M.LATENCY_METRICS if target.kind == "latency" else M.QUALITY_METRICS


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="bench run", unit="job", file=sys.stderr, leave=False)


def run_suite(suite: Suite, predictors: list[str] | None = None, tasks: list[str] | None = None,
              targets: list[str] | None = None, options: dict | None = None, progress: bool = True,
              n_boot: int = 1000, run: Run | None = None) -> RunResult:
    """Score every (task, target, predictor, seed).  ``run`` carries this invocation's options and collects
    the files it reads (a fresh one when not given); ``options`` is kept for callers that pass only options."""
    run = run or Run(options=dict(options or {}))
    if options:
        run.options.update(options)
    specs = predictors or suite.predictors
    if not specs:
        raise SuiteError(f"{suite.path}: predictors: no predictors given and the suite lists none")
    task_objs = [suite.task(t) for t in tasks] if tasks else suite.tasks
    result = RunResult(suite=suite)
    with run:
        jobs = [(t, tg, s) for t in task_objs for tg in _targets(t, targets) for s in specs]
        bar = _progress(len(jobs), progress)
        try:
            for task, target, spec in jobs:
                if bar:
                    bar.set_postfix_str(f"{task.name}/{target.name}/{spec}")
                _run_one(result, task, target, spec, run.options, n_boot)
                if bar:
                    bar.update(1)
        finally:
            if bar:
                bar.close()  # before any message, so an error line never lands after the bar
        for t in task_objs:  # task data cached from an earlier run in this process is not re-read: add it
            if "data" in t.__dict__:
                for f in t.data.files:
                    data.note_read(f)
    result.provenance = provenance.collect(suite, result.configs, {t.name: t.seeds for t in task_objs},
                                           extra={"options": _safe_options(run.options), "argv": run.argv},
                                           files=run.files)
    return result


def _targets(task, wanted):
    """Default: the task's first (primary) target; 'all': every target; else the named ones it has."""
    if not wanted:
        return [task.targets[task.default_target]]
    if "all" in wanted:
        return list(task.targets.values())
    unknown = [w for w in wanted if not any(w in t.targets for t in task.suite.tasks)]
    if unknown:
        allowed = sorted({n for t in task.suite.tasks for n in t.targets})
        raise SuiteError(f"{task.suite.path}: unknown target(s) {unknown}; allowed values: {allowed + ['all']}")
    return [task.targets[w] for w in wanted if w in task.targets]


def _safe_options(options: dict) -> dict:
    return {k: v for k, v in options.items() if "key" not in k.lower() and "secret" not in k.lower()}


def _skip(result, task, target, spec, reason):
    result.skipped.append({"task": task.name, "target": target.name, "predictor": spec, "reason": reason})


def _run_one(result: RunResult, task, target, spec: str, options: dict, n_boot: int) -> None:
    name, config = registry.parse_spec(spec)
    try:
        entry = registry.get(name)
    except registry.UnknownPredictor as exc:
        _skip(result, task, target, spec, str(exc))
        return
    reason = entry.availability(config)
    if reason:
        _skip(result, task, target, spec, f"cannot run here: {reason}")
        return
    names = metric_names(target)
    per_seed: dict[int, dict] = {}
    pairs = []
    for seed in task.seeds:
        ctx = Context(task=task, target=target.name, seed=seed, options=options)
        pred = registry.create(spec, ctx)
        why = pred.supports(task, target.name)
        if why:
            _skip(result, task, target, spec, why)
            return
        result.configs.setdefault(pred.spec, pred.describe())
        train, test = task.split(seed)
        train = [r for r in train if np.isfinite(r.targets.get(target.name, np.nan))]
        test = [r for r in test if np.isfinite(r.targets.get(target.name, np.nan))]
        y_tr = np.array([r.targets[target.name] for r in train])
        y_te = np.array([r.targets[target.name] for r in test])
        run = {"task": task.name, "target": target.name, "predictor": pred.spec, "seed": seed, "n_test": len(test)}
        try:
            t0 = time.perf_counter()
            pred.fit([r.arch for r in train], y_tr)
            t1 = time.perf_counter()
            p_te = np.asarray(pred.predict([r.arch for r in test]), dtype=float)
            t2 = time.perf_counter()
            p_tr = None if pred.on_target_scale else np.asarray(pred.predict([r.arch for r in train]), dtype=float)
        except CacheError:
            raise  # a broken cache breaks every predictor: stop with its advice, not "failed on every seed"
        except Exception as exc:  # a broken predictor must not take the run down
            run.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=3))
            result.runs.append(run)
            continue
        if len(p_te) != len(test):
            run.update(error=f"predict returned {len(p_te)} values for {len(test)} architectures")
            result.runs.append(run)
            continue
        finite = np.isfinite(p_te)
        run.update(
            metrics=M.score(y_te, p_te, higher_is_better=pred.higher_is_better, on_scale=pred.on_target_scale,
                            metrics=names, p_train=p_tr, y_train=y_tr),
            coverage=float(finite.mean()) if len(p_te) else 0.0,
            failures=int((~finite).sum()),
            fit_s=t1 - t0,
            query_s_per_arch=(t2 - t1) / max(1, len(test)),
            cost=pred.cost(),
            details=pred.details(),
            predictions=[None if not np.isfinite(v) else float(v) for v in p_te],
            gold=[float(v) for v in y_te],
            test_ids=[r.id for r in test],
        )
        result.runs.append(run)
        per_seed[seed] = run
        s = p_te if pred.higher_is_better else -p_te
        pairs.append((y_te, s))
    if not per_seed:
        errors = [r.get("error") for r in result.runs
                  if r["task"] == task.name and r["target"] == target.name and r["predictor"] == spec]
        _skip(result, task, target, spec, f"failed on every seed: {errors[0] if errors else 'unknown error'}")
        return
    result.produced.add(spec)
    pspec = next(iter(per_seed.values()))["predictor"]
    all_names = sorted({m for r in per_seed.values() for m in r["metrics"]}, key=names.index)
    base = {"task": task.name, "target": target.name, "predictor": pspec}
    for m in all_names:
        vals = {str(s): r["metrics"].get(m) for s, r in per_seed.items()}
        mean, std = M.aggregate(list(vals.values()))
        row = dict(base, metric=m, mean=mean, std=std, per_seed=vals)
        if m == "kendall":
            row["ci95"] = list(M.bootstrap_kendall_ci(pairs, n_boot=n_boot, seed=0))
        result.rows.append(row)
    cov = [r["coverage"] for r in per_seed.values()]
    fails = sum(r["failures"] for r in per_seed.values())
    errors = len(task.seeds) - len(per_seed)
    result.rows.append(dict(base, metric="coverage", mean=float(np.mean(cov)), std=float(np.std(cov)),
                            per_seed={str(s): r["coverage"] for s, r in per_seed.items()},
                            failures=fails, seed_errors=errors))
    fit = [r["fit_s"] for r in per_seed.values()]
    q = [r["query_s_per_arch"] for r in per_seed.values()]
    result.rows.append(dict(base, metric="fit_s", mean=float(np.mean(fit)), std=float(np.std(fit)),
                            per_seed={str(s): r["fit_s"] for s, r in per_seed.items()}))
    result.rows.append(dict(base, metric="query_ms_per_arch", mean=1000 * float(np.mean(q)),
                            std=1000 * float(np.std(q)),
                            per_seed={str(s): 1000 * r["query_s_per_arch"] for s, r in per_seed.items()}))
