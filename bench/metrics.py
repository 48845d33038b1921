"""Scoring a predictor against measured targets.  Correlations are signed; NaN predictions are excluded
and reported as coverage.  Aggregation over seeds follows the paper: mean and population std (ddof=0)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool
    label: str
    needs_scale: bool  # compares values, so the prediction must be on the target's scale


def _corr(name):
    """scipy.stats is imported on first use: it alone costs ~0.5 s of a cold `bench list`."""
    def wrapped(y, p):
        if len(y) < 2 or np.ptp(p) == 0 or np.ptp(y) == 0:
            return float("nan")
        from scipy import stats
        return float(getattr(stats, name)(p, y)[0])
    return wrapped


def mae(y, p):
    return float(np.mean(np.abs(p - y)))


def rmse(y, p):
    return float(np.sqrt(np.mean((p - y) ** 2)))


def mape(y, p):
    return float(100 * np.mean(np.abs(p - y) / np.abs(y)))


def within10(y, p):
    """Share (%) of predictions within ±10% of the measured value (nn-Meter's accuracy)."""
    return float(100 * np.mean(np.abs(p - y) <= 0.1 * np.abs(y)))


kendall = _corr("kendalltau")  # tau-b: handles the ties cost proxies and LLMs produce
spearman = _corr("spearmanr")
pearson = _corr("pearsonr")

METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("kendall", kendall, True, "Kendall τ", False),
    Metric("spearman", spearman, True, "Spearman ρ", False),
    Metric("pearson", pearson, True, "Pearson r", False),
    Metric("mae", mae, False, "MAE", True),
    Metric("rmse", rmse, False, "RMSE", True),
    Metric("mae_cal", mae, False, "MAE (calibrated)", True),
    Metric("mape", mape, False, "MAPE %", True),
    Metric("within10", within10, True, "±10% %", True),
]}
QUALITY_METRICS = ["kendall", "spearman", "pearson", "mae", "rmse", "mae_cal"]
LATENCY_METRICS = ["kendall", "spearman", "pearson", "mae", "rmse", "mape", "within10", "mae_cal"]


def calibrate(p_train: np.ndarray, y_train: np.ndarray):
    """A linear map from a ranking score to the target, fitted on the train split (least squares)."""
    ok = np.isfinite(p_train) & np.isfinite(y_train)
    if ok.sum() < 2 or np.ptp(p_train[ok]) == 0:
        return None
    slope, intercept = np.polyfit(p_train[ok], y_train[ok], 1)
    return lambda p: slope * p + intercept


def score(y: np.ndarray, p: np.ndarray, *, higher_is_better: bool, on_scale: bool, metrics: list[str],
          p_train: np.ndarray | None = None, y_train: np.ndarray | None = None) -> dict[str, float]:
    """Per-seed metrics.  Rank metrics use the score oriented by the predictor's declared direction."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    ok = np.isfinite(p) & np.isfinite(y)
    y, p = y[ok], p[ok]
    out: dict[str, float] = {}
    for name in metrics:
        m = METRICS[name]
        if len(y) == 0:
            out[name] = float("nan")
        elif name == "mae_cal":
            if on_scale or p_train is None:
                continue
            f = calibrate(np.asarray(p_train, float), np.asarray(y_train, float))
            out[name] = mae(y, f(p)) if f else float("nan")
        elif m.needs_scale:
            if on_scale:
                out[name] = m.fn(y, p)
        else:
            out[name] = m.fn(y, p if higher_is_better else -p)
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
    counts = np.zeros((len(idx), n))
    np.add.at(counts, (np.arange(len(idx))[:, None], idx), 1.0)
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
