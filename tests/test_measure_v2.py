"""bench measure v2: code_sha256 reproducibility, refusals (task, code), the file lock, floors, the trainer loop."""
import json
import math
import os
import subprocess
import sys
import time

import pytest

from bench.cli import main
from bench.measure import measure_one, prepare, read_records, sample_archs
from bench.mt import floors as F
from bench.mt.record import CLOCK_FIELDS
from bench.mt.train import (
    CODE_FILES,
    CODE_SHA256,
    Recipe,
    _code_sha256,
    collated,
    train,
)
from bench.suite import load_suite
from tests.test_measure import ROOT, make_suite, run_cli


def _strip_clocks(rec):
    return {k: v for k, v in rec.items() if k not in CLOCK_FIELDS}


def test_same_inputs_same_code_same_record_except_clocks(tmp_path):
    task = load_suite(make_suite(tmp_path, steps=6)).task("t")
    prep = prepare(task)
    arch = sample_archs(task.space, 2)[1]
    a = measure_one(prep, arch, seed=3, sample_index=1, progress=False)
    b = measure_one(prep, arch, seed=3, sample_index=1, progress=False)
    assert a["status"] == "ok", a.get("traceback")
    assert a["code_sha256"] == CODE_SHA256 and len(CODE_SHA256) == 64
    assert _strip_clocks(a) == _strip_clocks(b)  # every field: targets, curve, samples, hashes
    assert a["evals"] and a["valid_nll"] == a["best_dev_loss"]
    c = measure_one(prep, arch, seed=4, sample_index=1, progress=False)
    assert c["evals"] != a["evals"]  # the comparison can fail: another seed gives another curve


def test_code_hash_covers_the_files_that_decide_a_record(tmp_path, monkeypatch):
    import bench.mt.train as T

    for rel in CODE_FILES:
        assert (T._ROOT / rel).is_file(), rel
    assert _code_sha256() == CODE_SHA256
    fake = tmp_path / "bench"
    for rel in CODE_FILES:
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_bytes((T._ROOT / rel).read_bytes())
    monkeypatch.setattr(T, "_ROOT", fake)
    assert _code_sha256() == CODE_SHA256
    (fake / "mt" / "scoring.py").write_text((fake / "mt" / "scoring.py").read_text() + "\n# edited\n")
    assert _code_sha256() != CODE_SHA256


def test_refuses_records_of_another_code_hash_or_task_unless_asked(tmp_path, capsys):
    suite = make_suite(tmp_path, steps=2)
    out = tmp_path / "out" / "t.jsonl"
    assert main(["measure", str(suite), "--task", "t", "--n", "1", "--no-progress"]) == 0
    rows = read_records(out)
    rows[0]["code_sha256"] = "0" * 64
    out.write_text(json.dumps(rows[0]) + "\n")
    assert main(["measure", str(suite), "--task", "t", "--n", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "line 1 was measured with code_sha256" in err and "--allow-mixed" in err and "Traceback" not in err
    assert len(read_records(out)) == 1
    assert main(["measure", str(suite), "--task", "t", "--n", "2", "--no-progress", "--allow-mixed"]) == 0
    assert len(read_records(out)) == 2
    other = read_records(out)[0]
    other["task"] = "bzd-es"
    out.write_text(json.dumps(other) + "\n")
    assert main(["measure", str(suite), "--task", "t", "--n", "2", "--no-progress", "--allow-mixed"]) == 2
    assert "measured on task 'bzd-es', not 't'" in capsys.readouterr().err
    assert len(read_records(out)) == 1


def test_a_second_concurrent_run_is_refused_and_appends_nothing(tmp_path):
    suite = make_suite(tmp_path, steps=40)
    out = tmp_path / "out" / "t.jsonl"
    first = run_cli("measure", str(suite), "--task", "t", "--n", "3", "--no-progress")
    deadline = time.time() + 60
    while time.time() < deadline and not out.exists():
        time.sleep(0.05)
    assert out.exists(), "the first run never opened its records file"
    second = subprocess.run([sys.executable, "-m", "bench", "measure", str(suite), "--task", "t", "--n", "3",
                             "--no-progress"], cwd=ROOT, capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    first.communicate(timeout=300)
    assert first.returncode == 0
    assert second.returncode == 2, second.stderr
    assert "another `bench measure` is appending" in second.stderr and "Traceback" not in second.stderr
    rows = read_records(out)
    assert len(rows) == 3 and len({(r["arch_key"], r["seed"]) for r in rows}) == 3


def test_floors_shuffle_is_a_derangement_and_scores_are_the_non_translations(tmp_path):
    refs = ["uno dos", "", "tres cuatro", "cinco", "seis siete ocho"]
    sh = F.shuffled(refs, seed=0)
    assert sh[1] == "" and sorted(sh) == sorted(refs)
    assert all(sh[i] != refs[i] for i in (0, 2, 3, 4))
    assert F.most_frequent(["a", "b", "b", " ", "a", "b"]) == "b"
    task = load_suite(make_suite(tmp_path, steps=2)).task("t")
    prep = prepare(task)
    fl = F.floors(prep.corpus)
    assert fl["constant_sentence"] in prep.corpus.splits["train"].tgt
    from bench.mt.scoring import score
    v = prep.corpus.splits["valid"]
    assert fl["valid"]["copy"]["chrf"] == round(score(v.src, v.tgt)["chrf"], 3)
    assert fl["valid"]["shuffled"]["chrf"] < 100.0 == score(v.tgt, v.tgt)["chrf"]
    path = F.write_floors(task, prep.corpus)
    assert path == tmp_path / "out" / "t.floors.json" and F.read_floors(task)["valid"] == fl["valid"]


def test_americasnlp_floors_match_the_committed_files():
    suite = load_suite(ROOT / "suites" / "americasnlp.yaml")
    for t in suite.tasks:
        committed = F.read_floors(t)
        assert committed is not None, t.name
        assert committed["valid"] == F.floors(prepare(t).corpus)["valid"], t.name


def test_trainer_batches_are_built_once_and_cover_every_pair(tmp_path):
    import torch

    task = load_suite(make_suite(tmp_path, steps=2)).task("t")
    prep = prepare(task)
    bs = collated(prep.train_pairs, 64, torch, "cpu")
    n_tokens = sum(int((g != 1).sum()) for _, _, g in bs)
    assert n_tokens == sum(len(t) for _, t in prep.train_pairs)
    assert all(s.numel() <= 64 or s.size(0) == 1 for s, _, _ in bs)


def test_on_epoch_sees_the_best_weights_and_training_resumes(tmp_path):
    import torch

    from bench.model.subtransformer import build_model

    task = load_suite(make_suite(tmp_path, steps=2)).task("t")
    prep = prepare(task)
    arch = sample_archs(task.space, 1)[0]
    recipe = Recipe.from_config({"max_epochs": 6, "max_steps": 1000, "batch_tokens": 64, "warmup": 2,
                                 "patience": 100, "lr": 0.01})

    def run(cb):
        torch.manual_seed(0)
        m = build_model(arch, len(prep.vocab), qkv_dim=16, pad_idx=1, seed=0, dropout=0.1)
        return m, train(m, prep.train_pairs, prep.dev_pairs, recipe, 0, progress=False, on_epoch=cb)

    seen = []
    _, with_cb = run(lambda e, m, best_step: seen.append((e, best_step, m.training)))
    _, without = run(None)
    assert [e for e, _, _ in seen] == list(range(1, 7))
    assert all(not training for _, _, training in seen)
    assert with_cb["evals"] == without["evals"]  # the callback does not disturb training
    assert seen[-1][1] == with_cb["best_step"] and math.isfinite(with_cb["best_dev_loss"])


@pytest.mark.slow
def test_throughput_report_runs(tmp_path):
    from bench.mt.throughput import compare

    task = load_suite(make_suite(tmp_path, steps=2)).task("t")
    prep = prepare(task)
    r = compare(prep, sample_archs(task.space, 1)[0], steps=4, repeats=1, batch_tokens=64)
    assert r["trainer_tok_s"] > 0 and r["minimal_tok_s"] > 0 and r["target_tokens"] > 0



def test_measure_records_key_redirects_the_measurement_and_the_summary_shows_floors(tmp_path, capsys):
    suite = make_suite(tmp_path, steps=2)
    suite.write_text(suite.read_text().replace("    measure:\n", "    measure:\n      records: out/v2/t.jsonl\n"))
    assert main(["measure", str(suite), "--task", "t", "--n", "2", "--no-progress"]) == 0
    assert len(read_records(tmp_path / "out" / "v2" / "t.jsonl")) == 2
    assert not (tmp_path / "out" / "t.jsonl").exists()  # the suite's records file is left alone
    assert main(["measure", str(suite), "--task", "t", "--floors"]) == 0
    assert (tmp_path / "out" / "v2" / "t.floors.json").exists()
    capsys.readouterr()
    assert main(["measure", str(suite), "--task", "all", "--summary"]) == 0
    out = capsys.readouterr().out
    fl = F.read_floors(load_suite(suite).task("t"))
    rows = read_records(tmp_path / "out" / "v2" / "t.jsonl")
    med = sorted(r["valid_chrf"] for r in rows)
    median = (med[0] + med[1]) / 2
    want = f"| t | valid | chrf | {fl['valid']['shuffled']['chrf']:.2f} |"
    assert want in out and f"{median - fl['valid']['shuffled']['chrf']:+.2f} |" in out
    assert "| t | valid_nll | 2 |" in out and CODE_SHA256[:12] in out
    suite.write_text(suite.read_text().replace("records: out/v2/t.jsonl", "records: out/v2/t.csv"))
    assert main(["measure", str(suite), "--task", "t", "--n", "2", "--no-progress"]) == 2
    assert "measure.records: must be a path ending in .jsonl" in capsys.readouterr().err


def test_americasnlp_notes_state_the_floors_of_the_floors_files():
    suite = load_suite(ROOT / "suites" / "americasnlp.yaml")
    for t in suite.tasks:
        fl = F.read_floors(t)["valid"]
        note = next(n for n in t.cfg["notes"] if n.startswith("Floors"))
        for k in F.KINDS:
            assert f"{fl[k]['chrf']:.2f}" in note, (t.name, k)
        assert "measure" in t.cfg and {"max_epochs", "patience", "batch_tokens"} <= set(t.cfg["measure"]["recipe"])


def test_min_epochs_holds_early_stopping_back(tmp_path):
    import torch

    from bench.model.subtransformer import build_model

    task = load_suite(make_suite(tmp_path, steps=2)).task("t")
    prep = prepare(task)
    arch = sample_archs(task.space, 1)[0]
    out = {}
    for me in (0, 7):
        recipe = Recipe.from_config({"max_epochs": 30, "max_steps": 1000, "batch_tokens": 64, "warmup": 2,
                                     "patience": 1, "lr": 0.05, "min_epochs": me})
        torch.manual_seed(0)
        m = build_model(arch, len(prep.vocab), qkv_dim=16, pad_idx=1, seed=0)
        out[me] = train(m, prep.train_pairs, prep.dev_pairs, recipe, 0, progress=False)
    assert out[0]["stopped"] == "patience" and out[0]["epochs"] < 7  # lr 0.05 overshoots: an early stop
    assert out[7]["epochs"] >= 7 and out[7]["evals"][: len(out[0]["evals"])] == out[0]["evals"]


def test_summary_states_the_noise_of_a_seed_averaged_target(tmp_path, capsys):
    """source.duplicates: mean over seeds 0 and 1: the summary shows the spread of the means and their noise,
    the pooled seed std over sqrt(2)."""
    suite = make_suite(tmp_path, steps=2)
    assert main(["measure", str(suite), "--task", "t", "--n", "3", "--no-progress"]) == 0
    assert main(["measure", str(suite), "--task", "t", "--n", "3", "--seeds", "1", "--no-progress",
                 "--out", str(tmp_path / "out" / "t.noise.jsonl")]) == 0
    suite.write_text(suite.read_text().replace(
        "file: {path: out/t.jsonl}\n      filter: {status: ok}",
        "file: [{path: out/t.jsonl}, {path: out/t.noise.jsonl}]\n      filter: {status: ok, seed: [0, 1]}\n"
        "      duplicates: mean").replace("targets: {", "targets: {nll: {column: best_dev_loss, higher_is_better: "
                                             "false}, "))
    capsys.readouterr()
    assert main(["measure", str(suite), "--task", "all", "--summary"]) == 0
    out = capsys.readouterr().out
    rows = read_records(tmp_path / "out" / "t.jsonl") + read_records(tmp_path / "out" / "t.noise.jsonl")
    by = {}
    for r in rows:
        by.setdefault(r["arch_key"], []).append(r["valid_nll"])
    means = [sum(v) / 2 for v in by.values()]
    seed_std = math.sqrt(sum(((a - b) ** 2) / 2 for a, b in by.values()) / len(by))
    line = next(x for x in out.splitlines() if x.startswith("| t | valid_nll, mean of 2 seeds"))
    cells = [c.strip() for c in line.split("|")]
    import statistics
    assert cells[3] == "3" and cells[5] == f"{statistics.stdev(means):.3f}"  # nats: three decimals
    assert cells[8] == f"{seed_std / math.sqrt(2):.3f} (seed std / sqrt(k))"
    from bench.mt.stability import main as stability
    assert stability([str(suite)]) == 0
    assert "The suite reads valid_nll as a mean of 2 seeds" in capsys.readouterr().out


def test_averaged_noise_counts_k_over_the_records_that_have_the_target():
    """sqrt(mean 1/k) runs over the architectures whose mean is finite: one that lacks the target does not lower it."""
    from types import SimpleNamespace

    from bench.measure_summary import _averaged
    from bench.types import Record

    recs = [Record(id=str(i), arch=None, targets={"v": v}, extras={"repeats": k})
            for i, (v, k) in enumerate([(1.0, 1), (2.0, 1), (math.nan, 2), (math.nan, 2)])]
    task = SimpleNamespace(cfg={"source": {"duplicates": "mean", "targets": {"v": {"column": "valid_nll"}}}},
                           records=recs)
    got = _averaged(task, {"valid_nll": {"seed_std": 0.5}})["valid_nll"]
    assert got["n"] == 2 and got["repeats"] == [1] and got["seed_std"] == 0.5
