"""Latency suites from HAT's CSVs: averaged archs, column mapping, splits, metrics, latency predictors."""
import csv
import json
import math

import numpy as np
import pytest

from bench import metrics as M
from bench.costs import compute_costs
from bench.features import encode
from bench.sources.hat_latency import FEATURES, averaged_arch, check_averages, is_averaged, nested_splits
from bench.space import Arch
from bench.suite import SuiteError, load_suite
from predictors import registry
from predictors.base import Context

HAT_CSV = "mit-han-lab/hardware-aware-transformers/latency_dataset/wmt14ende_gpu_titanxp_all.csv"


@pytest.fixture(scope="module")
def latency_suite(root):
    import os

    os.environ.setdefault("BENCH_DATA_DIR", str(root.parent / "shared" / "data"))
    return load_suite(root / "suites" / "latency.yaml")


def _hat_rows():
    from bench import data

    with open(data.fetch(HAT_CSV), newline="") as fh:
        return list(csv.DictReader(fh))


def test_suite_loads_seven_tasks_with_exact_hat_features(latency_suite):
    assert len(latency_suite.tasks) == 7
    task = latency_suite.task("wmt14ende-titanxp")
    rows = _hat_rows()
    assert len(task.records) == len(rows) == 2000
    got = encode([r.arch for r in task.records], "hat_raw")
    want = np.array([[float(r[c]) for c in FEATURES.values()] for r in rows])
    assert np.array_equal(got, want)  # bit for bit
    r0 = task.records[0]
    assert r0.targets["latency_ms"] == pytest.approx(float(rows[0]["latency_mean_encoder"])
                                                     + float(rows[0]["latency_mean_decoder"]))
    assert r0.extras["latency_std_decoder"] == pytest.approx(float(rows[0]["latency_std_decoder"]))
    assert list(task.targets) == ["latency_ms"] and task.targets["latency_ms"].kind == "latency"


def test_averaged_arch_costs_equal_every_real_arch_with_those_averages():
    real = Arch(640, 6, (3072, 2048, 1024, 512, 512, 1024), (8, 4, 2, 8, 4, 2), 512, 3, (3072, 512, 2048),
                (8, 2, 4), (4, 4, 2), (-1, 2, 1))
    feats = dict(zip(FEATURES, encode([real], "hat_raw")[0]))
    avg = averaged_arch(feats)
    assert is_averaged(avg) and not is_averaged(real)
    assert np.array_equal(encode([avg], "hat_raw"), encode([real], "hat_raw"))
    for vocab in (32768, 49600):
        a, r = compute_costs(avg, vocab), compute_costs(real, vocab)
        assert round(a.params_no_emb) == r.params_no_emb
        assert round(a.total_flops) == r.total_flops and round(a.last_layer_flops) == r.last_layer_flops


def test_averages_outside_the_space_are_refused(latency_suite):
    space = latency_suite.task("wmt14ende-titanxp").space
    ok = dict(zip(FEATURES, [640, 6, 1877.3333333333333, 5.333333333333333, 512, 6, 1536.0, 4.666666666666667,
                             4.333333333333333, 2.1666666666666665]))
    assert check_averages(ok, space) is None
    assert "decoder_ffn_embed_dim" in check_averages(dict(ok, decoder_ffn_embed_dim=4000.0), space)
    assert "not the mean" in check_averages(dict(ok, encoder_ffn_embed_dim=700.0), space)  # 4200 not reachable
    assert "decoder_layer_num" in check_averages(dict(ok, decoder_layer_num=7), space)


def test_nested_splits_fix_the_test_set_and_nest_train_sets():
    a, b = nested_splits(100, 10, 30, [0])[0], nested_splits(100, 50, 30, [0])[0]
    assert a[1] == b[1] and set(a[0]) < set(b[0]) and not set(b[0]) & set(b[1])
    assert nested_splits(100, 10, 30, [1])[1][1] != a[1]


def _user_suite(tmp_path, csv_text, columns=None, extra=""):
    (tmp_path / "mine.csv").write_text(csv_text)
    cols = "" if columns is None else f", columns: {columns}"
    (tmp_path / "s.yaml").write_text(f"""
name: mine
spaces:
  lat: {{encoder_embed_dim: [640, 512], decoder_embed_dim: [640, 512], encoder_ffn_embed_dim: [3072, 2048, 1024, 512],
        decoder_ffn_embed_dim: [3072, 2048, 1024, 512], encoder_layer_num: [6], decoder_layer_num: [1, 2, 3, 4, 5, 6],
        encoder_self_attention_heads: [8, 4, 2], decoder_self_attention_heads: [8, 4, 2],
        decoder_ende_attention_heads: [8, 4, 2], decoder_arbitrary_ende_attn: [-1, 1, 2]}}
tasks:
  - name: t
    search_space: lat
    vocab_size: 32768
    source: {{kind: hat-latency-csv, file: {{path: mine.csv}}, train_size: 2{cols}{extra}}}
""")
    return load_suite(tmp_path / "s.yaml")


ROWS = ["640,6,2048,8,512,2,1024,4,4,1.5,10.0,50.0", "512,6,1024,4,640,1,3072,8,8,3,8.0,20.0",
        "640,6,3072,8,640,6,3072,8,8,3,12.0,90.0", "512,6,512,2,512,3,512,2,2,1,7.0,30.0"]


def test_a_user_csv_with_its_own_column_names_is_mapped_declaratively(tmp_path):
    header = "E,NE,EF,EH,D,ND,DF,DH,DEH,SPAN,enc_ms,dec_ms"
    mapping = ("{encoder_embed_dim: E, encoder_layer_num: NE, encoder_ffn_embed_dim: EF, encoder_self_attention_heads: EH,"
               " decoder_embed_dim: D, decoder_layer_num: ND, decoder_ffn_embed_dim: DF, decoder_self_attention_heads: DH,"
               " decoder_ende_attention_heads: DEH, decoder_ende_layers: SPAN, latency_mean_encoder: enc_ms,"
               " latency_mean_decoder: dec_ms}")
    task = _user_suite(tmp_path, header + "\n" + "\n".join(ROWS) + "\n", mapping).tasks[0]
    assert [r.targets["latency_ms"] for r in task.records] == [60.0, 28.0, 102.0, 37.0]
    assert task.records[0].arch.ende_layers == (1.5, 1.5)
    train, test = task.split(0)
    assert len(train) == 2 and len(test) == 2


def test_a_single_total_latency_column_is_enough(tmp_path):
    header = ",".join(FEATURES.values()) + ",total"
    rows = [",".join(r.split(",")[:10]) + f",{i + 30}" for i, r in enumerate(ROWS)]
    task = _user_suite(tmp_path, header + "\n" + "\n".join(rows) + "\n", "{latency: total}").tasks[0]
    assert [r.targets["latency_ms"] for r in task.records] == [30.0, 31.0, 32.0, 33.0]


def test_a_missing_column_names_the_file_the_key_and_the_available_columns(tmp_path):
    header = ",".join(FEATURES.values()) + ",enc,dec"
    suite = _user_suite(tmp_path, header + "\n" + "\n".join(ROWS) + "\n", "{latency_mean_encoder: enc}")
    with pytest.raises(SuiteError) as exc:
        _ = suite.tasks[0].records
    msg = str(exc.value)
    assert "mine.csv" in msg and "latency_mean_decoder" in msg and "available columns" in msg and "'dec'" in msg


def test_an_unknown_column_key_lists_the_allowed_keys(tmp_path):
    with pytest.raises(SuiteError, match=r"source.columns.ffn: unknown key; allowed keys: .*decoder_ende_layers"):
        _user_suite(tmp_path, "x\n1\n", "{ffn: EF}")


def test_a_row_outside_the_space_names_the_line(tmp_path):
    header = ",".join(FEATURES.values()) + ",latency_mean_encoder,latency_mean_decoder"
    bad = ROWS[:2] + ["640,6,9999,8,512,2,1024,4,4,1.5,10.0,50.0"]
    suite = _user_suite(tmp_path, header + "\n" + "\n".join(bad) + "\n")
    with pytest.raises(SuiteError, match=r"mine.csv: line 4: .*encoder_ffn_embed_dim"):
        _ = suite.tasks[0].records


def test_within10_is_the_share_of_predictions_within_ten_percent():
    y = np.array([100.0, 100.0, 200.0, 50.0])
    p = np.array([110.0, 89.0, 181.0, 55.0])  # 10% (in), 11% (out), 9.5% (in), 10% (in)
    assert M.within10(y, p) == 75.0
    assert M.mape(y, p) == pytest.approx(100 * np.mean([0.10, 0.11, 0.095, 0.10]))


def _ctx(task, seed=0):
    return Context(task=task, target="latency_ms", seed=seed)


def test_hat_latency_training_is_deterministic_on_a_small_sample(latency_suite):
    task = latency_suite.task("wmt14ende-titanxp")
    recs = task.records[:40]
    archs, y = [r.arch for r in recs], np.array([r.targets["latency_ms"] for r in recs])
    spec = "hat-latency[steps=30,lr=1e-3]"
    p1 = registry.create(spec, _ctx(task)).fit(archs[:30], y[:30]).predict(archs[30:])
    p2 = registry.create(spec, _ctx(task)).fit(archs[:30], y[:30]).predict(archs[30:])
    p3 = registry.create(spec, _ctx(task, seed=1)).fit(archs[:30], y[:30]).predict(archs[30:])
    assert np.array_equal(p1, p2) and not np.array_equal(p1, p3)
    assert np.all(np.isfinite(p1))


def test_lat_norm_is_hats_per_device_or_the_rounded_train_mean(latency_suite):
    from predictors.latency import lat_norm_for

    task = latency_suite.task("wmt14ende-rpi")
    assert lat_norm_for(task, "cpu_raspberrypi", [1.0]) == 5000.0
    assert lat_norm_for(task, "my-cpu", [150.0, 182.0]) == 200.0
    assert lat_norm_for(task, "my-cpu", [4.2]) == 5.0


def test_released_predictor_and_proxies_run_on_averaged_archs(latency_suite):
    from bench.runner import run_suite

    res = run_suite(latency_suite, predictors=["hat-latency-released", "flops", "params", "linear"],
                    tasks=["wmt14enfr-titanxp"], progress=False, n_boot=50)
    from scipy.stats import kendalltau

    rows = {(r["predictor"], r["metric"]): r for r in res.rows}
    assert not res.skipped
    task = latency_suite.task("wmt14enfr-titanxp")
    by_key = {r.id: r.targets["latency_ms"] for r in task.records}
    for pred in ("hat-latency-released", "flops", "params", "linear"):
        runs = [r for r in res.runs if r["predictor"] == pred]
        assert sorted(r["seed"] for r in runs) == sorted(task.seeds)
        mape, w10, tau = [], [], []
        for r in runs:  # every metric again from the raw predictions, without bench.metrics
            y = np.array([by_key[k] for k in r["test_ids"]])
            p = np.array(r["predictions"], dtype=float)
            assert np.isfinite(p).all() and np.array_equal(y, r["gold"])
            mape.append(100 * np.mean(np.abs(p - y) / y))
            w10.append(100 * np.mean(np.abs(p - y) <= 0.1 * y))
            tau.append(kendalltau(y, p).statistic)
        assert rows[(pred, "kendall")]["mean"] == pytest.approx(np.mean(tau), abs=1e-12)
        if pred not in ("flops", "params"):  # proxies rank only: no raw MAPE
            assert rows[(pred, "mape")]["mean"] == pytest.approx(np.mean(mape), abs=1e-9)
            assert rows[(pred, "within10")]["mean"] == pytest.approx(np.mean(w10), abs=1e-9)
    # HAT's released predictor on HAT's own En-Fr TITAN Xp data: 1.88 % MAPE over the test splits here
    assert 1.5 < rows[("hat-latency-released", "mape")]["mean"] < 2.3
    assert math.isfinite(rows[("flops", "mae_cal")]["mean"])


def test_curve_runs_every_train_size_on_the_same_test_sets(tmp_path):
    import argparse

    from bench.commands import latency as latency_cli

    header = ",".join(FEATURES.values()) + ",latency_mean_encoder,latency_mean_decoder"
    rows = [",".join(r.split(",")[:10]) + f",{i},{3 * i + 10}" for i, r in enumerate(ROWS * 3)]
    _user_suite(tmp_path, header + "\n" + "\n".join(rows) + "\n", extra=", test_size: 4")
    p = argparse.ArgumentParser()
    latency_cli.add_arguments(p)
    args = p.parse_args(["curve", str(tmp_path / "s.yaml"), "--sizes", "3,8", "--predictors", "mean,linear",
                         "--out", str(tmp_path / "out"), "--no-progress"])
    assert latency_cli.main(args) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    runs = {(r["task"], r["predictor"], r["seed"]): r for r in res["runs"]}
    assert runs[("t@3", "mean", 0)]["test_ids"] == runs[("t@8", "mean", 0)]["test_ids"]
    text = (tmp_path / "out" / "curve.md").read_text()
    assert "## t" in text and "τ @3" in text and "MAPE % @8" in text
