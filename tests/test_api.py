"""The notebook API (bench.load_results, bench.run) and `bench run --format csv`: one tidy frame."""
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bench
from bench import cli

TIMINGS = {"fit_s", "query_ms_per_arch"}  # differ between two runs of the same thing


def test_import_bench_loads_neither_pandas_nor_torch(root):
    code = "import sys, bench; assert callable(bench.run); print(sorted({'pandas', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bench_run_stays_the_api_function_once_the_runner_is_imported():
    import bench.runner  # noqa: F401  (a submodule named bench/run.py would replace bench.run here)

    assert callable(bench.run) and bench.run.__module__ == "bench.api"


def test_load_results_is_one_row_per_task_target_predictor_metric_seed(root):
    path = root / "reports" / "wmt14" / "results.json"
    results = json.loads(path.read_text())
    df = bench.load_results(path)
    assert list(df.columns) == ["task", "target", "predictor", "metric", "seed", "value"]
    assert df["seed"].dtype == "int64" and df["value"].dtype == "float64"
    assert len(df) == sum(len(r["per_seed"]) for r in results["results"]) > 0
    assert not df.duplicated(["task", "target", "predictor", "metric", "seed"]).any()
    # the frame's seed means are the leaderboard's means
    row = next(r for r in results["results"] if r["predictor"] == "gp" and r["metric"] == "kendall")
    sel = df.query("task == @row['task'] and target == @row['target'] and predictor == 'gp' and metric == 'kendall'")
    assert sel["value"].mean() == pytest.approx(row["mean"])
    assert sorted(sel["seed"]) == sorted(int(s) for s in row["per_seed"])
    assert df.attrs["results"]["provenance"] == results["provenance"]
    assert bench.load_results(path.parent).equals(df)  # the folder works too


def test_load_results_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such results file"):
        bench.load_results(tmp_path / "nope.json")
    bad = tmp_path / "x.json"
    bad.write_text('{"suite": "x"}')
    with pytest.raises(ValueError, match=f"{bad}: not a bench results file"):
        bench.load_results(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        bench.load_results(bad)


def test_run_returns_the_frame_and_writes_only_when_asked(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suite = root / "suites" / "wmt19.yaml"
    df = bench.run(suite, predictors="mean,flops", targets=["valid_bleu", "latency_ms"])
    assert list(tmp_path.iterdir()) == []  # nothing written, reports/ included
    assert set(df["predictor"]) == {"mean", "flops"} and set(df["target"]) == {"valid_bleu", "latency_ms"}
    assert {"kendall", "mae", "coverage"} <= set(df["metric"])
    kendall = df.query("metric == 'kendall' and target == 'valid_bleu'").groupby("predictor")["value"].mean()
    assert kendall["flops"] > 0.3  # FLOPs rank the WMT'19 architectures (tau ~0.54 in the leaderboard)
    out = tmp_path / "out"
    again = bench.run(str(suite), predictors=["mean", "flops"], targets="valid_bleu,latency_ms", out=out)
    assert (out / "leaderboard.md").exists()
    written = bench.load_results(out)
    _same_scores(written, again)
    _same_scores(df, again)
    with pytest.raises(TypeError, match="allowed"):
        bench.run(suite, predictors="mean", budget=3)


def test_format_csv_is_the_tidy_frame(root, capsys):
    suite = str(root / "suites" / "wmt19.yaml")
    assert cli.main(["run", suite, "--predictors", "mean,flops", "--format", "csv", "--no-write",
                     "--no-progress"]) == 0
    csv = pd.read_csv(io.StringIO(capsys.readouterr().out))
    _same_scores(csv, bench.run(suite, predictors="mean,flops"))


def _same_scores(a: pd.DataFrame, b: pd.DataFrame):
    keys = ["task", "target", "predictor", "metric", "seed"]
    a, b = (x[~x["metric"].isin(TIMINGS)].sort_values(keys).reset_index(drop=True) for x in (a, b))
    assert a[keys].equals(b[keys])
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-12, equal_nan=True)
