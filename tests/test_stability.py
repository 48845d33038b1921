"""Rank stability of measured records: patience replay and the seed bound on Kendall tau."""
import math

import numpy as np
from scipy.stats import kendalltau

from bench.mt.stability import replay_patience, seed_tau_bound, task_table, true_spread


def rec(losses, min_epochs=0, patience=3):
    return {"status": "ok", "recipe": {"min_epochs": min_epochs, "patience": patience},
            "evals": [{"epoch": i + 1, "dev_loss": x} for i, x in enumerate(losses)],
            "best_dev_loss": min(losses)}


def test_replay_stops_where_the_trainer_would():
    r = rec([5.0, 4.8, 4.9, 4.7, 4.75, 4.76, 4.77, 4.6])
    assert replay_patience(r, 1) == (4.8, 3)
    assert replay_patience(r, 2) == (4.7, 6)
    assert replay_patience(r, 3) == (4.7, 7)
    assert replay_patience(r, 5) == (4.6, 8)  # never triggered: the run's end


def test_replay_honours_min_epochs_and_the_improvement_threshold():
    r = rec([5.0, 4.8, 4.9, 4.95, 4.6, 4.65], min_epochs=5)
    assert replay_patience(r, 1) == (4.6, 6)  # no stop before epoch 5
    assert replay_patience(rec([5.0, 4.99995, 4.9]), 1) == (5.0, 2)  # < 1e-4 better is no improvement


def test_seed_bound_matches_simulation():
    rng = np.random.default_rng(0)
    true = rng.normal(0, 2.0, 4000)
    a, b = true + rng.normal(0, 1.0, 4000), true + rng.normal(0, 1.0, 4000)
    assert abs(kendalltau(a, b).statistic - seed_tau_bound(2.0, 1.0)) < 0.03
    assert seed_tau_bound(1.0, 0.0) == 1.0
    assert seed_tau_bound(1.0, 1.0) == 2 / math.pi * math.asin(0.5)


def test_the_bound_takes_the_noise_out_of_the_measured_spread():
    """What the table gets is the std of one seed's values, which holds the seed noise: the bound must match a
    simulation from that measured std, not treat it as the true spread."""
    rng = np.random.default_rng(1)
    true = rng.normal(0, 1.5, 4000)
    a, b = true + rng.normal(0, 1.0, 4000), true + rng.normal(0, 1.0, 4000)
    measured = float(np.std(a, ddof=1))
    assert abs(true_spread(measured, 1.0) - 1.5) < 0.05 and true_spread(0.5, 1.0) == 0.0
    assert abs(kendalltau(a, b).statistic - seed_tau_bound(true_spread(measured, 1.0), 1.0)) < 0.03
    rows = [rec([5.0, 4.8 - i / 100, 4.9, 4.95, 4.7 - i / 50]) for i in range(5)]
    text = "\n".join(task_table("t", rows, {"std": measured, "seed_std": 1.0}))
    printed = float(text.split("tau ~")[1][:4])
    assert abs(printed - kendalltau(a, b).statistic) < 0.03
    # a mean of two seeds per architecture: its noise is 1/sqrt(2), and two such means agree more
    m1, m2 = (true + rng.normal(0, 1.0, (2, 4000)).mean(0) for _ in range(2))
    avg = {"std": float(np.std(m1, ddof=1)), "seed_std": 1 / math.sqrt(2), "repeats": [2]}
    text = "\n".join(task_table("t", rows, {"std": measured, "seed_std": 1.0}, avg))
    assert "mean of 2 seeds" in text and abs(float(text.split("tau ~")[2][:4]) - kendalltau(m1, m2).statistic) < 0.03


def test_task_table_reads_records_and_states_missing_noise():
    rows = [rec([5.0, 4.8 - i / 100, 4.9, 4.95, 4.7 - i / 50]) for i in range(5)]
    text = "\n".join(task_table("t", rows, {"std": 0.1}))
    assert "| 1 | " in text and "| 2 | " in text and "no seed-noise runs yet" in text
    text = "\n".join(task_table("t", rows, {"std": 0.2, "seed_std": 0.1}))
    assert f"tau ~{seed_tau_bound(math.sqrt(0.2 ** 2 - 0.1 ** 2), 0.1):.2f}" in text
    assert "fewer than 3" in "\n".join(task_table("t", rows[:2], {}))


def test_bad_input_is_one_error_line(tmp_path, capsys):
    from bench.mt.stability import main

    assert main([str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "suite file not found" in err[0]
