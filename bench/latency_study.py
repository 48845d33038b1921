"""On-device latency and latency-predictor studies (``bench latency measure|curve|released``,
bench/commands/latency.py).

- ``measure``: time architectures (a suite task's, sampled from its space, or an arch file) on this CPU or
  GPU with HAT's protocol into a resumable HAT-layout CSV (bench/latency_measure.py);
- ``curve``: the suite at several train sizes (same test sets, nested train sets) -> one report;
- ``released``: HAT's released latency predictors on the full datasets they were trained on (80% of them).
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from .outdir import out_file
from .suite import SuiteError, load_suite


# ------------------------------------------------------------------ measure
def measure(args) -> int:
    from . import provenance
    from .latency_measure import MeasureError, measure_archs, read_arch_file, sample_archs
    from .sources.hat_latency import is_averaged

    src = Path(args.source)
    try:
        if src.suffix in (".yaml", ".yml") and _is_suite(src):
            suite = load_suite(src)
            task = suite.task(args.task) if args.task else suite.tasks[0]
            vocab = args.vocab_size or task.vocab_size or 32768
            records = task.records
            if args.sample or any(is_averaged(r.arch) for r in records):
                n = args.n or 100
                if not args.sample:
                    print(f"task {task.name}: records are layer averages (not buildable); sampling {n} architectures "
                          f"from its search space with seed {args.seed}", file=sys.stderr)
                archs = sample_archs(task.space, n, args.seed)
            else:
                archs = [r.arch for r in records][: args.n]
            name = task.name
            origin = {"suite": str(src), "task": task.name, "sampled": len(archs) if args.sample or not records
                      or is_averaged(records[0].arch) else 0, "seed": args.seed}
        else:
            if not src.exists():
                raise MeasureError(f"{src}: not found")
            archs = read_arch_file(src)[: args.n]
            vocab = args.vocab_size or 32768
            name = src.stem
            origin = {"arch_file": str(src)}
        out = out_file(args.out, Path("measurements/latency") / f"{name}_{args.device.replace(':', '')}.csv",
                       f"{name}_{args.device.replace(':', '')}.csv", (".csv",))
        stats = measure_archs(archs, out, vocab_size=vocab, device=args.device, latiter=args.latiter,
                              warmup=args.warmup, beam=args.beam, src_len=args.src_len, threads=args.threads,
                              clock=args.clock,
                              progress=not args.no_progress)
    except MeasureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta_path = out.with_name(out.name + ".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"schema": "bench.latency/1", "runs": []}
    prov = provenance.collect()
    prov.pop("data_sha256", None)
    secs, cvs = stats.pop("seconds"), stats.pop("cv")
    summary = {**stats, "median_measure_s": statistics.median(secs) if secs else None,
               "median_cv": statistics.median(cvs) if cvs else None, "file": file_summary(out)}
    argv = sys.argv[sys.argv.index("measure"):] if "measure" in sys.argv else sys.argv[1:]
    meta["runs"].append({"command": "python -m bench latency " + " ".join(argv), **origin, "vocab_size": vocab, **summary, "provenance": prov})
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{out}: {stats['measured']} measured, {stats['already_done']} already there, {stats['failed']} failed"
          + (f" (see {out.name}.failed.jsonl)" if stats["failed"] else ""))
    f = summary["file"]
    if f["architectures"]:
        print(f"{out} holds {f['architectures']} architectures: median time to measure one {f['median_measure_s']:.1f} s, "
              f"median CV over repetitions {f['median_cv']:.3f} (encoder {f['median_cv_encoder']:.3f}, decoder "
              f"{f['median_cv_decoder']:.3f})")
    return 1 if stats["failed"] and not stats["measured"] and not stats["already_done"] else 0


def file_summary(path: Path) -> dict:
    """Over every architecture in a measured CSV (all runs that built it): count, medians of time and CV."""
    import csv

    if not path.exists():
        return {"architectures": 0}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {"architectures": 0}

    def med(key):
        return statistics.median(float(r[key]) for r in rows)

    return {"architectures": len(rows), "median_measure_s": med("measure_s"), "median_cv": med("cv"),
            "median_cv_encoder": med("cv_encoder"), "median_cv_decoder": med("cv_decoder"),
            "median_latency_ms": med("latency_ms")}


def _is_suite(path: Path) -> bool:
    import yaml

    try:
        obj = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(obj, dict) and "tasks" in obj


# ------------------------------------------------------------------ curve
def curve(args) -> int:
    from predictors.registry import split_specs

    from . import provenance, report
    from .runner import run_suite

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        raise SuiteError(f"--sizes: {args.sizes!r} is not a comma list of integers") from None
    combined: dict = {"results": [], "skipped": [], "runs": [], "reference": {}, "notes": {}}
    configs: dict = {}
    seeds: dict = {}
    suite = None
    for size in sizes:
        suite = load_suite(args.suite)
        tasks = [suite.task(t) for t in args.tasks.split(",")] if args.tasks else suite.tasks
        for t in tasks:
            src = t.cfg["source"]
            if "train_size" not in src:
                raise SuiteError(f"{suite.path}: task {t.name}: source kind {src['kind']!r} has no train_size; "
                                 f"learning curves need one")
            src["train_size"] = size
            t.name = f"{t.name}@{size}"
        res = run_suite(suite, predictors=split_specs(args.predictors) if args.predictors else None,
                        tasks=[t.name for t in tasks], progress=not args.no_progress)
        js = res.to_json()
        for key in ("results", "skipped", "runs"):
            for row in js[key]:
                combined[key].append(dict(row, train_size=size))
        combined["notes"].update(js["notes"])
        configs.update(res.configs)
        seeds.update({t.name: t.seeds for t in tasks})
    combined["suite"] = f"{suite.name}-curve"
    combined["provenance"] = provenance.collect(suite, configs, seeds, extra={"train_sizes": sizes})
    text = curve_markdown(combined, sizes)
    print(text)
    if not args.no_write:
        from .outdir import point_latest, run_dir

        out = args.out or run_dir(f"{suite.name}-curve")
        md, js_path = report.write(combined, out)
        (out / "curve.md").write_text(text)
        if not args.out:
            point_latest(out)
        print(f"wrote {out / 'curve.md'}, {md} and {js_path}", file=sys.stderr)
    return 0


def curve_metrics() -> list[tuple[str, str]]:
    """The registry's curve metrics for latency targets (bench.metrics, ``curve=True``), minus the scale-bound
    MAE (ms differ 30x between devices): name and column label."""
    from . import metrics as M
    return [(m, M.METRICS[m].label) for m in M.for_target("latency", curve=True) if m != "mae"]


def curve_markdown(results: dict, sizes: list[int]) -> str:
    """Per task: predictors x train sizes for Kendall τ, MAPE and the ±10% share (mean ± std over seeds)."""
    from tabulate import tabulate

    from .report import _fmt

    cell: dict = {}
    for r in results["results"]:
        base = r["task"].rsplit("@", 1)[0]
        cell[(base, r["predictor"], r["train_size"], r["metric"])] = r
    lines = [f"# Learning curves: suite `{results['suite']}`", "",
             "Generated by `python -m bench latency curve`; do not edit. Per seed the test set is fixed (the "
             "last rows of one shuffle) and train sets are nested, so columns are comparable. Cells: mean ± std over "
             "seeds. Rank-only predictors (params, flops) have no MAPE/±10%. Columns: the metric registry's curve metrics "
             "(bench/metrics.py).", ""]
    tasks = list(dict.fromkeys(k[0] for k in cell))
    for task in tasks:
        preds = list(dict.fromkeys(k[1] for k in cell if k[0] == task))
        heads = ["predictor"] + [f"{label} @{n}" for _, label in curve_metrics() for n in sizes]
        rows = []
        for p in preds:
            row = [p]
            for metric, _ in curve_metrics():
                for n in sizes:
                    c = cell.get((task, p, n, metric))
                    row.append(_fmt(c["mean"], c["std"], 3 if metric == "kendall" else 2) if c else "–")
            rows.append(row)
        lines += [f"## {task}", "", tabulate(rows, headers=heads, tablefmt="github", disable_numparse=True), ""]
    prov = results["provenance"]
    lines += ["---", "Provenance: " + ", ".join(f"{k} `{prov[k]}`" for k in ("git_commit", "suite_file", "suite_sha256",
                                                                             "torch", "timestamp") if prov.get(k))]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ released
def released(args) -> int:
    import numpy as np
    from tabulate import tabulate

    from predictors.latency import LAT_NORM, RELEASED, hat_device_of, hat_task_of, load_released

    from . import metrics as M
    from .features import encode

    suite = load_suite(args.suite)
    tasks = [suite.task(t) for t in args.tasks.split(",")] if args.tasks else suite.tasks
    rows = []
    for t in tasks:
        where = (hat_task_of(t), hat_device_of(t))
        if where not in RELEASED or "latency_ms" not in t.targets:
            continue
        mlp = load_released(*where)
        y = np.array([r.targets["latency_ms"] for r in t.records])
        p = mlp.predict(encode([r.arch for r in t.records], "hat")) * LAT_NORM[where[1]]
        rows.append([t.name, len(y), f"{M.kendall(y, p):.3f}", f"{M.mae(y, p):.2f}", f"{M.rmse(y, p):.2f}",
                     f"{M.mape(y, p):.2f}", f"{M.within10(y, p):.1f}"])
    if not rows:
        print(f"{suite.path}: no task with a released HAT latency predictor", file=sys.stderr)
        return 2
    text = "\n".join([
        f"# HAT's released latency predictors on their own datasets (suite `{suite.name}`)", "",
        "Generated by `python -m bench latency released`; do not edit. Every row of each released CSV; HAT trained "
        "each predictor on an unseeded 80% of these rows (1,600), so this is mostly TRAINING error, not a held-out "
        "score. MAE/RMSE in ms.", "",
        tabulate(rows, headers=["task", "rows", "Kendall τ", "MAE", "RMSE", "MAPE %", "±10% %"], tablefmt="github",
                 disable_numparse=True), ""])
    print(text)
    if not args.no_write:
        from .outdir import point_latest, run_dir

        out = args.out or run_dir(f"{suite.name}-released")
        out.mkdir(parents=True, exist_ok=True)
        (out / "released.md").write_text(text)
        if not args.out:
            point_latest(out)
        print(f"wrote {out / 'released.md'}", file=sys.stderr)
    return 0
