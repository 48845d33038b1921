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
    assert (tmp_path / "leaderboard.md").exists()


def test_bench_list_cold_baseline(benchmark, root):
    benchmark.group = "bench run (cold process)"
    benchmark.pedantic(_run, args=(["list"], root), rounds=5, iterations=1)
