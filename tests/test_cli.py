"""The CLI end to end on both offline suites, the paper's baseline rows, and the CI gate."""
import json
import os
import subprocess
import sys

import pytest

# (task, predictor) -> (MAE mean, Kendall mean) for valid BLEU, recomputed from the release
# (paper-system.md §1.1; population std over seeds 123/456/789).
PAPER = {
    ("wmt14-en-de", "hat"): (1.14, 0.71), ("wmt14-en-de", "sandwich"): (1.05, 0.81),
    ("wmt14-en-de", "layer-mos"): (0.97, 0.56), ("wmt14-en-de", "neuron-mos"): (0.87, 0.79),
    ("wmt14-en-fr", "hat"): (1.59, 0.79), ("wmt14-en-fr", "sandwich"): (1.27, 0.78),
    ("wmt14-en-fr", "layer-mos"): (1.16, 0.79), ("wmt14-en-fr", "neuron-mos"): (1.18, 0.87),
    ("wmt19-en-de", "hat"): (0.91, 0.72), ("wmt19-en-de", "sandwich"): (0.91, 0.72),
    ("wmt19-en-de", "layer-mos"): (0.96, 0.74), ("wmt19-en-de", "neuron-mos"): (0.87, 0.67),
}
MEAN_MAE = {"wmt14-en-de": 0.57, "wmt14-en-fr": 0.59, "wmt19-en-de": 0.71}
FLOPS_TAU = {"wmt14-en-de": 0.43, "wmt14-en-fr": 0.53, "wmt19-en-de": 0.54}
OFFLINE = "mean,params,params-no-emb,flops,hat,sandwich,layer-mos,neuron-mos,linear,gp,rf,mlp"


def bench(*args, cwd, check=True):
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(f"bench {args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture(scope="module")
def runs(root, tmp_path_factory):
    out = {}
    for suite in ("wmt14", "wmt19"):
        d = tmp_path_factory.mktemp(suite)
        r = bench("run", f"suites/{suite}.yaml", "--predictors", OFFLINE, "--out", str(d), "--no-progress", cwd=root)
        out[suite] = (d, r)
    return out


@pytest.mark.parametrize("suite", ["wmt14", "wmt19"])
def test_run_writes_leaderboard_and_results(runs, suite):
    d, r = runs[suite]
    res = json.loads((d / "results.json").read_text())
    md = (d / "leaderboard.md").read_text()
    assert r.stdout.strip() == md.strip()  # stdout is the leaderboard
    assert res["suite"] == suite
    prov = res["provenance"]
    for key in ("bench_version", "git_commit", "suite_sha256", "data_sha256", "predictor_configs", "seeds",
                "timestamp", "python", "torch"):
        assert key in prov, key
    assert len(prov["data_sha256"]) == 6 * len(prov["seeds"])  # train+test per seed per task
    row = next(r for r in res["results"] if r["predictor"] == "hat" and r["metric"] == "kendall")
    assert set(row) >= {"task", "predictor", "target", "metric", "mean", "std", "per_seed", "ci95"}
    assert set(row["per_seed"]) == {"123", "456", "789"} and row["target"] == "valid_bleu"
    assert "reported, not measured" in md and "provenance" in md.lower()
    assert "Data note:" in md


def test_paper_baseline_rows_reproduced(runs):
    rows = {}
    for suite in ("wmt14", "wmt19"):
        res = json.loads((runs[suite][0] / "results.json").read_text())
        rows.update({(r["task"], r["predictor"], r["metric"]): r["mean"] for r in res["results"]})
    for (task, pred), (mae, tau) in PAPER.items():
        assert rows[(task, pred, "mae")] == pytest.approx(mae, abs=0.005), (task, pred)
        assert rows[(task, pred, "kendall")] == pytest.approx(tau, abs=0.005), (task, pred)
    for task, mae in MEAN_MAE.items():
        assert rows[(task, "mean", "mae")] == pytest.approx(mae, abs=0.005)
        # the honest floor beats every released supernet on MAE
        assert all(rows[(task, "mean", "mae")] < rows[(task, p, "mae")] for p in ("hat", "sandwich", "layer-mos",
                                                                                   "neuron-mos"))
    for task, tau in FLOPS_TAU.items():
        assert rows[(task, "flops", "kendall")] == pytest.approx(tau, abs=0.005)


def test_leaderboard_sorted_by_kendall(runs):
    md = (runs["wmt14"][0] / "leaderboard.md").read_text()
    table = md.split("## wmt14-en-de")[1].split("\n\n")[1].splitlines()[2:]
    taus = [float(line.split("|")[2].split("±")[0]) for line in table if "–" not in line.split("|")[2]]
    assert taus == sorted(taus, reverse=True)


def test_subset_formats_and_all_targets(root, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    # run where the default output folder would land in tmp_path, not over the committed reports/wmt19/
    r = bench("run", str(root / "suites/wmt19.yaml"), "--predictors", "mean,flops", "--targets", "all", "--format",
              "csv", "--no-write", "--no-progress", cwd=tmp_path)
    lines = r.stdout.splitlines()
    assert lines[0] == "task,target,predictor,metric,seed,value"
    assert {line.split(",")[1] for line in lines[1:]} == {"valid_bleu", "test_bleu", "latency_ms"}
    assert {line.split(",")[2] for line in lines[1:]} == {"mean", "flops"}
    assert not (tmp_path / "reports").exists() and not (tmp_path / "runs").exists()


def test_unknown_predictor_fails_before_running_with_a_suggestion(root):
    r = bench("run", "suites/wmt19.yaml", "--predictors", "mean,gpp", "--no-write", "--no-progress", cwd=root,
              check=False)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.strip() == ("error: --predictors: predictor spec 'gpp': unknown predictor 'gpp'; did you mean "
                                "gp? (run `python -m bench list`)")


def test_bad_suite_exits_2_with_message(root, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ntasks: [{name: a, search_space: {}, source: {kind: llmas}}]\n")
    r = bench("run", str(p), cwd=root, check=False)
    assert r.returncode == 2 and str(p) in r.stderr and "missing dimensions" in r.stderr


def test_list_shows_every_predictor(root):
    r = bench("list", "--format", "json", cwd=root)
    rows = {x["name"]: x for x in json.loads(r.stdout)}
    for name in OFFLINE.split(","):
        assert name in rows and rows[name]["runs here"] == "yes"
    assert all(x["what"] and x["needs"] for x in rows.values())


def test_gate_passes_on_itself_and_fails_on_doctored_baseline(runs, root, tmp_path):
    d = runs["wmt14"][0]
    ok = bench("check", "suites/wmt14.yaml", "--baseline", str(d / "results.json"), "--results",
               str(d / "results.json"), cwd=root, check=False)
    assert ok.returncode == 0 and "gate passed" in ok.stdout
    doctored = json.loads((d / "results.json").read_text())
    for r in doctored["results"]:
        if r["predictor"] == "gp" and r["metric"] == "kendall" and r["task"] == "wmt14-en-de":
            r["mean"] += 0.03  # the baseline claims gp ranked better than it does now (1.5 x the 0.02 tolerance)
        if r["predictor"] == "hat" and r["metric"] == "mae" and r["task"] == "wmt14-en-fr":
            r["mean"] -= 0.075  # 1.5 x the 0.05 tolerance
        if r["predictor"] == "mlp" and r["metric"] == "kendall" and r["task"] == "wmt14-en-de":
            r["mean"] += 0.018  # inside the tolerance: not a failure
    (tmp_path / "baseline.json").write_text(json.dumps(doctored))
    bad = bench("check", "suites/wmt14.yaml", "--baseline", str(tmp_path / "baseline.json"), "--results",
                str(d / "results.json"), cwd=root, check=False)
    assert bad.returncode == 1 and "gate FAILED" in bad.stdout
    fails = [line for line in bad.stdout.splitlines() if "FAIL" in line and "|" in line]
    assert len(fails) == 2 and any("gp" in f and "kendall" in f for f in fails)


def test_gate_reruns_when_no_results_given(runs, root):
    d = runs["wmt19"][0]
    r = bench("check", "suites/wmt19.yaml", "--baseline", str(d / "results.json"), cwd=root, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
