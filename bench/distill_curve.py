"""``python -m bench distill-curve``: LLM-Distill-PP's learning curve over pool size, next to its teacher.

For each task and split seed the teacher is fitted on the split's training architectures and scored on
the test split; then ``distill[teacher=T,pool=N]`` is trained for every pool size N and scored the same
way.  Teacher labels are cached, so the larger pools reuse the smaller pools' labels.  Prints a table
and writes ``<out>/<suite>-<teacher>.{md,json,png}``.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

from predictors import registry
from predictors.base import Context

from . import metrics as M
from .suite import load_suite


def add_arguments(p):
    p.add_argument("suite")
    p.add_argument("--teacher", default="gp", help="teacher predictor spec (default gp)")
    p.add_argument("--sizes", default="100,500,3000,8500", help="comma list of pool sizes ('all' = every arch)")
    p.add_argument("--tasks", help="comma list of task names (default: all)")
    p.add_argument("--target", default="valid_bleu")
    p.add_argument("--seeds", help="comma list of split seeds (default: all of each task)")
    p.add_argument("--steps", type=int, default=5000, help="student training steps (paper: 5000)")
    p.add_argument("--extra", default="", help="extra distill options, e.g. 'recipe=paper' or 'lr=1e-4'")
    p.add_argument("--out", type=Path, default=Path("reports/distill"))
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--no-progress", action="store_true")


def query_ms_per_10(pred, archs, repeats: int = 200) -> float:
    """Median wall time of one batched prediction of 10 architectures (ms)."""
    batch = (list(archs) * 10)[:10]
    pred.predict(batch)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pred.predict(batch)
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def _score(pred, train, test, target):
    """The registry's curve metrics (bench.metrics, ``curve=True``) for the target's kind, plus timings."""
    tgt = pred.ctx.task.targets[target]
    y_tr = np.array([r.targets[target] for r in train])
    y_te = np.array([r.targets[target] for r in test])
    t0 = time.perf_counter()
    pred.fit([r.arch for r in train], y_tr)
    fit_s = time.perf_counter() - t0
    p = np.asarray(pred.predict([r.arch for r in test]), dtype=float)
    o = M.orientation(pred, tgt)
    scores = M.score(y_te, o * p, on_scale=pred.on_target_scale, metrics=M.for_target(tgt.kind, curve=True),
                     target_higher_is_better=tgt.higher_is_better)
    return {**scores, "fit_s": fit_s, "query_ms_per_10": query_ms_per_10(pred, [r.arch for r in test]),
            "coverage": float(np.isfinite(p).mean())}


def curve(suite, teacher: str, sizes: list, tasks=None, target="valid_bleu", seeds=None, steps=5000, extra="",
          progress=True) -> list[dict]:
    rows = []
    jobs = [(t, s) for t in (tasks or suite.tasks) for s in (seeds or t.seeds)]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs) * (1 + len(sizes)), desc="distill-curve", file=sys.stderr, leave=False)
    for task, seed in jobs:
        train, test = task.split(seed)
        ctx = Context(task=task, target=target, seed=seed)
        specs = [(teacher, "teacher", None)] + [
            (f"distill[teacher={teacher},pool={n},steps={steps}{',' + extra if extra else ''}]", "student", n)
            for n in sizes]
        for spec, role, n in specs:
            pred = registry.create(spec, ctx)
            res = _score(pred, train, test, target)
            det = pred.details()
            rows.append(dict(task=task.name, seed=seed, role=role, pool=n, predictor=pred.spec, **res,
                             train_s=det.get("train_s", 0.0), details=det))
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    return rows


def aggregate(rows: list[dict]) -> list[dict]:
    out = {}
    for r in rows:
        out.setdefault((r["task"], r["role"], r["pool"]), []).append(r)
    agg = []
    for (task, role, pool), rs in out.items():
        a = {"task": task, "role": role, "pool": pool, "predictor": rs[0]["predictor"], "seeds": len(rs)}
        for m in [*curve_metrics(rs), "fit_s", "train_s", "query_ms_per_10"]:
            a[m], a[m + "_std"] = M.aggregate([r.get(m) for r in rs])
        agg.append(a)
    return agg


def curve_metrics(rows: list[dict]) -> list[str]:
    """The declared curve metrics present in these rows, in declaration order."""
    return [m for m in M.METRICS if M.METRICS[m].curve and any(m in r for r in rows)]


def table(agg: list[dict]) -> str:
    from .report import _fmt
    ms = curve_metrics(agg)
    rows = [[a["task"], a["role"] if a["role"] == "teacher" else f"student, pool {a['pool']}",
             *[_fmt(a[m], a[m + "_std"], 3) for m in ms],
             f"{a['fit_s']:.2f}", f"{a['train_s']:.1f}" if a["role"] == "student" else "–",
             f"{a['query_ms_per_10']:.3f}"] for a in agg]
    return tabulate(rows, headers=["task", "predictor", *[M.METRICS[m].label for m in ms], "fit s (this run)",
                                   "student training s (cached students: when trained)", "query ms / 10 archs"],
                    tablefmt="github")


def plot(agg: list[dict], path: Path, teacher: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    tasks = sorted({a["task"] for a in agg})
    for task, color in zip(tasks, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]):
        st = sorted([a for a in agg if a["task"] == task and a["role"] == "student"], key=lambda a: a["pool"])
        te = [a for a in agg if a["task"] == task and a["role"] == "teacher"][0]
        for ax, m in zip(axes, ("mae", "kendall")):
            ax.errorbar([a["pool"] for a in st], [a[m] for a in st], yerr=[a[m + "_std"] for a in st], marker="o",
                        color=color, label=f"{task} student", capsize=3)
            ax.axhline(te[m], color=color, ls="--", lw=1, label=f"{task} teacher")
    for ax, m in zip(axes, ("MAE (BLEU)", "Kendall τ")):
        ax.set_xscale("log")
        ax.set_xlabel("pool size (teacher-labelled architectures)")
        ax.set_ylabel(m)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"LLM-Distill-PP learning curve, teacher {teacher}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _recipe_words(steps: int, extra: str) -> str:
    """The student's training as the distill options in ``extra`` set it (the header must match the run)."""
    from predictors.distill import PAPER_RECIPE, Distill

    cfg = dict(Distill.default_config(), steps=steps, **registry.parse_spec(f"distill[{extra}]")[1])
    if cfg["recipe"] == "paper":
        cfg.update(PAPER_RECIPE)
        return (f"recipe=paper (llmas' bleu_predictor.py): {cfg['steps']} steps, batch {cfg['batch']}, Adam lr "
                f"{cfg['lr']:g}, raw targets, RNGs seeded once with 123 and carried over the splits 123, 456, 789")
    rest = ", ".join(f"{k}={v}" for k, v in registry.parse_spec(f"distill[{extra}]")[1].items()
                     if k not in ("recipe", "lr", "batch", "steps"))
    return (f"recipe=standardized: {cfg['steps']} steps, batch {cfg['batch']}, Adam lr {cfg['lr']:g}, standardised "
            f"targets, seeded by the split seed" + (f", {rest}" if rest else ""))


def _command(args) -> str:
    parts = ["python -m bench distill-curve", str(args.suite), "--teacher", args.teacher, "--sizes", args.sizes]
    for flag, value, default in (("--tasks", args.tasks, None), ("--target", args.target, "valid_bleu"),
                                 ("--seeds", args.seeds, None), ("--steps", args.steps, 5000),
                                 ("--extra", args.extra, "")):
        if value not in (None, default):
            parts += [flag, str(value)]
    return " ".join(parts)


def main(args) -> int:
    suite = load_suite(args.suite)
    sizes = [s if s == "all" else int(s) for s in args.sizes.split(",")]
    tasks = [suite.task(t) for t in args.tasks.split(",")] if args.tasks else None
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    rows = curve(suite, args.teacher, sizes, tasks, args.target, seeds, args.steps, args.extra,
                 progress=not args.no_progress)
    agg = aggregate(rows)
    text = table(agg)
    print(text)
    if args.no_write:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{suite.name}-{args.teacher}" + (f"-{args.extra}" if args.extra else ""))
    (args.out / f"{stem}.json").write_text(json.dumps({"rows": rows, "aggregate": agg}, indent=1, default=float))
    plot(agg, args.out / f"{stem}.png", args.teacher)
    md = [f"# LLM-Distill-PP learning curve: suite {suite.name}, teacher `{args.teacher}`, target {args.target}", "",
          f"Student: HAT's 10→400→3×400→1 MLP on the llmas features, {_recipe_words(args.steps, args.extra)}; "
          "trained on the teacher's labels of the first N pool "
          "architectures (the paper's 3,000 first; smaller pools are seeded subsets of them). Teacher and student "
          "are scored on each split's 20 test architectures; mean ± std over split seeds. Command: "
          f"`{_command(args)}`.",
          "", text, "", f"![learning curve]({stem}.png)", ""]
    (args.out / f"{stem}.md").write_text("\n".join(md))
    print(f"wrote {args.out / stem}.md/.json/.png", file=sys.stderr)
    return 0
