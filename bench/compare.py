"""Is predictor A better than B?  Paired bootstrap against each table's best row, Holm across the table.

For one (task, target) table and one metric (Kendall τ, MAE), every ranked predictor is compared with the
table's best.  Within each split seed the test architectures are resampled with replacement (``n_boot``
resamples, the *same* index rows for both predictors, so the comparison is paired); the metric difference
best − other is computed on each resample and averaged over the split seeds, which gives the bootstrap
distribution of the seed-averaged Δ.  The two-sided p-value is ``2 · min(P*(Δ ≤ 0), P*(Δ ≥ 0))`` with the
(+1)/(B+1) correction, so it is never 0.  The p-values of one table are Holm-corrected; a row whose corrected
p is ≥ α is *statistically tied* with the best.  Everything is vectorised: (B, n) index arrays, no Python loop
over resamples.
"""
from __future__ import annotations

import warnings

import numpy as np

from .metrics import METRICS, _kendall_resampled

ALPHA = 0.05
N_BOOT = 1000
TEST = ("paired bootstrap over the test architectures of each split (same resamples for both predictors), "
        "combined over split seeds; two-sided, Holm-corrected across the table")


def resampled(metric: str, y: np.ndarray, v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The metric on each resample ``idx`` (B, n) of one split: shape (B,)."""
    if metric == "kendall":
        return _kendall_resampled(y, v, idx)
    if metric == "mae":
        return np.abs(v[idx] - y[idx]).mean(axis=1)
    raise ValueError(f"no paired bootstrap for metric {metric!r}; allowed: ['kendall', 'mae']")


def paired_bootstrap(splits: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], metric: str) -> dict:
    """``splits``: per split seed (y, v_best, v_other, idx) with idx (B, n) resample rows over that split's
    architectures.  Returns the observed seed-averaged Δ = best − other, and the two-sided p-value."""
    observed, reps = [], []
    fn = METRICS[metric].fn
    for y, a, b, idx in splits:
        full_a, full_b = fn(y, a, True), fn(y, b, True)
        observed.append(full_a - full_b)
        reps.append(resampled(metric, y, a, idx) - resampled(metric, y, b, idx))
    return _p_value(observed, reps)


def _p_value(observed: list[float], reps: list[np.ndarray]) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        delta = float(np.nanmean(observed)) if observed else float("nan")
        d = np.nanmean(np.vstack(reps), axis=0) if reps else np.array([])
    d = d[np.isfinite(d)]
    if not np.isfinite(delta) or len(d) == 0:
        return {"delta": delta, "p": float("nan"), "n_boot": len(d)}
    lo = (np.sum(d <= 0) + 1) / (len(d) + 1)
    hi = (np.sum(d >= 0) + 1) / (len(d) + 1)
    return {"delta": delta, "p": float(min(1.0, 2 * min(lo, hi))), "n_boot": len(d)}


def holm(pvals: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(pvals, float)
    ok = np.flatnonzero(np.isfinite(p))
    out = np.full(len(p), np.nan)
    m = len(ok)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _values(run: dict) -> np.ndarray:
    return run["orient"] * np.array([np.nan if v is None else v for v in run["predictions"]], float)


def _indices(seed: int, split: int, n: int, n_boot: int) -> np.ndarray:
    """Resample rows that depend on the split (and its size) only: the same rows for every pair in a table."""
    return np.random.default_rng([seed, int(split), n]).integers(0, n, (n_boot, n))


def _compare_pair(runs_best: dict, runs_other: dict, metric: str, n_boot: int, seed: int, memo: dict) -> dict:
    """:func:`paired_bootstrap` of two predictors' runs, aligned per split seed on the architectures both
    predicted.  Where a predictor covered the whole split its full and resampled metric are computed once per
    (run, metric) and reused across the table's pairs (same rows: they depend on the split only)."""
    fn = METRICS[metric].fn
    observed, reps = [], []
    for s in sorted(set(runs_best) & set(runs_other)):
        pair = (runs_best[s], runs_other[s])
        y = np.asarray(pair[0]["gold"], float)
        vals = [_values(r) for r in pair]
        ok = np.isfinite(y) & np.isfinite(vals[0]) & np.isfinite(vals[1])
        n = int(ok.sum())
        if n < 2:
            continue
        idx = _indices(seed, s, n, n_boot)
        got = []
        for run, v in zip(pair, vals):
            key = (id(run), metric)
            if ok.all() and key in memo:
                got.append(memo[key])
                continue
            m = (fn(y[ok], v[ok], True), resampled(metric, y[ok], v[ok], idx))
            if ok.all():
                memo[key] = m
            got.append(m)
        observed.append(got[0][0] - got[1][0])
        reps.append(got[0][1] - got[1][1])
    return _p_value(observed, reps)


def compare_table(runs: dict[str, dict], means: dict[str, dict[str, float]], metric: str,
                  n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = 0) -> dict[str, dict]:
    """``runs``: predictor -> split seed -> run (predictions, gold, orient); ``means``: predictor -> metric ->
    seed-averaged value.  Returns predictor -> {best, delta_vs_best, p_vs_best, p_holm, tied_with_best}."""
    m = METRICS[metric]
    scored = {k: v[metric] for k, v in means.items() if metric in v and np.isfinite(v[metric])}
    if not scored:
        return {}
    best = (max if m.higher_is_better else min)(scored, key=lambda k: scored[k])
    others = [k for k in scored if k != best]
    res, memo = {}, {}
    for k in others:
        r = _compare_pair(runs[best], runs[k], metric, n_boot, seed, memo)
        # reported as other − best (≤ 0 for τ when the best is best on average)
        res[k] = {"delta_vs_best": -r["delta"] if np.isfinite(r["delta"]) else float("nan"), "p_vs_best": r["p"]}
    adj = holm([res[k]["p_vs_best"] for k in others])
    for k, a in zip(others, adj):
        res[k].update(p_holm=a, tied_with_best=bool(np.isfinite(a) and a >= alpha), best=best)
    res[best] = {"best": best, "delta_vs_best": 0.0, "p_vs_best": None, "p_holm": None, "tied_with_best": True}
    return res
