"""HAT's evolutionary search and the hybrid HS-NAS switch, scored by any registered predictor.

The algorithm is HAT's ``fairseq/evolution.py`` (paper-system.md §4.2): a population of 125 genes,
rejection-sampled under the constraint; each iteration scores the population, keeps the 25 best as
parents, and adds 50 mutants (each gene position redrawn with probability 0.3) and 50 crossovers
(each position from one of two distinct parents with probability 0.5), both rejection-sampled.
The hybrid (HS-NAS, §4.4) scores iterations ``< switch_at`` with the first scorer and the rest with the
second, so at the switch the whole population is scored by the second scorer.

Fixes against the original (listed in the README): one seeded ``random.Random`` drives every draw;
the reported best is the true best (HAT/llmas printed the 25th best when ranking by BLEU); the
non-hybrid path is the same code with one stage (llmas crashed on an undefined ``args``); a FLOPs
constraint compares GFLOPs with GFLOPs; an unsatisfiable constraint is an error, not an endless loop.
Scores are memoised per architecture and scorer: ``queries`` counts distinct evaluations, ``hat_evals``
counts what HAT would have paid (the whole population, every iteration).
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..space import ENCODER_LIST_FIELDS, FIELD_ORDER, SCALAR_FIELDS, Arch, SearchSpace


class SearchError(ValueError):
    """A search that cannot run as asked (bad constraint, scorer, switch...)."""


@dataclass
class EvoParams:
    iterations: int = 30
    population: int = 125
    parents: int = 25
    mutations: int = 50
    crossovers: int = 50
    mutation_prob: float = 0.3
    max_rejections: int = 200_000  # consecutive rejected candidates before the constraint is declared unsatisfiable

    def check(self) -> None:
        if self.population != self.parents + self.mutations + self.crossovers:
            raise SearchError(f"population ({self.population}) must equal parents + mutations + crossovers "
                              f"({self.parents} + {self.mutations} + {self.crossovers}), as HAT asserts")
        if self.parents < 2 or self.iterations < 1:
            raise SearchError(f"need parents >= 2 and iterations >= 1, got {self.parents} and {self.iterations}")
        if not 0 <= self.mutation_prob <= 1:
            raise SearchError(f"mutation_prob must lie in [0, 1], got {self.mutation_prob}")


class Genes:
    """HAT genes of a space <-> architectures (memoised: children repeat)."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.choices = [tuple(c) for c in space.gene_choices()]
        self._arch: dict[tuple, Arch] = {}
        pos, self.slices = 0, {}
        for f in FIELD_ORDER:
            n = 1 if f in SCALAR_FIELDS else (
                space.max_encoder_layers if f in ENCODER_LIST_FIELDS else space.max_decoder_layers)
            self.slices[f] = (pos, pos + n)
            pos += n
        if pos != len(self.choices):
            raise AssertionError("gene layout mismatch")

    def arch(self, gene: tuple) -> Arch:
        a = self._arch.get(gene)
        if a is None:
            s = self.slices
            ne, nd = gene[s["encoder_layer_num"][0]], gene[s["decoder_layer_num"][0]]
            kw = {}
            for f, (i, _) in s.items():
                if f in SCALAR_FIELDS:
                    kw[f] = gene[i]
                else:
                    kw[f] = tuple(gene[i:i + (ne if f in ENCODER_LIST_FIELDS else nd)])
            a = self._arch[gene] = Arch(**kw)
        return a

    def random(self, rng: random.Random) -> tuple:
        return tuple(rng.choice(c) for c in self.choices)

    def mutate(self, gene: tuple, prob: float, rng: random.Random) -> tuple:
        return tuple(rng.choice(c) if rng.random() < prob else g for g, c in zip(gene, self.choices))

    @staticmethod
    def crossover(a: tuple, b: tuple, rng: random.Random) -> tuple:
        return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))


class Scorer:
    """A quality predictor used as a search score, memoised per architecture, with its bill."""

    def __init__(self, label: str, predictor, spec: str = ""):
        self.label, self.predictor, self.spec = label, predictor, spec or label
        self.orient = 1.0 if getattr(predictor, "higher_is_better", True) else -1.0
        self.memo: dict[Arch, float] = {}  # Arch is a frozen dataclass: hashing it beats building key() strings
        self.queries = 0  # distinct architectures evaluated
        self.hat_evals = 0  # population members scored, as HAT re-scores every one every iteration
        self.predict_calls = 0
        self.report_queries = 0  # evaluations made only for the report (best arch under another stage)
        self.failed: set[Arch] = set()
        self.errors: list[str] = []
        self.score_s = 0.0

    def _evaluate(self, archs: list[Arch]) -> None:
        t0 = time.perf_counter()
        self.predict_calls += 1
        try:
            p = np.asarray(self.predictor.predict(archs), dtype=float).reshape(-1)
            if len(p) != len(archs):
                raise SearchError(f"scorer {self.label} returned {len(p)} scores for {len(archs)} architectures")
        except Exception as exc:  # noqa: BLE001 - a failing scorer ranks its archs last; the search goes on
            self.errors.append(f"{type(exc).__name__}: {exc}")
            p = np.full(len(archs), np.nan)
        self.score_s += time.perf_counter() - t0
        for a, v in zip(archs, p):
            self.memo[a] = float(v)
            if not np.isfinite(v):
                self.failed.add(a)

    def score(self, archs: Sequence[Arch]) -> np.ndarray:
        self.hat_evals += len(archs)
        new, seen = [], set()
        for a in archs:
            if a not in self.memo and a not in seen:
                seen.add(a)
                new.append(a)
        if new:
            self.queries += len(new)
            self._evaluate(new)
        return np.array([self.memo[a] for a in archs], dtype=float)

    def peek(self, arch: Arch) -> float:
        """A score for reporting only (not counted as a search query)."""
        if arch not in self.memo:
            self.report_queries += 1
            self._evaluate([arch])
        return self.memo[arch]

    def ledger(self) -> dict:
        return {"scorer": self.spec, "queries": self.queries, "hat_evals": self.hat_evals,
                "predict_calls": self.predict_calls, "report_queries": self.report_queries,
                "failed_archs": len(self.failed), "errors": self.errors[:5]}


class Constraint:
    """Predicted latency <= ``latency_ms`` and/or GFLOPs <= ``gflops``, memoised per architecture."""

    def __init__(self, latency: Callable[[list[Arch]], np.ndarray] | None = None, latency_ms: float | None = None,
                 gflops: float | None = None, flops_fn: Callable[[Arch], float] | None = None):
        if latency_ms is None and gflops is None:
            raise SearchError("no constraint: give --latency-ms and/or --flops-constraint "
                              "(HAT's default of -1 rejects every candidate and loops forever)")
        if latency_ms is not None and latency is None:
            raise SearchError("a latency constraint needs a latency predictor")
        if gflops is not None and flops_fn is None:
            raise SearchError("a FLOPs constraint needs the task's vocabulary size to compute FLOPs")
        self.latency_fn, self.latency_ms, self.gflops, self.flops_fn = latency, latency_ms, gflops, flops_fn
        self._lat: dict[Arch, float] = {}
        self.lat_s = 0.0
        self.min_seen = float("inf")

    def latencies(self, archs: Sequence[Arch]) -> np.ndarray:
        if self.latency_fn is None:
            return np.full(len(archs), np.nan)
        new = list(dict.fromkeys(a for a in archs if a not in self._lat))
        if new:
            t0 = time.perf_counter()
            vals = np.asarray(self.latency_fn(new), dtype=float)
            self.lat_s += time.perf_counter() - t0
            for a, v in zip(new, vals):
                self._lat[a] = float(v)
        return np.array([self._lat[a] for a in archs])

    def satisfied(self, archs: Sequence[Arch]) -> list[bool]:
        ok = np.ones(len(archs), dtype=bool)
        if self.latency_ms is not None:
            lat = self.latencies(archs)
            self.min_seen = min(self.min_seen, float(np.nanmin(lat)) if len(lat) else self.min_seen)
            ok &= np.isfinite(lat) & (lat <= self.latency_ms)
        if self.gflops is not None:  # the llmas bug compared raw FLOPs with a giga value; GFLOPs here
            ok &= np.array([self.flops_fn(a) / 1e9 <= self.gflops for a in archs], dtype=bool)
        return ok.tolist()

    def describe(self) -> str:
        parts = []
        if self.latency_ms is not None:
            parts.append(f"predicted latency <= {self.latency_ms:g} ms")
        if self.gflops is not None:
            parts.append(f"GFLOPs <= {self.gflops:g}")
        return " and ".join(parts)


@dataclass
class EvoResult:
    population: list[tuple]  # the last scored population, in rank order (parents first)
    scores: list[float]  # by the last stage's scorer, same order
    best: tuple
    trajectory: list[dict] = field(default_factory=list)
    iteration_s: list[float] = field(default_factory=list)
    sample_stats: dict = field(default_factory=dict)


def rank(scores: np.ndarray, orient: float) -> list[int]:
    """Best first; failed (nan) scores last; ties keep population order (stable, so reproducible)."""
    return sorted(range(len(scores)), key=lambda i: (0, -orient * scores[i], i) if np.isfinite(scores[i])
                  else (1, 0.0, i))


def evolve(space: SearchSpace, stages: list[tuple[int, Scorer]], constraint: Constraint, params: EvoParams,
           seed: int, progress: bool = False) -> EvoResult:
    """Run HAT's evolutionary search; ``stages`` = [(first iteration, scorer), ...] starting at 0."""
    params.check()
    stages = sorted(stages, key=lambda s: s[0])
    if not stages or stages[0][0] != 0:
        raise SearchError("the first scoring stage must start at iteration 0")
    rng = random.Random(seed)
    genes = Genes(space)
    stats = {"candidates": 0, "rejected": 0}

    def fill(need: int, make: Callable[[], tuple]) -> list[tuple]:
        """Rejection sampling; candidates are checked in chunks (batched latency) and accepted in order."""
        out, streak = [], 0
        while len(out) < need:
            cands = [make() for _ in range(2 * (need - len(out)))]
            ok = constraint.satisfied([genes.arch(g) for g in cands])
            for g, good in zip(cands, ok):
                stats["candidates"] += 1
                if good:
                    out.append(g)
                    streak = 0
                    if len(out) == need:
                        break
                else:
                    stats["rejected"] += 1
                    streak += 1
            if streak > params.max_rejections:
                raise SearchError(f"constraint unsatisfiable: {constraint.describe()}; {streak} candidates in a row "
                                  f"rejected (lowest predicted latency seen: {constraint.min_seen:.1f} ms)")
        return out

    bar = None
    if progress:
        import sys

        from tqdm import tqdm
        bar = tqdm(total=params.iterations, desc="search", unit="it", file=sys.stderr, leave=False)
    popu = fill(params.population, lambda: genes.random(rng))
    trajectory, iter_s = [], []
    for it in range(params.iterations):
        t0 = time.perf_counter()
        scorer = [s for start, s in stages if start <= it][-1]
        before = scorer.queries
        archs = [genes.arch(g) for g in popu]
        scores = scorer.score(archs)
        order = rank(scores, scorer.orient)
        finite = scores[np.isfinite(scores)]
        parents = [popu[i] for i in order[:params.parents]]
        trajectory.append({
            "iteration": it, "scorer": scorer.label,
            "switch": it > 0 and scorer is not [s for start, s in stages if start <= it - 1][-1],
            "best": float(scores[order[0]]) if len(finite) else None,
            "mean": float(finite.mean()) if len(finite) else None,
            "parents_mean": float(np.nanmean(scores[order[:params.parents]])) if len(finite) else None,
            "scored": len(popu), "new_queries": scorer.queries - before,
            "distinct_archs": len(set(archs)), "failed": int((~np.isfinite(scores)).sum()),
        })
        if it == params.iterations - 1:  # HAT makes children here too but never scores them
            iter_s.append(time.perf_counter() - t0)
            if bar:
                bar.update(1)
            break
        # fill() calls the lambdas at once, in this iteration: binding `parents` late is what we want
        mutants = fill(params.mutations,
                       lambda: genes.mutate(rng.choice(parents), params.mutation_prob, rng))  # noqa: B023
        crosses = fill(params.crossovers, lambda: Genes.crossover(*rng.sample(parents, 2), rng))  # noqa: B023
        popu = parents + mutants + crosses
        iter_s.append(time.perf_counter() - t0)
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    ranked = [popu[i] for i in order]
    return EvoResult(population=ranked, scores=[float(scores[i]) for i in order], best=ranked[0],
                     trajectory=trajectory, iteration_s=iter_s, sample_stats=stats)
