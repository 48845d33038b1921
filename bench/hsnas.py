"""HS-NAS end to end on a measured task (``bench hsnas``): constrain, pick a teacher, distil, search, train.

One resumable pipeline; every stage's result is a file in the output folder and a rerun reuses it:

1. ``stages/constraint.json``: a FLOPs limit, by default a quantile of the GFLOPs of a seeded sample of the
   space (exact and deterministic; a CPU latency measured while other jobs share the cores is neither).
2. ``teacher-records.jsonl`` + ``stages/teacher.json``: a snapshot of the task's measured records (the
   file ``bench measure`` writes) and the offline predictor with the best mean Kendall tau on them, the
   leaderboard's primary metric, computed now by ``bench.runner`` (or ``--teacher``).
3. ``stages/distill.json``: ``distill[teacher=T]`` fitted once (teacher labels over a seeded pool of the
   space, then the student), its cost amortised over the hybrid searches.
4. ``runs/<mode>-seed<k>.json``: ``hybrid`` (student, then the supernet from ``--switch-at``),
   ``supernet-only`` and ``random`` (best of N constraint-satisfying random architectures by the supernet,
   N = the hybrid run's distinct supernet queries for the same seed).  The supernet's scores are cached per
   architecture across runs, so each run is *charged* the first, uncached computation time of every
   architecture it asks for (``expensive-seconds.json``), not the cache lookups it really made.
5. ``records.jsonl``: every found architecture trained with the suite's recipe by ``bench measure``'s code
   (seed 0; seeds 1 and 2 for the best), resumable per (architecture, seed).
6. ``summary.json``, ``report.md``, ``pareto.png``: rebuilt from the files above on every run.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import resource
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .costs import compute_costs
from .outdir import UsageError
from .search.evolve import Constraint, EvoParams, Genes, Scorer, SearchError
from .space import Arch

MODES = ("hybrid", "supernet-only", "random")
CANDIDATES = "linear,gp,rf,mlp,params,params-no-emb,flops"
PAPER_EVO = {"population": 125, "parents": 25, "mutations": 50, "crossovers": 50, "iterations": 30,
             "switch_at": 15, "mutation_prob": 0.3}


# ---------------------------------------------------------------- small helpers
def _dump(path: Path, obj) -> None:
    """Atomic JSON write (a killed run never leaves half a stage file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=float) + "\n")
    os.replace(tmp, path)


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _cpu() -> float:
    """CPU seconds of this process and its finished children (training runs in this process)."""
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


class Clock:
    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w0, _cpu() - self.c0


def valid_arch(a: Arch) -> bool:
    """Buildable: no decoder layer attends to more encoder layers than exist (SubTransformer refuses it)."""
    return all(span <= a.encoder_layer_num for span in a.ende_layers)


def gflops(task, a: Arch) -> float:
    return compute_costs(a, task.vocab_size, task.space.qkv_dim).total_flops / 1e9


# ---------------------------------------------------------------- the expensive scorer, timed per architecture
class TimedScorer:
    """The supernet predictor, asked one architecture at a time so each computation is timed on its own.

    ``table`` maps arch key -> {wall, cpu} of one real (uncached) computation; runs are charged from it, so a
    search costs what it would uncached, whatever the predictor's score cache held.  An architecture the
    cache served that this table never saw computed (scored by an earlier, unrelated run) is computed once
    more, outside the cache, only to time it (``retimed``); if that is impossible it is charged the median
    of the measured ones and counted as imputed.
    """

    def __init__(self, pred, table: dict, task, progress: bool = False):
        self.pred, self.table, self.task, self.progress = pred, table, task, progress
        self.higher_is_better = getattr(pred, "higher_is_better", True)
        self.calls_wall = 0.0  # what the calls really took in this process (cache hits included)
        self.calls_cpu = 0.0
        self.asked: list[str] = []  # keys of the architectures this run asked for, in order

    def predict(self, archs):
        out = []
        it = archs
        if self.progress and len(archs) > 1:
            from tqdm import tqdm
            it = tqdm(archs, desc="supernet score=loss", unit="arch", file=sys.stderr, leave=False)
        for a in it:
            before = self.pred.cost().get("computed", 0)
            with Clock() as c:
                v = float(np.asarray(self.pred.predict([a]), dtype=float).reshape(-1)[0])
            self.asked.append(a.key())
            with Clock() as r:  # a retiming is charged from the table, so it must leave the as-run overhead
                if self.pred.cost().get("computed", 0) > before:
                    self.table[a.key()] = {"wall": c.wall, "cpu": c.cpu}
                elif a.key() not in self.table:
                    self.table[a.key()] = self._retime(a)
            self.calls_wall += c.wall + r.wall
            self.calls_cpu += c.cpu + r.cpu
            out.append(v)
        return np.array(out, dtype=float)

    def warm(self) -> dict:
        """Load the checkpoint and the task's data once (a one-off per process, not any architecture's cost)."""
        with Clock() as c:
            try:
                self.pred._load(self.task)
            except Exception:  # noqa: BLE001 - then the first computation carries the load, as it would
                pass
        return {"wall": c.wall, "cpu": c.cpu}

    def _retime(self, a: Arch) -> dict | None:
        """Time the computation the cache skipped: the predictor's own extract + dev NLL (score=loss)."""
        try:
            import torch

            from .mt.train import dev_loss
            model, _, prep, _ = self.pred._load(self.task)
            with Clock() as c:
                dev_loss(model.extract(a), prep.dev_pairs, prep.recipe, torch, "cpu")
            return {"wall": c.wall, "cpu": c.cpu, "retimed": True}
        except Exception:  # noqa: BLE001 - the predictor's internals moved: impute (counted) instead
            return None

    def cost(self):
        return self.pred.cost()

    def details(self):
        return getattr(self.pred, "details", dict)()


def charge(keys: list[str], table: dict) -> dict:
    """Uncached seconds of evaluating ``keys`` once each, from the per-architecture table."""
    measured = [v for v in table.values() if v]
    med_w = float(np.median([v["wall"] for v in measured])) if measured else math.nan
    med_c = float(np.median([v["cpu"] for v in measured])) if measured else math.nan
    wall = cpu = 0.0
    imputed = 0
    for k in keys:
        v = table.get(k)
        if v:
            wall, cpu = wall + v["wall"], cpu + v["cpu"]
        else:
            wall, cpu, imputed = wall + med_w, cpu + med_c, imputed + 1
    return {"wall": wall, "cpu": cpu, "imputed": imputed}


# ---------------------------------------------------------------- settings
@dataclass
class Settings:
    suite: str
    task: str
    out: Path
    seeds: list[int]
    modes: list[str]
    target: str | None = None
    checkpoint: str | None = None
    gflops: float | None = None
    flops_quantile: float = 0.5
    flops_sample: int = 2000
    teacher: str | None = None
    candidates: list[str] = field(default_factory=lambda: CANDIDATES.split(","))
    pool: int = 2000
    distill_steps: int = 5000
    evo: dict = field(default_factory=dict)
    best_seeds: list[int] = field(default_factory=lambda: [1, 2])
    train: bool = True
    max_steps: int | None = None
    threads: int = 1
    progress: bool = True
    command: str = ""


def _ints(value: str, flag: str) -> list[int]:
    try:
        out = list(dict.fromkeys(int(x) for x in str(value).split(",") if x.strip() != ""))
    except ValueError:
        raise UsageError(f"{flag} {value}: must be a comma list of integers, e.g. 0,1,2") from None
    if not out:
        raise UsageError(f"{flag}: give at least one integer, e.g. 0,1,2")
    return out


def _argv() -> list[str]:
    """This invocation's command line (the CLI's Run holds it; under a test runner sys.argv is the runner's)."""
    from .invocation import current
    run = current()
    return list(run.argv) if run is not None and run.argv else list(sys.argv)


def settings_from_args(args) -> Settings:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise UsageError(f"--modes {args.modes}: {bad or 'empty'} not allowed; allowed values: {list(MODES)}")
    if "random" in modes and "hybrid" not in modes:
        raise UsageError("--modes: random draws as many architectures as the hybrid run of the same seed scored "
                         "with the supernet; add hybrid")
    evo = {"population": args.parents + args.mutations + args.crossovers, "parents": args.parents,
           "mutations": args.mutations, "crossovers": args.crossovers, "iterations": args.iterations,
           "switch_at": args.switch_at if args.switch_at is not None else args.iterations // 2,
           "mutation_prob": args.mutation_prob}
    try:
        EvoParams(**{k: v for k, v in evo.items() if k != "switch_at"}).check()
    except SearchError as exc:
        raise UsageError(f"--parents/--mutations/--crossovers/--iterations: {exc}") from None
    if not 1 <= evo["switch_at"] <= evo["iterations"] - 1:
        raise UsageError(f"--switch-at {evo['switch_at']}: must lie in 1..{evo['iterations'] - 1}")
    if not 0 < args.flops_quantile < 1:
        raise UsageError(f"--flops-quantile {args.flops_quantile}: must lie strictly between 0 and 1")
    if args.gflops is not None and not args.gflops > 0:
        raise UsageError(f"--gflops {args.gflops}: must be greater than 0")
    for flag, v in (("--flops-sample", args.flops_sample), ("--pool", args.pool), ("--threads", args.threads),
                    ("--distill-steps", args.distill_steps)):
        if v < 1:
            raise UsageError(f"{flag}: must be >= 1, got {v}")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise UsageError(f"--checkpoint {args.checkpoint}: no such file; train one with `python -m bench supernet "
                         f"train SUITE --task T --kind hat`")
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"--max-steps: must be >= 1, got {args.max_steps}")
    out = args.out or Path("reports") / "hsnas" / args.task
    from .outdir import writable_dir
    writable_dir(Path(out))
    return Settings(
        suite=args.suite, task=args.task, out=Path(out), seeds=_ints(args.seeds, "--seeds"), modes=modes,
        target=args.target, checkpoint=args.checkpoint, gflops=args.gflops, flops_quantile=args.flops_quantile,
        flops_sample=args.flops_sample, teacher=args.teacher,
        candidates=[c for c in args.candidates.split(",") if c.strip()], pool=args.pool,
        distill_steps=args.distill_steps, evo=evo,
        best_seeds=_ints(args.best_seeds, "--best-seeds") if args.best_seeds else [], train=not args.no_train,
        max_steps=args.max_steps, threads=args.threads, progress=not args.no_progress,
        command=" ".join(shlex.quote(a) for a in ["python", "-m", "bench", *_argv()[1:]]),
    )


# ---------------------------------------------------------------- the pipeline
class Pipeline:
    def __init__(self, s: Settings):
        from .suite import load_suite

        self.s = s
        self.out = s.out
        self.suite = load_suite(s.suite)
        self.task = self.suite.task(s.task)
        if not isinstance(self.task.cfg.get("measure"), dict):
            raise UsageError(f"--task {s.task}: has no measure: block (corpus, tokenizer, recipe) to train found "
                             f"architectures and score a supernet on")
        if not self.task.vocab_size:  # FLOPs need it: the trained tokenizer's size, as bench measure records
            from .measure import prepare
            self.task.vocab_size = len(prepare(self.task).vocab)
        self.genes = Genes(self.task.space)
        self.log_lines: list[str] = []
        self.ran: dict[str, str] = {}  # stage -> "ran" | "cached", for this invocation
        self._fitted: dict = {}
        self._table: dict | None = None

    # ---- bookkeeping
    def say(self, msg: str) -> None:
        line = f"[hsnas {time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "hsnas.log", "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def _stage(self, name: str, path: Path, key: dict):
        """The stage's saved result if it was computed with this key; an error if with another."""
        got = _load(path)
        if got is None:
            return None
        if got.get("key") != json.loads(json.dumps(key, default=float)):
            diff = sorted(k for k in set(key) | set(got.get("key") or {})
                          if json.dumps((got.get("key") or {}).get(k), default=float) != json.dumps(key.get(k),
                                                                                                    default=float))
            raise UsageError(f"--out {self.out}: {path.name} was computed with other settings ({', '.join(diff)}); "
                             f"use another --out or delete {path}")
        self.ran[name] = "cached"
        self.say(f"{name}: cached ({path.relative_to(self.out)})")
        return got

    # ---- 1. constraint
    def constraint(self) -> dict:
        s, task = self.s, self.task
        key = {"space": task.space.to_config(), "vocab_size": task.vocab_size, "gflops": s.gflops,
               "quantile": s.flops_quantile, "sample": s.flops_sample, "sample_seed": 0}
        path = self.out / "stages" / "constraint.json"
        got = self._stage("constraint", path, key)
        if got:
            return got
        with Clock() as c:
            rng = random.Random(0)
            drawn, valid = 0, []
            while len(valid) < s.flops_sample:
                a = self.genes.arch(self.genes.random(rng))  # the search's own sampler, so the quantile binds there
                drawn += 1
                if valid_arch(a):
                    valid.append(gflops(task, a))
            g = np.array(valid)
            limit = s.gflops if s.gflops is not None else float(np.quantile(g, s.flops_quantile))
        got = {"key": key, "gflops_limit": limit,
               "how": "--gflops" if s.gflops is not None else f"quantile {s.flops_quantile:g} of {s.flops_sample} "
                                                                "seeded random buildable architectures",
               "sample_drawn": drawn, "sample_unbuildable": drawn - len(valid),
               "sample_rejected_share": float((g > limit).mean()),
               "sample_gflops": {"min": float(g.min()), "median": float(np.median(g)), "max": float(g.max())},
               "seconds": {"wall": c.wall, "cpu": c.cpu}}
        _dump(path, got)
        self.ran["constraint"] = "ran"
        self.say(f"constraint: GFLOPs <= {limit:.5g} ({got['how']}); rejects {got['sample_rejected_share']:.0%} of "
                 f"random buildable architectures")
        return got

    def make_constraint(self, limit: float) -> tuple[Constraint, dict]:
        unbuildable = {"n": 0}

        def flops_fn(a):
            if not valid_arch(a):
                unbuildable["n"] += 1
                return math.inf
            return gflops(self.task, a) * 1e9
        return Constraint(gflops=limit, flops_fn=flops_fn), unbuildable

    # ---- 2. teacher
    def records_path(self) -> Path:
        from .measure import output_path
        return output_path(self.task)

    def snapshots(self) -> list[tuple[Path, Path]]:
        """(records file, its frozen copy): the file ``bench measure`` fills, then, where ``source.file`` is a list
        (e.g. seed 0 and its seed-1 twins read as a seed mean) whose first file is that one, every other file of
        it: a snapshot of the first alone would teach the teacher other targets than the suite's.  (Where
        ``measure.records`` names another file, a set re-measured while the suite reads the old one, it stands
        alone.)"""
        from .data import resolve
        from .sources.records import file_specs

        pairs = [(self.records_path(), self.out / "teacher-records.jsonl")]
        files = file_specs(self.task.cfg["source"])
        base = self.suite.path.parent
        first = files[0] if isinstance(files[0], dict) else {}
        if len(files) > 1 and "path" in first and os.path.normpath(base / first["path"]) == os.path.normpath(pairs[0][0]):
            pairs += [(resolve(spec, base), self.out / f"teacher-records.{i}.jsonl") for i, spec in enumerate(files[1:], 1)]
        return pairs

    def records_task(self):
        """The task reading the snapshot of its measured records (what the teacher and student learn from)."""
        from .suite import Task

        snaps = [{"path": str(snap.resolve())} for _, snap in self.snapshots()]
        cfg = copy.deepcopy(self.task.cfg)
        cfg["source"]["file"] = snaps if isinstance(cfg["source"].get("file"), list) else snaps[0]
        t = Task(self.suite, cfg, self.task.where)
        t.vocab_size = self.task.vocab_size
        self.suite.tasks = [t if x.name == t.name else x for x in self.suite.tasks]
        return t

    def target(self, task) -> str:
        from .search.run import pick_target
        try:
            return pick_target(task, self.s.target, "quality")
        except SearchError as exc:
            raise UsageError(f"--target: {exc}") from None

    def teacher(self) -> dict:
        from .data import sha256_of

        s = self.s
        snap = self.out / "teacher-records.jsonl"
        key = {"teacher": s.teacher, "candidates": s.candidates if not s.teacher else None, "target": s.target}
        path = self.out / "stages" / "teacher.json"
        got = self._stage("teacher", path, key)
        if got:
            for _, sn in self.snapshots():
                if not sn.exists():
                    raise UsageError(f"--out {self.out}: {path.name} exists but {sn.name} is gone; delete "
                                     f"{path} to redo the teacher stage")
            return got
        src = self.records_path()
        if not src.exists():
            raise UsageError(f"{src}: no measured records for task {self.task.name}; measure some first with "
                             f"`python -m bench measure {self.s.suite} --task {self.task.name} --n 30`")
        snap.parent.mkdir(parents=True, exist_ok=True)
        for orig, sn in self.snapshots():
            sn.write_bytes(orig.read_bytes())  # frozen: the measurement jobs keep appending to the original
        rt = self.records_task()
        target = self.target(rt)
        with Clock() as c:
            table = []
            if s.teacher:
                best = s.teacher
            else:
                from .runner import run_suite

                res = run_suite(self.suite, predictors=s.candidates, tasks=[rt.name], targets=[target],
                                progress=s.progress)
                for r in res.rows:
                    if r["metric"] == "kendall" and r["target"] == target:
                        table.append({"predictor": r["predictor"], "kendall": r["mean"], "std": r.get("std"),
                                      "seeds": r.get("n")})
                table.sort(key=lambda r: -(r["kendall"] if r["kendall"] is not None else -9))
                ok = [r for r in table if r["kendall"] is not None and np.isfinite(r["kendall"])]
                if not ok:
                    raise UsageError(f"--candidates {','.join(s.candidates)}: none produced a Kendall tau on "
                                     f"{rt.name}/{target}; name one with --teacher")
                best = ok[0]["predictor"]
        got = {"key": key, "teacher": best, "target": target, "leaderboard": table,
               "records": {"file": str(src), "rows": len(rt.records), "sha256": sha256_of(snap),
                           "train_size": len(rt.split(rt.seeds[0])[0]), "splits": rt.seeds,
                           "more_files": [{"file": str(o), "sha256": sha256_of(sn)} for o, sn in self.snapshots()[1:]]},
               "seconds": {"wall": c.wall, "cpu": c.cpu}}
        _dump(path, got)
        self.ran["teacher"] = "ran"
        self.say(f"teacher: {best}" + (f" (best mean Kendall tau {table[0]['kendall']:.3f} on {len(rt.records)} "
                                       f"records of {target})" if table else " (--teacher)"))
        return got

    # ---- 3. scorers
    def distill_spec(self, teacher: str) -> str:
        return f"distill[teacher={teacher},pool={self.s.pool},steps={self.s.distill_steps}]"

    def checkpoint(self) -> Path:
        from .supernet import find_checkpoint, train_command
        if self.s.checkpoint:
            return Path(self.s.checkpoint)
        p = find_checkpoint(self.suite, self.task.name, "hat")
        if p is None:
            raise UsageError(f"--checkpoint: no HAT supernet for {self.task.name}; train one with "
                             f"`{train_command(self.suite, self.task.name, 'hat')}` or pass --checkpoint PATH")
        return p

    def supernet_spec(self, ck: Path) -> str:
        return f"supernet[kind=hat,checkpoint={ck},score=loss,progress=false]"

    def fit(self, spec: str, rt, target: str):
        from .search.run import fit_predictor
        if spec not in self._fitted:
            try:
                self._fitted[spec] = fit_predictor(spec, rt, target, rt.seeds[0], {})
            except (SearchError, ValueError) as exc:
                raise UsageError(f"scorer {spec}: {exc}") from None
        return self._fitted[spec]

    def distill(self, teacher: dict, rt) -> dict:
        spec = self.distill_spec(teacher["teacher"])
        key = {"spec": spec, "records_sha256": teacher["records"]["sha256"], "target": teacher["target"],
               "split_seed": rt.seeds[0]}
        path = self.out / "stages" / "distill.json"
        got = self._stage("distill", path, key)
        if got:
            return got
        self.say(f"distill: fitting {spec} (teacher fitted on split {rt.seeds[0]}, labels {self.s.pool} pool "
                 f"architectures, student {self.s.distill_steps} steps)...")
        with Clock() as c:
            f = self.fit(spec, rt, teacher["target"])
        d = getattr(f.pred, "details", dict)()
        got = {"key": key, "spec": spec, "seconds": {"wall": c.wall, "cpu": c.cpu}, "details": d,
               "cost": f.pred.cost(),
               "note": ("student served from the distill cache; it once trained in "
                        f"{d.get('train_s', float('nan')):.1f} s") if d.get("student_cached") else None}
        _dump(path, got)
        self.ran["distill"] = "ran"
        self.say(f"distill: {c.wall:.1f} s wall, {c.cpu:.1f} s CPU ({d.get('labels_new')} new teacher labels)")
        return got

    # ---- 4. searches
    def table(self) -> dict:
        if self._table is None:
            self._table = _load(self.out / "expensive-seconds.json") or {}
        return self._table

    def save_table(self) -> None:
        _dump(self.out / "expensive-seconds.json", self.table())

    def run_key(self, mode, seed, limit, ck_sha, distill_spec, teacher) -> dict:
        k = {"mode": mode, "seed": seed, "gflops_limit": limit, "checkpoint_sha256": ck_sha,
             "target": teacher["target"], "records_sha256": teacher["records"]["sha256"]}
        if mode != "random":
            k["evo"] = {kk: v for kk, v in self.s.evo.items() if mode == "hybrid" or kk != "switch_at"}
        if mode == "hybrid":
            k["distill"] = distill_spec
        return k

    def search(self, mode: str, seed: int, limit: float, ck: Path, ck_sha: str, teacher: dict, rt,
               hybrid_run: dict | None) -> dict:
        from .blas import one_blas_thread
        from .search.run import Fitted, run_search

        dspec = self.distill_spec(teacher["teacher"])
        key = self.run_key(mode, seed, limit, ck_sha, dspec, teacher)
        if mode == "random":
            key["n"] = hybrid_run["expensive_evaluations"]
        path = self.out / "runs" / f"{mode}-seed{seed}.json"
        got = self._stage(f"search {mode} seed {seed}", path, key)
        if got:
            return got
        target = teacher["target"]
        sn = self.fit(self.supernet_spec(ck), rt, target)
        timed = TimedScorer(sn.pred, self.table(), rt, self.s.progress)
        load = timed.warm()
        sn_fitted = Fitted(timed, sn.fit_s, sn.fit_cost)
        # the student is fitted before the clock starts: a resumed run whose distill stage is cached refits it
        # here, and that is the distillation (shown amortised), not this search's time
        student = self.fit(dspec, rt, target) if mode == "hybrid" else None
        constraint, unbuildable = self.make_constraint(limit)
        self.say(f"search {mode} seed {seed}...")
        with Clock() as c:
            if mode == "random":
                res = self._random(seed, key["n"], constraint, timed)
            else:
                p = {k: v for k, v in self.s.evo.items() if k != "switch_at"}
                params = EvoParams(**p)
                sn_spec = self.supernet_spec(ck)
                fitted = {sn_spec: sn_fitted}
                if mode == "hybrid":
                    fitted[dspec] = student
                    stages = [(0, dspec), (self.s.evo["switch_at"], sn_spec)]
                else:
                    stages = [(0, sn_spec)]
                cargs = {"gflops": limit, "flops_fn": constraint.flops_fn}
                opts = {"amortize_over": 1, "expensive_s_per_eval": None}
                with one_blas_thread():
                    run = run_search(rt, stages, fitted, cargs, params, seed, rt.seeds[0], target, opts,
                                     progress=self.s.progress)
                exp = run["ledger"]["expensive"]
                res = {"arch": run["best"]["arch"], "supernet_score": run["best"]["predicted"][
                    [st["label"] for st in run["ledger"]["stages"]][-1]],
                       "expensive_evaluations": exp["queries"], "hat_style_evaluations": exp["hat_evals"],
                       "queried": None, "constraint": run["ledger"]["constraint"],
                       "trajectory": run["trajectory"], "ledger": run["ledger"],
                       "stage_wall": run["spend"]["wall_s"]["stage"],
                       "distill_score": run["best"]["predicted"].get(dspec) if mode == "hybrid" else None}
        res.update(mode=mode, seed=seed, key=key, gflops=gflops(self.task, Arch.from_dict(res["arch"])),
                   params=compute_costs(Arch.from_dict(res["arch"]), self.task.vocab_size,
                                        self.task.space.qkv_dim).params,
                   as_run_seconds={"wall": c.wall, "cpu": c.cpu, "expensive_calls_wall": timed.calls_wall,
                                   "expensive_calls_cpu": timed.calls_cpu},
                   unbuildable_rejected=unbuildable["n"], supernet_load_seconds=load)
        res["queried"] = sorted(set(timed.asked))
        self.save_table()
        _dump(path, res)
        self.ran[f"search {mode} seed {seed}"] = "ran"
        self.say(f"search {mode} seed {seed}: {res['expensive_evaluations']} supernet evaluations, "
                 f"{c.wall:.1f} s wall as run; best {Arch.from_dict(res['arch'])} ({res['gflops']:.4g} GFLOPs)")
        return res

    def _random(self, seed: int, n: int, constraint: Constraint, timed: TimedScorer) -> dict:
        rng = random.Random(f"hsnas-random-{seed}")  # not the searches' stream: not their initial population
        seen, archs, drawn, rejected = set(), [], 0, 0
        while len(archs) < n:
            a = self.genes.arch(self.genes.random(rng))
            drawn += 1
            if a in seen:
                continue
            if not constraint.satisfied([a])[0]:
                rejected += 1
                if rejected > 200_000:
                    raise UsageError("random: the FLOPs limit rejects every architecture drawn; raise --gflops")
                continue
            seen.add(a)
            archs.append(a)
        sc = Scorer("supernet", timed)
        scores = sc.score(archs)
        order = [i for i in np.argsort(-scores, kind="stable") if np.isfinite(scores[i])]
        best = archs[order[0]] if order else archs[0]
        return {"arch": best.to_dict(), "supernet_score": float(scores[order[0]]) if order else None,
                "expensive_evaluations": sc.queries, "hat_style_evaluations": sc.hat_evals,
                "queried": None,
                "constraint": {"candidates": drawn, "rejected": rejected, "duplicates": drawn - rejected - len(archs)},
                "trajectory": None, "ledger": sc.ledger(), "stage_wall": None, "distill_score": None}

    def diagnostics(self, teacher: dict, rt, ck: Path, ck_sha: str, dist: dict | None) -> dict:
        """How well each scorer ranks the task's measured (random) architectures: Kendall tau against the
        measured targets, after the searches so their timings are untouched.  Context for the result, not a stage
        the searches depend on."""
        from scipy.stats import kendalltau

        key = {"checkpoint_sha256": ck_sha, "records_sha256": teacher["records"]["sha256"],
               "distill": dist["spec"] if dist else None, "on": "held-out"}
        path = self.out / "stages" / "diagnostics.json"
        got = self._stage("diagnostics", path, key)
        if got:
            return got
        # only the records outside the teacher's training split: the student learnt the others' labels through
        # its teacher, so a tau on them would flatter it; both scorers are ranked on the same held-out records
        seen = {r.arch.key() for r in rt.split(rt.seeds[0])[0]}
        held = [r for r in rt.records if r.arch.key() not in seen]
        archs = [r.arch for r in held]
        scorers = {"supernet (−dev loss)": self.fit(self.supernet_spec(ck), rt, teacher["target"]).pred}
        if dist:
            scorers[f"student {dist['spec']}"] = self.fit(dist["spec"], rt, teacher["target"]).pred
        out = {}
        with Clock() as c:
            for name, pred in scorers.items():
                p = np.asarray(pred.predict(archs), dtype=float)
                row = {}
                for tname, tg in rt.targets.items():
                    y = np.array([r.targets.get(tname, np.nan) for r in held], dtype=float)
                    ok = np.isfinite(p) & np.isfinite(y)
                    tau = kendalltau(p[ok], y[ok]).statistic if ok.sum() > 2 else np.nan
                    row[tname] = float(tau) * (1 if tg.higher_is_better else -1) if np.isfinite(tau) else None
                out[name] = row
        got = {"key": key, "n": len(archs), "kendall": out,
               "note": "signed so that + means the scorer ranks better-measured architectures higher (valid_nll "
                       f"negated); on the {len(held)} measured architectures outside the teacher's training split "
                       f"(split {rt.seeds[0]}, {len(seen)} architectures)",
               "seconds": {"wall": c.wall, "cpu": c.cpu}}
        _dump(path, got)
        self.ran["diagnostics"] = "ran"
        self.say(f"diagnostics: Kendall tau on {len(held)} held-out measured records: " + "; ".join(
            f"{k}: {v.get(teacher['target']) if v.get(teacher['target']) is None else round(v[teacher['target']], 3)}"
            for k, v in out.items()))
        return got

    # ---- 5. training
    def recipe_sha(self) -> str:
        import dataclasses

        from .measure import measure_config
        from .mt.train import Recipe
        r = Recipe.from_config(measure_config(self.task).get("recipe"), "recipe")
        if self.s.max_steps is not None:
            r = dataclasses.replace(r, max_steps=self.s.max_steps)
        return r.sha256

    def train(self, archs: list[dict], seeds: list[int], name: str, file: str) -> dict:
        """Train ``archs`` x ``seeds`` into ``records.jsonl`` with bench measure's own code (resumable)."""
        from .measure import main as measure_main
        from .measure import read_records

        rec_path = self.out / "records.jsonl"
        sha = self.recipe_sha()
        done = {(r.get("arch_key"), r.get("seed")) for r in read_records(rec_path) if r.get("recipe_sha256") == sha}
        todo = [(a, sd) for a in archs for sd in seeds if (Arch.from_dict(a).key(), sd) not in done]
        stage = self.out / "stages" / "train.json"
        log = _load(stage) or {"invocations": []}
        if not todo:
            self.ran[name] = "cached"
            self.say(f"{name}: cached ({len(archs) * len(seeds)} (architecture, seed) runs in records.jsonl)")
            return log
        af = self.out / file
        af.write_text("".join(json.dumps({"arch": a}) + "\n" for a in archs))
        self.say(f"{name}: training {len(todo)} (architecture, seed) runs with the suite's recipe...")
        ns = argparse.Namespace(
            suite=self.s.suite, task=self.task.name, n=30, seeds=",".join(map(str, seeds)), archs=af, noise=False,
            device="cpu", threads=self.s.threads, workers=1, out=rec_path, max_steps=self.s.max_steps,
            allow_mixed=False, summary=False, floors=False, throughput=False, throughput_steps=10,
            no_progress=not self.s.progress, executor="local", ray_address=None, max_retries=2)
        with Clock() as c:
            rc = measure_main(ns)
        if rc != 0:
            raise UsageError(f"{name}: bench measure exited {rc}")
        log["invocations"].append({"stage": name, "runs": len(todo), "wall": c.wall, "cpu": c.cpu})
        _dump(stage, log)
        self.ran[name] = "ran"
        return log

    # ---- everything
    def run(self) -> int:
        import torch

        torch.set_num_threads(self.s.threads)
        self.out.mkdir(parents=True, exist_ok=True)
        self.say(f"bench hsnas {self.s.suite} --task {self.task.name} -> {self.out}")
        cons = self.constraint()
        teacher = self.teacher()
        rt = self.records_task()
        ck = self.checkpoint()
        from .data import sha256_of
        ck_sha = sha256_of(ck)
        runs = {}
        need_hybrid = "hybrid" in self.s.modes
        dist = None
        if need_hybrid:
            dist = self.distill(teacher, rt)
        for seed in self.s.seeds:
            for mode in [m for m in MODES if m in self.s.modes]:
                runs[(mode, seed)] = self.search(mode, seed, cons["gflops_limit"], ck, ck_sha, teacher, rt,
                                                 runs.get(("hybrid", seed)))
        diag = self.diagnostics(teacher, rt, ck, ck_sha, dist)
        found = list({json.dumps(r["arch"], sort_keys=True): r["arch"] for r in runs.values()}.values())
        if self.s.train:
            self.train(found, [0], "train found (seed 0)", "archs.jsonl")
            best = self._best_measured(found)
            if best and self.s.best_seeds:
                self.train([best], self.s.best_seeds, "train best (more seeds)", "archs-best.jsonl")
        from .hsnas_report import write_outputs
        write_outputs(self, cons, teacher, dist, runs, ck, ck_sha, diag)
        self.say(f"wrote {self.out}/ (summary.json, report.md, pareto.png); stages this run: "
                 + ", ".join(f"{k}={v}" for k, v in self.ran.items()))
        return 0

    def records(self) -> dict:
        """(arch_key, seed) -> record of this recipe in records.jsonl."""
        from .measure import read_records
        sha = self.recipe_sha()
        return {(r["arch_key"], r["seed"]): r for r in read_records(self.out / "records.jsonl")
                if r.get("recipe_sha256") == sha}

    def _best_measured(self, found: list[dict]) -> dict | None:
        recs = self.records()
        scored = [(recs[(Arch.from_dict(a).key(), 0)].get("valid_chrf"), i, a) for i, a in enumerate(found)
                  if (Arch.from_dict(a).key(), 0) in recs and recs[(Arch.from_dict(a).key(), 0)]["status"] == "ok"]
        if not scored:
            return None
        return max(scored, key=lambda t: (t[0], -t[1]))[2]


def main(args) -> int:
    s = settings_from_args(args)
    try:
        return Pipeline(s).run()
    except SearchError as exc:
        raise UsageError(str(exc)) from None
