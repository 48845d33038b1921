"""Benchmark: a cold `python -m bench run suites/wmt14.yaml` over the offline predictors.

Run with `python -m pytest tests/test_bench_run.py --benchmark-enable`; the side-by-side baseline is the bare
interpreter start + harness import (`python -m bench list`), so the ratio shows what scoring itself costs.
"""
import os
import subprocess
import sys


def _run(args, cwd):
    subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=dict(os.environ), check=True,
                   capture_output=True)


def test_bench_run_wmt14_cold(benchmark, root, tmp_path):
    benchmark.group = "bench run (cold process)"
    benchmark.pedantic(_run, args=(["run", "suites/wmt14.yaml", "--out", str(tmp_path), "--no-progress"], root),
                       rounds=5, iterations=1)
    _check_results(root, tmp_path / "results.json")


def _check_results(root, path):
    """Every run's gold values are the suite's records and its metrics recompute from its raw predictions."""
    import json
    import math

    import numpy as np
    from scipy.stats import kendalltau

    from bench.space import Arch
    from bench.suite import load_suite

    res = json.loads(path.read_text())
    suite = load_suite(root / "suites" / "wmt14.yaml")
    ran = {r["predictor"] for r in res["runs"]} | {s["predictor"] for s in res["skipped"]}
    assert set(suite.predictors) <= ran, set(suite.predictors) - ran  # each one scored or skipped with a reason
    assert {r["task"] for r in res["runs"]} == {t.name for t in suite.tasks}
    for run in res["runs"]:
        task = suite.task(run["task"])
        gold = [task.lookup(Arch.from_dict(json.loads(k))).targets[run["target"]] for k in run["test_ids"]]
        assert run["gold"] == gold
        y, p = np.array(gold), np.array(run["predictions"], dtype=float)
        ok = np.isfinite(p)
        assert run["coverage"] == ok.mean()
        if run["metrics"].get("mae") is not None and math.isfinite(run["metrics"]["mae"]):
            assert run["metrics"]["mae"] == np.abs(y[ok] - p[ok]).mean()
        if np.ptp(p[ok]) > 0:
            assert abs(run["metrics"]["kendall"] - kendalltau(y[ok], p[ok]).statistic) < 1e-12, run["predictor"]


def test_bench_list_cold_baseline(benchmark, root):
    benchmark.group = "bench run (cold process)"
    benchmark.pedantic(_run, args=(["list"], root), rounds=5, iterations=1)


IMPORTS = "import numpy, scipy.stats, sklearn, yaml, tabulate"


def test_bench_run_vs_its_import_time(benchmark, root, tmp_path):
    """The default `bench run suites/wmt14.yaml` against a cold import of what it needs (numpy, scipy.stats,
    sklearn, yaml, tabulate), measured alternately in one test so both see the same machine load.  The goal
    (issue 11) is a ratio under 1.5; it is reported in the benchmark's extra_info, not asserted."""
    import statistics
    import time

    def timed(cmd):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=root, env=dict(os.environ), check=True, capture_output=True)
        return time.perf_counter() - t0

    run = [sys.executable, "-m", "bench", "run", "suites/wmt14.yaml", "--out", str(tmp_path), "--no-progress"]
    imp = [sys.executable, "-c", IMPORTS]
    runs, imports = [], []

    def one_round():
        imports.append(timed(imp))
        runs.append(timed(run))

    benchmark.group = "bench run vs its import time"
    benchmark.pedantic(one_round, rounds=5, iterations=1)
    ratio = statistics.median(runs) / statistics.median(imports)
    benchmark.extra_info.update(run_s=statistics.median(runs), import_s=statistics.median(imports), ratio=ratio)
    print(f"\nbench run {statistics.median(runs):.2f} s, imports {statistics.median(imports):.2f} s, ratio {ratio:.2f}")
    assert (tmp_path / "leaderboard.md").exists()
