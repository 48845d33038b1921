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

from . import compare, data, provenance, ranks
from . import metrics as M
from .cache import CacheError
from .invocation import Run
from .splits import SPLITS
from .suite import Suite, SuiteError

PAIRED = ("kendall", "mae")  # metrics with a paired test against the table's best row


@dataclass
class RunResult:
    suite: Suite
    runs: list[dict] = field(default_factory=list)  # one per (task, target, predictor, seed)
    skipped: list[dict] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # aggregated
    configs: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    produced: set = field(default_factory=set)  # requested specs that produced at least one scored row
    split: str = "random"
    splits: dict = field(default_factory=dict)  # task -> ({seed: (train, test)}, description)

    def to_json(self) -> dict:
        return {
            "suite": self.suite.name,
            "provenance": self.provenance,
            "results": self.rows,
            "skipped": self.skipped,
            "runs": self.runs,
            "reference": self.suite.reference_rows(),
            "notes": {t.name: t.notes + t.data.notes for t in self.suite.tasks if "data" in t.__dict__},
            "split": {"kind": self.split, "tasks": {k: v[1] for k, v in self.splits.items() if v[1]}},
            "comparison": {"test": compare.TEST, "alpha": compare.ALPHA, "metrics": list(PAIRED)},
            "targets": {t.name: {tg.name: {"unit": tg.unit, "kind": tg.kind, "higher_is_better": tg.higher_is_better}
                                 for tg in t.targets.values()} for t in self.suite.tasks},
            "friedman": ranks.by_kind(self.rows, {tg.name: tg.kind for t in self.suite.tasks
                                                   for tg in t.targets.values()}),
        }


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


def metric_names(target) -> list[str]:
    """Every declared metric that applies to the target's kind (bench.metrics is the one list)."""
    return M.for_target(target.kind)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="bench run", unit="job", file=sys.stderr, leave=False)


def run_suite(suite: Suite, predictors: list[str] | None = None, tasks: list[str] | None = None,
              targets: list[str] | None = None, options: dict | None = None, progress: bool = True,
              n_boot: int = 1000, run: Run | None = None, split: str = "random") -> RunResult:
    """Score every (task, target, predictor, seed).  ``run`` carries this invocation's options and collects
    the files it reads (a fresh one when not given); ``options`` is kept for callers that pass only options."""
    run = run or Run(options=dict(options or {}))
    if options:
        run.options.update(options)
    specs = predictors or suite.predictors
    if not specs:
        raise SuiteError(f"{suite.path}: predictors: no predictors given and the suite lists none")
    task_objs = [suite.task(t) for t in tasks] if tasks else suite.tasks
    if split not in SPLITS:
        raise SuiteError(f"--split: {split!r} is not allowed; allowed values: {sorted(SPLITS)}")
    result = RunResult(suite=suite, split=split)
    with run:
        for t in task_objs:
            result.splits[t.name] = SPLITS[split](t)
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
        _compare(result, n_boot)
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


def _fit_predict(pred, train, test, target):
    """Fit on train, predict test (and train, for calibration); returns (y_tr, y_te, p_tr, p_te, fit_s, query_s)."""
    y_tr = np.array([r.targets[target] for r in train])
    y_te = np.array([r.targets[target] for r in test])
    t0 = time.perf_counter()
    pred.fit([r.arch for r in train], y_tr)
    t1 = time.perf_counter()
    p_te = np.asarray(pred.predict([r.arch for r in test]), dtype=float)
    t2 = time.perf_counter()
    p_tr = None if pred.on_target_scale else np.asarray(pred.predict([r.arch for r in train]), dtype=float)
    return y_tr, y_te, p_tr, p_te, t1 - t0, (t2 - t1) / max(1, len(test))


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
    seed_runs: list[dict] = []
    splits, _ = result.splits[task.name]
    for seed, (train, test) in splits.items():
        ctx = Context(task=task, target=target.name, seed=seed, options=options)
        pred = registry.create(spec, ctx)
        why = pred.supports(task, target.name)
        if why:
            _skip(result, task, target, spec, why)
            return
        result.configs.setdefault(pred.spec, pred.describe())
        train = [r for r in train if np.isfinite(r.targets.get(target.name, np.nan))]
        test = [r for r in test if np.isfinite(r.targets.get(target.name, np.nan))]
        run = {"task": task.name, "target": target.name, "predictor": pred.spec, "seed": seed, "n_test": len(test)}
        seed_runs.append(run)
        try:
            y_tr, y_te, p_tr, p_te, fit_s, query_s = _fit_predict(pred, train, test, target.name)
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
        o = M.orientation(pred, target)
        finite = np.isfinite(p_te)
        run.update(
            metrics=M.score(y_te, o * p_te, on_scale=pred.on_target_scale, metrics=names,
                            target_higher_is_better=target.higher_is_better,
                            p_train=None if p_tr is None else o * p_tr, y_train=y_tr),
            coverage=float(finite.mean()) if len(p_te) else 0.0,
            failures=int((~finite).sum()),
            fit_s=fit_s,
            query_s_per_arch=query_s,
            cost=pred.cost(),
            details=pred.details(),
            predictions=[None if not np.isfinite(v) else float(v) for v in p_te],
            gold=[float(v) for v in y_te],
            test_ids=[r.id for r in test],
            orient=o,
        )
        for flag in ("ceiling", "in_sample"):
            if getattr(pred, flag, False):
                run[flag] = True
        result.runs.append(run)
        per_seed[seed] = run
        pairs.append((y_te, o * p_te))
    if not per_seed:
        errors = [r.get("error") for r in seed_runs if r.get("error")]  # by object: the spec may name defaults
        _skip(result, task, target, spec, f"failed on every seed: {errors[0] if errors else 'unknown error'}")
        return
    result.produced.add(spec)
    _aggregate(result, task, target, per_seed, pairs, names, len(splits), n_boot)


def _aggregate(result, task, target, per_seed, pairs, names, n_seeds, n_boot):
    first = next(iter(per_seed.values()))
    base = {"task": task.name, "target": target.name, "predictor": first["predictor"]}
    for flag in ("ceiling", "in_sample"):
        if first.get(flag):
            base[flag] = True
    all_names = sorted({m for r in per_seed.values() for m in r["metrics"]}, key=names.index)
    for m in all_names:
        vals = {str(s): r["metrics"].get(m) for s, r in per_seed.items()}
        mean, std = M.aggregate(list(vals.values()))
        row = dict(base, metric=m, mean=mean, std=std, per_seed=vals,
                   seeds_defined=M.n_defined(list(vals.values())), seeds=n_seeds)
        if m == "kendall":
            row["ci95"] = list(M.bootstrap_kendall_ci(pairs, n_boot=n_boot, seed=0))
        result.rows.append(row)
    cov = [r["coverage"] for r in per_seed.values()]
    fails = sum(r["failures"] for r in per_seed.values())
    errors = n_seeds - len(per_seed)
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


def _compare(result: RunResult, n_boot: int) -> None:
    """Paired tests of every ranked row against its table's best (ceilings and in-sample rows excluded)."""
    runs: dict[tuple, dict] = {}
    for r in result.runs:
        if "metrics" in r and not r.get("ceiling") and not r.get("in_sample"):
            runs.setdefault((r["task"], r["target"]), {}).setdefault(r["predictor"], {})[r["seed"]] = r
    for (task, target), by_pred in runs.items():
        rows = [r for r in result.rows if r["task"] == task and r["target"] == target and r["predictor"] in by_pred]
        means: dict[str, dict] = {}
        for r in rows:
            means.setdefault(r["predictor"], {})[r["metric"]] = r["mean"]
        for metric in PAIRED:
            res = compare.compare_table(by_pred, means, metric, n_boot=n_boot)
            for r in rows:
                if r["metric"] == metric and r["predictor"] in res:
                    r.update(res[r["predictor"]])
