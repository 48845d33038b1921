"""Metrics against hand-computed values."""
import math

import numpy as np
import pytest
from scipy import stats

from bench import metrics as M


def test_mae_rmse_mape_within10_by_hand():
    y = np.array([10.0, 20.0, 30.0, 40.0])
    p = np.array([11.0, 18.0, 30.0, 48.0])
    assert M.mae(y, p) == pytest.approx((1 + 2 + 0 + 8) / 4)
    assert M.rmse(y, p) == pytest.approx(math.sqrt((1 + 4 + 0 + 64) / 4))
    assert M.mape(y, p) == pytest.approx(100 * (0.1 + 0.1 + 0 + 0.2) / 4)
    # |err| <= 10% of y: 11 vs 10 (yes, exactly 10%), 18 vs 20 (yes), 30 (yes), 48 vs 40 (no)
    assert M.within10(y, p) == pytest.approx(75.0)


def test_kendall_by_hand_with_ties():
    # pairs: y strictly increasing; p = [1, 2, 2, 1]
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 2.0, 2.0, 1.0])
    # concordant: (0,1),(0,2) = 2 ; discordant: (1,3),(2,3) = 2 ; ties in p: (0,3),(1,2)
    # tau-b = (C - D) / sqrt((n0 - 0) * (n0 - 2)) = 0
    assert M.kendall(y, p) == pytest.approx(0.0)
    p2 = np.array([1.0, 3.0, 2.0, 4.0])  # one swap among 6 pairs: (5 - 1) / 6
    assert M.kendall(y, p2) == pytest.approx(4 / 6)


def test_spearman_pearson_by_hand():
    y = np.array([1.0, 2.0, 3.0])
    assert M.spearman(y, np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert M.pearson(y, np.array([2.0, 4.0, 6.0])) == pytest.approx(1.0)
    assert math.isnan(M.pearson(y, np.array([5.0, 5.0, 5.0])))  # constant prediction has no correlation


def test_kendall_batch_equals_scipy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, (50, 12)).astype(float)  # ties on purpose
    s = rng.integers(0, 5, (50, 12)).astype(float)
    got = M.kendall_batch(y, s)
    want = [stats.kendalltau(s[i], y[i])[0] for i in range(50)]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_score_orients_by_declared_direction_and_skips_scale_metrics():
    from types import SimpleNamespace as NS
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = -y  # a score where lower predicts higher target
    quality = NS(kind="quality", higher_is_better=True)
    o = M.orientation(NS(higher_is_better=False, on_target_scale=False), quality)
    out = M.score(y, o * p, on_scale=False, metrics=["kendall", "mae"])
    assert out == {"kendall": pytest.approx(1.0)}
    o = M.orientation(NS(higher_is_better=True, on_target_scale=False), quality)
    out = M.score(y, o * p, on_scale=False, metrics=["kendall"])
    assert out["kendall"] == pytest.approx(-1.0)  # signed, never abs()


def test_calibrated_mae_uses_train_split_linear_map():
    p_tr, y_tr = np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])
    y_te, p_te = np.array([40.0, 50.0]), np.array([4.0, 6.0])
    out = M.score(y_te, p_te, on_scale=False, metrics=["mae_cal"], p_train=p_tr, y_train=y_tr)
    assert out["mae_cal"] == pytest.approx((0 + 10) / 2)


def test_nan_predictions_are_excluded_from_metrics():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, np.nan, 3.0, 5.0])
    assert M.score(y, p, on_scale=True, metrics=["mae"])["mae"] == pytest.approx(1 / 3)


def test_aggregate_is_mean_and_population_std():
    mean, std = M.aggregate([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7)
    assert std == pytest.approx(np.sqrt(((0.2 ** 2) * 2) / 3))


def test_bootstrap_ci_brackets_the_estimate():
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(3):
        y = rng.normal(size=20)
        pairs.append((y, y + rng.normal(scale=0.5, size=20)))
    lo, hi = M.bootstrap_kendall_ci(pairs, n_boot=500, seed=0)
    est = np.mean([M.kendall(y, s) for y, s in pairs])
    assert lo < est < hi
    assert M.bootstrap_kendall_ci(pairs, n_boot=500, seed=0) == (lo, hi)  # seeded
