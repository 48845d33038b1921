"""Leaderboards that say which predictor to trust: paired tests, decision metrics, same-information baselines,
noise ceiling, in-sample rows, splits, and the one metric registry."""
import json
import textwrap

import numpy as np
import pytest

from bench import compare
from bench import metrics as M
from bench.suite import load_suite


# ------------------------------------------------------------------ paired bootstrap (hand-computed)
def test_paired_bootstrap_mae_by_hand():
    """Two splits, three fixed resamples each.  Split 1: a is perfect, b has |errors| 2, 0, 2; split 2: both
    perfect.  Per resample Δ = MAE(a) − MAE(b): split 1 gives −4/3 (rows 0,1,2), −4/3 (0,0,1), −2 (2,2,2);
    split 2 gives 0; averaged over splits: −2/3, −2/3, −1.  No resample has Δ ≥ 0, so
    p = 2 · (0 + 1) / (3 + 1) = 0.5; the observed Δ is (−4/3 + 0) / 2."""
    y1, a1, b1 = np.array([1.0, 2, 3]), np.array([1.0, 2, 3]), np.array([3.0, 2, 1])
    idx1 = np.array([[0, 1, 2], [0, 0, 1], [2, 2, 2]])
    y2 = np.array([1.0, 2])
    idx2 = np.array([[0, 1], [1, 1], [0, 0]])
    r = compare.paired_bootstrap([(y1, a1, b1, idx1), (y2, y2, y2, idx2)], "mae")
    assert r["delta"] == pytest.approx(-2 / 3)
    assert r["p"] == pytest.approx(0.5)
    assert r["n_boot"] == 3


def test_paired_bootstrap_kendall_by_hand():
    """y = a = (1, 2, 3), b = (1, 3, 2).  Resample (0,1,2): τa = 1, τb = 1/3, Δ = 2/3.  (0,0,1): the tied pair
    drops out of tau-b, both τ = 1, Δ = 0.  (2,2,2): undefined, dropped.  P*(Δ ≤ 0) = (1+1)/3,
    P*(Δ ≥ 0) = (2+1)/3, p = min(1, 2 · 2/3) = 1."""
    y, b = np.array([1.0, 2, 3]), np.array([1.0, 3, 2])
    idx = np.array([[0, 1, 2], [0, 0, 1], [2, 2, 2]])
    r = compare.paired_bootstrap([(y, y, b, idx)], "kendall")
    assert r["delta"] == pytest.approx(2 / 3)
    assert r["n_boot"] == 2
    assert r["p"] == pytest.approx(1.0)
    np.testing.assert_allclose(compare.resampled("kendall", y, b, idx[:2]), [1 / 3, 1.0])


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3·0.01, max(0.03, 2·0.03), max(0.06, 1·0.04)
    assert compare.holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])


# ------------------------------------------------------------------ decision metrics (hand example)
def test_regret_and_precision_by_hand():
    y = np.array([5.0, 4, 3, 2, 1, 0])
    v = np.array([0.0, 5, 4, 3, 2, 1])
    regret, prec = M.METRICS["regret@1"].fn, M.METRICS["precision@5"].fn
    # higher is better: best y = 5 (arch 0); the predictor picks arch 1 (y = 4); top 5 {1..5} vs {0..4}
    assert regret(y, v, True) == pytest.approx(1.0)
    assert prec(y, v, True) == pytest.approx(4 / 5)
    # lower is better (a loss): best y = 0 (arch 5); the predictor's lowest v is arch 0 (y = 5)
    assert regret(y, v, False) == pytest.approx(5.0)
    assert prec(y, v, False) == pytest.approx(4 / 5)  # {0,5,4,3,2} vs {1..5}
    # a constant predictor: a random pick (expected regret 5 - 2.5) and 5/6 chance per true-top item
    c = np.zeros(6)
    assert regret(y, c, True) == pytest.approx(2.5)
    assert prec(y, c, True) == pytest.approx(5 / 6)
    assert np.isnan(prec(y[:5], v[:5], True))  # every architecture is in both top sets: undefined


def test_lower_is_better_target_orients_rank_only_scores():
    from types import SimpleNamespace as NS
    nll = NS(kind="quality", higher_is_better=False)
    lat = NS(kind="latency", higher_is_better=False)
    proxy = NS(higher_is_better=True, on_target_scale=False)  # "a higher score is a better architecture"
    assert M.orientation(proxy, nll) == -1.0  # better = lower loss
    assert M.orientation(proxy, lat) == 1.0  # bigger model, higher latency
    assert M.orientation(NS(higher_is_better=True, on_target_scale=True), nll) == 1.0  # values stay values


# ------------------------------------------------------------------ feature baseline
def test_feature_baseline_equals_numpy_least_squares(root):
    from predictors import registry
    from predictors.base import Context
    from predictors.baselines import FEATURE_NAMES

    task = load_suite(root / "suites" / "wmt14.yaml").task("wmt14-en-de")
    train, test = task.split(123)
    y = np.array([r.targets["valid_bleu"] for r in train])
    for name in ("decoder_layer_num", "encoder_ffn_embed_dim_mean"):
        pred = registry.create(f"feature[name={name}]", Context(task=task, target="valid_bleu", seed=123))
        p = pred.fit([r.arch for r in train], y).predict([r.arch for r in test])
        x_tr = np.array([_feature(r.arch, name) for r in train])
        x_te = np.array([_feature(r.arch, name) for r in test])
        slope, intercept = np.polyfit(x_tr, y, 1)
        np.testing.assert_allclose(p, intercept + slope * x_te, rtol=1e-9)
        rank = registry.create(f"feature[name={name},rank=true]", Context(task=task, target="valid_bleu", seed=123))
        assert not rank.on_target_scale
        np.testing.assert_array_equal(rank.fit([], []).predict([r.arch for r in test]), x_te)
    with pytest.raises(ValueError, match=r"name='depth' is not allowed; allowed values: \['encoder_embed_dim'"):
        registry.create("feature[name=depth]", Context(task=task, target="valid_bleu", seed=123))
    assert len(FEATURE_NAMES) == 10
    const = registry.create("feature[name=encoder_layer_num]", Context(task=task, target="valid_bleu", seed=123))
    p = const.fit([r.arch for r in train], y).predict([r.arch for r in test])  # 6 encoder layers everywhere
    np.testing.assert_allclose(p, np.mean(y))


def _feature(arch, name):
    if name == "decoder_layer_num":
        return arch.decoder_layer_num
    return float(np.mean(arch.encoder_ffn_embed_dim))


# ------------------------------------------------------------------ a run: ceiling, ties, ood split
@pytest.fixture(scope="module")
def wmt14_run(root):
    from bench.runner import run_suite

    suite = load_suite(root / "suites" / "wmt14.yaml")
    return run_suite(suite, predictors=["mean", "params", "sandwich", "gp", "feature[name=decoder_layer_num]",
                                        "noise-ceiling"], progress=False, n_boot=200).to_json()


def test_noise_ceiling_is_the_twin_scored_alike_and_never_ranked(wmt14_run):
    from bench import report

    runs = [r for r in wmt14_run["runs"] if r["predictor"] == "noise-ceiling"]
    assert runs and all(r.get("ceiling") for r in runs)
    assert runs[0]["details"] == {"twin": "split", "of": "test_bleu"}
    rows = [r for r in wmt14_run["results"] if r["predictor"] == "noise-ceiling"]
    assert rows and all(r.get("ceiling") and "p_vs_best" not in r for r in rows)
    for tab in report.tables(wmt14_run):
        assert [r["predictor"] for r in tab["ceiling"]] == ["noise-ceiling"]
        assert all(not r["predictor"].startswith("noise-ceiling") for r in tab["rows"])
    md = report.markdown(wmt14_run)
    assert "Noise ceiling" in md and "Holm" in md and "α = 0.05" in md
    assert "it bounds evaluation-set noise only, not training-seed noise" in md  # what a valid/test twin misses


def test_every_ranked_row_carries_a_paired_test_against_the_best(wmt14_run):
    k = [r for r in wmt14_run["results"] if r["metric"] == "kendall" and r["task"] == "wmt14-en-de"
         and not r.get("ceiling")]
    scored = [r for r in k if np.isfinite(r["mean"])]
    best = max(scored, key=lambda r: r["mean"])
    assert best["p_vs_best"] is None and best["delta_vs_best"] == 0.0
    others = [r for r in scored if r is not best]
    assert all(0 < r["p_holm"] <= 1 and r["p_holm"] >= r["p_vs_best"] for r in others)
    assert all(r["delta_vs_best"] <= 0 for r in others)
    assert all(r["tied_with_best"] == (r["p_holm"] >= 0.05) for r in others)
    params = next(r for r in others if r["predictor"] == "params")
    assert not params["tied_with_best"]  # τ 0.42 vs 0.81: clearly worse
    assert all("regret@1" in {x["metric"] for x in wmt14_run["results"] if x["predictor"] == r["predictor"]}
               for r in k)


def test_ood_depth_split_trains_shallow_tests_deep(root):
    from bench import report
    from bench.runner import run_suite

    suite = load_suite(root / "suites" / "wmt14.yaml")
    res = run_suite(suite, predictors=["mean", "linear"], tasks=["wmt14-en-de"], progress=False, n_boot=50,
                    split="ood-depth")
    (train, test), = res.splits["wmt14-en-de"][0].values()
    assert max(r.arch.decoder_layer_num for r in train) < min(r.arch.decoder_layer_num for r in test)
    js = res.to_json()
    assert js["split"]["kind"] == "ood-depth"
    assert "decoder_layer_num ≤" in report.markdown(js)
    assert {r["seed"] for r in js["runs"]} == {123}


# ------------------------------------------------------------------ in-sample rows
def test_in_sample_rows_are_never_ranked(root):
    from bench import report
    from bench.runner import run_suite

    suite = load_suite(root / "suites" / "latency.yaml")
    res = run_suite(suite, predictors=["hat-latency-released", "flops", "linear"], tasks=["wmt14enfr-titanxp"],
                    progress=False, n_boot=50).to_json()
    rows = [r for r in res["results"] if r["predictor"] == "hat-latency-released"]
    assert rows and all(r["in_sample"] for r in rows)
    assert all("p_vs_best" not in r for r in rows)  # not compared, not the best
    (tab,) = report.tables(res)
    assert [r["predictor"] for r in tab["in_sample"]] == ["hat-latency-released"]
    assert "hat-latency-released" not in [r["predictor"].split(" ")[0] for r in tab["rows"]]
    assert "hat-latency-released" not in res["friedman"]["latency"]["ranks"]
    assert "In-sample, **not ranked**" in report.markdown(res)


# ------------------------------------------------------------------ undefined seeds are reported
def test_cell_reports_seeds_where_a_metric_is_undefined():
    from bench.report import _cell
    row = {"metric": "kendall", "mean": 0.5, "std": 0.1, "seeds": 3, "seeds_defined": 2}
    assert _cell(row) == "0.50 ± 0.10 (2/3 seeds)"
    assert _cell(dict(row, seeds_defined=3)) == "0.50 ± 0.10"


# ------------------------------------------------------------------ one metric registry
def test_a_declared_metric_reaches_results_leaderboard_and_gate(root, monkeypatch):
    from bench import gate, report
    from bench.runner import run_suite

    monkeypatch.setitem(M.METRICS, "max_err", M.Metric("max_err", lambda y, p, hib: float(np.max(np.abs(p - y))),
                                                      False, "max error", needs_scale=True, gate=0.01))
    suite = load_suite(root / "suites" / "wmt14.yaml")
    res = run_suite(suite, predictors=["mean", "linear"], tasks=["wmt14-en-de"], progress=False, n_boot=20).to_json()
    rows = [r for r in res["results"] if r["metric"] == "max_err"]
    assert {r["predictor"] for r in rows} == {"mean", "linear"}
    assert "max error" in report.markdown(res)  # a column, without editing report.py
    ok, _ = gate.compare(res, res, suite.gate)
    assert ok
    worse = json.loads(json.dumps(res))
    for r in worse["results"]:
        if r["metric"] == "max_err":
            r["mean"] += 0.5
    ok, text = gate.compare(worse, res, suite.gate)  # gated by its declared default tolerance
    assert not ok and "max_err" in text


def test_suite_gate_must_name_a_declared_metric(tmp_path):
    from bench.suite import SuiteError
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent("""\
        name: x
        gate: {kendal: 0.02}
        tasks: [{name: a, search_space: {encoder_embed_dim: [512]}, source: {kind: llmas, task: wmt14ende}}]
        """))
    with pytest.raises(SuiteError, match=r"gate\.kendal: unknown metric; allowed keys: \[.kendall."):
        load_suite(p)


def depth_arch(nd: int) -> dict:
    """A WMT-sized architecture that differs only in decoder depth (1 or 2)."""
    return {"encoder_embed_dim": 512, "encoder_layer_num": 1, "encoder_ffn_embed_dim": [1024],
            "encoder_self_attention_heads": [4], "decoder_embed_dim": 512, "decoder_layer_num": nd,
            "decoder_ffn_embed_dim": [1024] * nd, "decoder_self_attention_heads": [4] * nd,
            "decoder_ende_attention_heads": [4] * nd, "decoder_arbitrary_ende_attn": [-1] * nd}


def depth_records_suite(tmp_path, rows: list[dict], source: str):
    """A one-task records suite over ``depth_arch`` rows (written to m.jsonl); ``source`` adds the source keys."""
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    space = "\n".join(f"      {k}: {v}" for k, v in {
        "encoder_embed_dim": [512], "decoder_embed_dim": [512], "encoder_ffn_embed_dim": [1024],
        "decoder_ffn_embed_dim": [1024], "encoder_layer_num": [1], "decoder_layer_num": [1, 2],
        "encoder_self_attention_heads": [4], "decoder_self_attention_heads": [4],
        "decoder_ende_attention_heads": [4], "decoder_arbitrary_ende_attn": [-1]}.items())
    (tmp_path / "s.yaml").write_text(
        "name: mine\ntasks:\n  - name: a\n    vocab_size: 1000\n    search_space:\n" + space + "\n"
        "    source: {kind: records, file: {path: m.jsonl}, " + source + ", duplicates: keep}\n")
    return load_suite(tmp_path / "s.yaml")


def test_a_lower_is_better_target_is_honoured_by_every_metric(tmp_path):
    """A dev-loss target (higher_is_better: false): deeper decoders have more params and a lower loss here, so
    params (a rank-only "bigger is better" score) must get a positive τ, zero regret and a perfect top 5."""
    from bench.runner import run_suite

    rows = [{"arch": depth_arch(1 + i % 2), "nll": 5.0 - (1 + i % 2) - 0.001 * i} for i in range(16)]
    suite = depth_records_suite(tmp_path, rows, "targets: {nll: {unit: nats, higher_is_better: false}}, "
                                                "train_size: 4, seeds: [0, 1]")
    res = run_suite(suite, predictors=["params", "linear"], progress=False,
                    n_boot=50).to_json()
    got = {(r["predictor"], r["metric"]): r["mean"] for r in res["results"]}
    assert got[("params", "kendall")] > 0.5  # oriented by the target's direction: bigger = lower loss
    assert got[("params", "precision@5")] < 1  # ties in params among equal depths: expected overlap
    assert got[("params", "regret@1")] <= 0.008  # the top pick is one of the deep (low-loss) architectures
    assert got[("linear", "kendall")] > 0.5  # a value predictor is never flipped
    best = [r for r in res["results"] if r["metric"] == "kendall" and r.get("p_vs_best") is None and "best" in r]
    assert len(best) == 1


def test_bench_ranks_pools_suites_per_target_kind(wmt14_run, tmp_path, capsys):
    import argparse

    from bench.commands import ranks
    from bench.report import dumps

    paths = []
    for name in ("a", "b"):
        p = tmp_path / f"{name}.json"
        res = dict(wmt14_run, suite=name)  # written as bench writes it: strict JSON, an undefined metric is null
        res["results"] = [dict(r, mean=float("nan")) if r["metric"] == "kendall" and r["predictor"] == "mean" else r
                          for r in res["results"]]
        p.write_text(dumps(res))
        paths.append(str(p))
    parser = argparse.ArgumentParser()
    ranks.add_arguments(parser)
    assert ranks.main(parser.parse_args([*paths, "--out", str(tmp_path / "out")])) == 0
    text = (tmp_path / "out" / "ranks.md").read_text()
    assert "quality targets: 4 tables" in text and "Friedman" in text
    assert (tmp_path / "out" / "critical-difference-quality.png").stat().st_size > 1000
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert ranks.main(parser.parse_args([str(bad)])) == 2
    assert "error: " in capsys.readouterr().err


def test_cd_cliques_are_maximal_groups_closer_than_cd():
    from bench.ranks import cliques
    assert cliques([1, 2, 3, 10], 1.5) == [(1.0, 2.0), (2.0, 3.0)]
    assert cliques([2.14, 2.14, 2.57, 4.14, 4.43, 5.86, 6.86, 7.86], 3.97) == [(2.14, 5.86), (4.14, 7.86)]
    assert cliques([1, 5, 9], 2) == []


def test_floors_are_stated_and_a_median_below_floor_a_is_flagged(tmp_path):
    """source.floors: the leaderboard states each matching target's floors and flags a median below floor (a)."""
    from bench.sources.records import floor_notes
    from bench.types import SuiteError

    # medians 13.5 (valid) and 23.5 (test)
    rows = [{"arch": depth_arch(1 + i % 2), "valid_chrf": 10.0 + i, "test_chrf": 20.0 + i} for i in range(8)]
    fl = {s: {k: {"chrf": v, "bleu": 0.1} for k, v in (("shuffled", 15.0), ("copy", 12.0), ("constant", 4.0))}
          for s in ("valid", "test")}
    (tmp_path / "t.floors.json").write_text(json.dumps(fl))
    suite = depth_records_suite(tmp_path, rows, "floors: {path: t.floors.json}, targets: {valid_chrf: {unit: chrF}, "
                                                "test_chrf: {unit: chrF}}, train_size: 4, seeds: [0]")
    notes = suite.tasks[0].data.notes
    valid = next(n for n in notes if "`valid_chrf`" in n)
    test = next(n for n in notes if "`test_chrf`" in n)
    assert "(a) shuffled references 15.00" in valid and "median 13.50 is below floor (a) by 1.50" in valid
    assert "median 23.50, +8.50 over floor (a)" in test and "below" not in test
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SuiteError, match=r"bad.json: not a floors file.*--floors"):
        floor_notes(tmp_path / "bad.json", {"valid_chrf": "valid_chrf"}, [])
