"""Scoring a predictor against measured targets.  Correlations are signed; NaN predictions are excluded
and reported as coverage.  Aggregation over seeds follows the paper: mean and population std (ddof=0)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    """One declaration drives everything: results.json rows, leaderboard columns (in declaration order), the
    gate (`bench check`) and the learning curves.  ``fn(y, v, target_higher_is_better)`` gets the measured
    targets and the predictions oriented so that a higher ``v`` predicts a higher target value."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray, bool], float]
    higher_is_better: bool
    label: str
    needs_scale: bool = False  # compares values, so the prediction must be on the target's scale
    digits: int = 2
    gate: float | None = None  # default tolerance of `bench check`; None: gated only where the suite names it
    kinds: tuple[str, ...] = ("quality", "latency")  # target kinds it is computed for
    curve: bool = False  # shown on learning curves (distill-curve, latency curve)
    calibrated: bool = False  # rank-only predictors, mapped to the target's scale on the train split


METRICS: dict[str, Metric] = {}


def declare(metric: Metric) -> Metric:
    """Add a metric to the registry; leaderboard, gate and curves pick it up from here."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} declared twice")
    METRICS[metric.name] = metric
    return metric


def _corr(name):
    """scipy.stats is imported on first use: it alone costs ~0.5 s of a cold `bench list`."""
    def wrapped(y, p, hib=True):
        if len(y) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
            return float("nan")
        if name == "kendalltau":  # tau-b, the O(n^2) sum: same as scipy, without its per-call overhead
            return float(kendall_batch(y[None, :], p[None, :])[0])
        from scipy import stats
        return float(getattr(stats, name)(p, y)[0])
    return wrapped


def mae(y, p, hib=True):
    return float(np.mean(np.abs(p - y)))


def rmse(y, p, hib=True):
    return float(np.sqrt(np.mean((p - y) ** 2)))


def mape(y, p, hib=True):
    return float(100 * np.mean(np.abs(p - y) / np.abs(y)))


def within10(y, p, hib=True):
    """Share (%) of predictions within ±10% of the measured value (nn-Meter's accuracy)."""
    return float(100 * np.mean(np.abs(p - y) <= 0.1 * np.abs(y)))


def regret_at_1(y, v, hib=True):
    """Target of the best test architecture minus the target of the one the predictor ranks first, in the
    target's unit and direction (>= 0).  Ties for first place count as a random pick among them (expected
    regret), so a constant predictor gets the regret of a random choice, not an arbitrary one."""
    if len(y) == 0:
        return float("nan")
    g, s = (y, v) if hib else (-y, -v)
    return float(g.max() - g[s == s.max()].mean())


def p_top(s: np.ndarray, k: int) -> np.ndarray:
    """Probability that each item is among the k highest of ``s`` when ties are broken at random."""
    greater = (s[None, :] > s[:, None]).sum(axis=1)
    equal = (s[None, :] == s[:, None]).sum(axis=1)
    return np.clip(k - greater, 0, equal) / equal


def precision_at(k: int):
    def fn(y, v, hib=True):
        """Expected overlap of the predictor's top k with the true top k, over k (random tie-breaking)."""
        if len(y) <= k:
            return float("nan")  # every architecture is in both top sets: says nothing
        g, s = (y, v) if hib else (-y, -v)
        return float((p_top(s, k) * p_top(g, k)).sum() / k)
    return fn


kendall = _corr("kendalltau")  # tau-b: handles the ties cost proxies and LLMs produce
spearman = _corr("spearmanr")
pearson = _corr("pearsonr")

for _m in [
    Metric("kendall", kendall, True, "Kendall τ", gate=0.02, curve=True),
    Metric("spearman", spearman, True, "Spearman ρ"),
    Metric("pearson", pearson, True, "Pearson r"),
    Metric("regret@1", regret_at_1, False, "regret@1", curve=True),
    Metric("precision@5", precision_at(5), True, "precision@5", gate=0.1, curve=True),
    Metric("mae", mae, False, "MAE", needs_scale=True, curve=True),
    Metric("mae_cal", mae, False, "MAE (calibrated)", needs_scale=True, calibrated=True),
    Metric("rmse", rmse, False, "RMSE", needs_scale=True),
    Metric("mape", mape, False, "MAPE %", needs_scale=True, kinds=("latency",), curve=True),
    Metric("within10", within10, True, "±10% %", needs_scale=True, digits=1, kinds=("latency",), curve=True),
]:
    declare(_m)


def for_target(kind: str, *, curve: bool = False) -> list[str]:
    """The metrics computed for a target kind, in declaration (= column) order."""
    return [m.name for m in METRICS.values() if kind in m.kinds and (m.curve or not curve)]


def gate_tolerances(suite_gate: dict[str, float] | None = None) -> dict[str, float]:
    """The declared default tolerances, overridden by the suite's `gate`."""
    tol = {m.name: m.gate for m in METRICS.values() if m.gate is not None}
    tol.update(suite_gate or {})
    return tol


def orientation(predictor, target) -> float:
    """+1/-1 so that ``orientation * score`` predicts a higher target *value*.  A predictor declares
    ``higher_is_better`` as "a higher score predicts a higher target"; rank-only scores on quality targets
    (params, proxies, features: "bigger/higher is better") mean a *better* architecture, so on a quality target
    where lower is better (a dev loss) they are flipped.  Latency targets are costs: a bigger model scores higher."""
    if predictor.on_target_scale:
        return 1.0  # a prediction of the value itself
    o = 1.0 if predictor.higher_is_better else -1.0
    if target.kind == "quality" and not target.higher_is_better:
        o = -o
    return o


def calibrate(p_train: np.ndarray, y_train: np.ndarray):
    """A linear map from a ranking score to the target, fitted on the train split (least squares)."""
    ok = np.isfinite(p_train) & np.isfinite(y_train)
    if ok.sum() < 2 or np.ptp(p_train[ok]) == 0:
        return None
    slope, intercept = np.polyfit(p_train[ok], y_train[ok], 1)
    return lambda p: slope * p + intercept


def score(y: np.ndarray, v: np.ndarray, *, on_scale: bool, metrics: list[str], target_higher_is_better: bool = True,
          p_train: np.ndarray | None = None, y_train: np.ndarray | None = None) -> dict[str, float]:
    """Per-seed metrics of predictions ``v`` oriented by :func:`orientation` (a higher v, a higher target)."""
    y, v = np.asarray(y, float), np.asarray(v, float)
    ok = np.isfinite(v) & np.isfinite(y)
    y, v = y[ok], v[ok]
    out: dict[str, float] = {}
    for name in metrics:
        m = METRICS[name]
        if m.calibrated:
            if on_scale or p_train is None:
                continue
            f = calibrate(np.asarray(p_train, float), np.asarray(y_train, float))
            out[name] = m.fn(y, f(v), target_higher_is_better) if f and len(y) else float("nan")
        elif m.needs_scale and not on_scale:
            continue
        else:
            out[name] = m.fn(y, v, target_higher_is_better) if len(y) else float("nan")
    return out


def kendall_batch(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair (B, n): sum(sign dy * sign ds) / sqrt(sum|sign dy| * sum|sign ds|)."""
    sy = np.sign(y[:, :, None] - y[:, None, :])
    ss = np.sign(s[:, :, None] - s[:, None, :])
    num = (sy * ss).sum(axis=(1, 2))
    den = np.sqrt(np.abs(sy).sum(axis=(1, 2)) * np.abs(ss).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _kendall_resampled(y: np.ndarray, s: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``kendall_batch(y[idx], s[idx])`` without the (B, n, n) tensors: a resample's pair sums are
    quadratic forms ``c' A c`` of its counts c over the original pairs (same values, O(B n^2) matmuls)."""
    n = len(y)
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])
    counts = np.bincount(rows * n + idx.ravel(), minlength=len(idx) * n).reshape(len(idx), n).astype(float)
    sy, ss = np.sign(y[:, None] - y[None, :]), np.sign(s[:, None] - s[None, :])
    num, dy, ds = (((counts @ a) * counts).sum(axis=1) for a in (sy * ss, np.abs(sy), np.abs(ss)))
    den = np.sqrt(dy * ds)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def bootstrap_kendall_ci(pairs: list[tuple[np.ndarray, np.ndarray]], n_boot: int = 1000, seed: int = 0,
                         alpha: float = 0.05) -> tuple[float, float]:
    """95% CI of the seed-averaged Kendall τ: resample the test architectures of every seed independently."""
    rng = np.random.default_rng(seed)
    per_seed = []
    for y, s in pairs:
        y, s = np.asarray(y, float), np.asarray(s, float)
        ok = np.isfinite(y) & np.isfinite(s)
        y, s = y[ok], s[ok]
        if len(y) < 2:
            continue
        idx = rng.integers(0, len(y), (n_boot, len(y)))
        per_seed.append(_kendall_resampled(y, s, idx))
    if not per_seed:
        return float("nan"), float("nan")
    with np.errstate(invalid="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            reps = np.nanmean(np.vstack(per_seed), axis=0)
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return float("nan"), float("nan")
    return float(np.quantile(reps, alpha / 2)), float(np.quantile(reps, 1 - alpha / 2))


def aggregate(values: list[float]) -> tuple[float, float]:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v))


def n_defined(values: list[float]) -> int:
    """How many seeds have a defined (finite) value: an undefined seed is reported, not silently dropped."""
    return sum(1 for x in values if x is not None and np.isfinite(x))
