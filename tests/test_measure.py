"""bench measure: sampling, resumable atomic records, failing architectures, schema, suite round trip."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.measure import append_record, measure_one, output_path, prepare, read_records, sample_archs, validate_record
from bench.space import SearchSpace
from bench.suite import SuiteError, load_suite

ROOT = Path(__file__).resolve().parent.parent

SRC = ["ye' shkèxnã bua'ë", "ye' dör bikâkala", "ìs a' shkèxnã", "ye' tö i ñã", "be' shkèxnã", "ie' dör bua'ë",
       "sa' tö i ñã", "ìs be' dör"]
TGT = ["yo amanecí muy bien", "yo soy maestro", "cómo amanecieron", "yo lo comí", "tú amaneciste",
       "él es bueno", "nosotros lo comimos", "cómo eres"]

TINY_SUITE = """
name: tiny
predictors: [mean, params]
tasks:
  - name: t
    search_space:
      encoder_embed_dim: [16, 32]
      decoder_embed_dim: [16, 32]
      encoder_ffn_embed_dim: [16, 32]
      decoder_ffn_embed_dim: [16, 32]
      encoder_layer_num: [1, 2]
      decoder_layer_num: [1, 2]
      encoder_self_attention_heads: [2]
      decoder_self_attention_heads: [2]
      decoder_ende_attention_heads: HEADS
      decoder_arbitrary_ende_attn: [-1, 1]
      qkv_dim: 16
    source:
      kind: records
      file: {path: out/t.jsonl}
      filter: {status: ok}
      targets: {chrf: {column: valid_chrf, unit: chrF}, bleu: {column: valid_bleu, unit: BLEU}}
      train_size: 2
      seeds: [0, 1]
    measure:
      corpus:
        src_lang: bzd
        tgt_lang: es
        train: {src: {path: train.src}, tgt: {path: train.tgt}}
        valid: {src: {path: train.src}, tgt: {path: train.tgt}, lines: [0, 4]}
        test: {src: {path: train.src}, tgt: {path: train.tgt}, lines: [4, 8]}
      tokenizer: {kind: bpe, vocab_size: 60}
      recipe: {max_steps: STEPS, max_epochs: 100, batch_tokens: 64, warmup: 2, eval_every: 2, decode_max_len_b: 3}
"""


def make_suite(tmp_path, heads="[2]", steps=3) -> Path:
    (tmp_path / "train.src").write_text("\n".join(SRC) + "\n")
    (tmp_path / "train.tgt").write_text("\n".join(TGT) + "\n")
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY_SUITE.replace("HEADS", heads).replace("STEPS", str(steps)))
    return p


def run_cli(*args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def space(**over):
    cfg = {"encoder_embed_dim": [128, 256], "decoder_embed_dim": [128, 256], "encoder_ffn_embed_dim": [256, 512],
           "decoder_ffn_embed_dim": [256, 512], "encoder_layer_num": [1, 2, 3, 4], "decoder_layer_num": [1, 2, 3, 4],
           "encoder_self_attention_heads": [2, 4], "decoder_self_attention_heads": [2, 4],
           "decoder_ende_attention_heads": [2, 4], "decoder_arbitrary_ende_attn": [-1, 1, 2]}
    cfg.update(over)
    return SearchSpace.from_config(cfg)


def test_sampling_is_stratified_distinct_valid_and_prefix_stable():
    sp = space()
    archs = sample_archs(sp, 12, seed=0)
    assert len({a.key() for a in archs}) == 12
    for block in (archs[:4], archs[4:8], archs[8:12]):  # every block of 4 covers every layer count
        assert {a.encoder_layer_num for a in block} == {1, 2, 3, 4}
        assert {a.decoder_layer_num for a in block} == {1, 2, 3, 4}
    for block in (archs[:2], archs[2:4]):
        assert {a.encoder_embed_dim for a in block} == {128, 256}
    assert all(max(a.ende_layers) <= a.encoder_layer_num for a in archs)
    assert [a.key() for a in sample_archs(sp, 20, seed=0)[:12]] == [a.key() for a in archs]
    assert [a.key() for a in sample_archs(sp, 12, seed=1)] != [a.key() for a in archs]


def test_append_is_whole_lines_and_a_torn_last_line_is_dropped(tmp_path, capsys):
    p = tmp_path / "r.jsonl"
    append_record(p, {"a": 1})
    append_record(p, {"a": 2})
    with open(p, "a") as fh:
        fh.write('{"a": 3, "trunc')  # a crash mid-write
    torn = p.read_text()
    assert read_records(p) == [{"a": 1}, {"a": 2}]
    assert p.read_text() == torn  # a plain reader never rewrites: a running writer may be mid-append
    assert "skipping a torn last line" in capsys.readouterr().err
    assert read_records(p, repair=True) == [{"a": 1}, {"a": 2}]
    assert p.read_text() == '{"a":1}\n{"a":2}\n'
    assert "dropping a torn last line" in capsys.readouterr().err


def test_a_repair_keeps_the_writers_lock(tmp_path, capsys):
    """The lock holder's repair truncates in place: a second run must still find the file locked (a rewrite to a
    new inode would leave the lock on the old one), and a torn multi-byte character is a torn line, not a crash."""
    from bench.measure import _lock

    p = tmp_path / "r.jsonl"
    append_record(p, {"a": "é"})
    with open(p, "ab") as fh:
        fh.write('{"a": "é'.encode()[:-1])  # a crash mid-character
    inode = p.stat().st_ino
    held = _lock(p)  # noqa: F841 - the first run's lock
    assert read_records(p) == [{"a": "é"}]
    assert read_records(p, repair=True) == [{"a": "é"}] and p.stat().st_ino == inode
    assert p.read_bytes() == '{"a":"é"}\n'.encode()
    with pytest.raises(SuiteError, match="another `bench measure` is appending to this file"):
        _lock(p)
    capsys.readouterr()


def test_a_smoke_run_never_writes_a_file_the_suite_reads(tmp_path, capsys, monkeypatch):
    """--max-steps refuses every records file of a list source.file, also when the suite is named by a relative path
    and --out by an absolute one (the guard compared a relative output path with an absolute --out)."""
    suite = make_suite(tmp_path, steps=3)
    suite.write_text(suite.read_text().replace("file: {path: out/t.jsonl}",
                                               "file: [{path: out/t.jsonl}, {path: out/more.jsonl}]"))
    monkeypatch.chdir(tmp_path)
    for out in (tmp_path / "out" / "t.jsonl", tmp_path / "out" / "more.jsonl", Path("out/more.jsonl")):
        assert main(["measure", "tiny.yaml", "--task", "t", "--n", "1", "--max-steps", "1", "--out", str(out),
                     "--no-progress"]) == 2
        assert "a smoke run's records never go to the suite's records file" in capsys.readouterr().err
        assert not out.exists()


def test_resume_after_kill_and_bench_run_on_the_measured_file(tmp_path, capsys):
    suite = make_suite(tmp_path, steps=20)
    out = tmp_path / "out" / "t.jsonl"
    proc = run_cli("measure", str(suite), "--task", "t", "--n", "5", "--no-progress")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    first = read_records(out)
    assert 1 <= len(first) < 5, "the run should have been killed after its first record"
    assert main(["measure", str(suite), "--task", "t", "--n", "5", "--no-progress"]) == 0
    assert f"{len(first)} of 5 (architecture, seed) runs already in" in capsys.readouterr().err
    rows = read_records(out)
    assert len(rows) == 5 and rows[: len(first)] == first  # nothing redone, nothing lost
    assert len({(r["arch_key"], r["seed"]) for r in rows}) == 5
    assert sorted(r["sample_index"] for r in rows) == [0, 1, 2, 3, 4]
    for r in rows:
        assert validate_record(r) == [], r
        assert r["status"] == "ok" and r["steps"] <= 20 and r["threads"] == 1
    # the measured file is a suite: bench run scores predictors on it
    assert main(["run", str(suite), "--no-progress", "--out", str(tmp_path / "report")]) == 0
    assert "params" in capsys.readouterr().out and (tmp_path / "report" / "results.json").exists()
    # and the summary reads it
    assert main(["measure", str(suite), "--task", "all", "--summary"]) == 0
    assert "| t | valid_chrf | 5 |" in capsys.readouterr().out


def test_a_failing_architecture_is_recorded_and_the_run_goes_on(tmp_path):
    # 3 heads do not divide qkv_dim 16: the model refuses those architectures
    suite = make_suite(tmp_path, heads="[2, 3]", steps=2)
    assert main(["measure", str(suite), "--task", "t", "--n", "4", "--no-progress"]) == 0
    rows = read_records(tmp_path / "out" / "t.jsonl")
    assert len(rows) == 4
    bad = [r for r in rows if r["status"] == "error"]
    good = [r for r in rows if r["status"] == "ok"]
    assert bad and good
    for r in bad:
        assert 3 in r["arch"]["decoder_ende_attention_heads"]
        assert "not divisible by 3 heads" in r["error"] and validate_record(r) == []
    assert all(validate_record(r) == [] for r in good)


def test_measure_one_record_matches_the_schema(tmp_path):
    task = load_suite(make_suite(tmp_path, steps=2)).task("t")
    prep = prepare(task)
    arch = sample_archs(task.space, 1)[0]
    rec = measure_one(prep, arch, seed=0, sample_index=0, progress=False)
    assert rec["status"] == "ok", rec.get("traceback")
    assert validate_record(rec) == []
    assert json.loads(json.dumps(rec)) == rec
    assert rec["vocab_size"] == len(prep.vocab) and rec["recipe_sha256"] == prep.recipe.sha256
    assert rec["params"] == rec["params_no_emb"] + rec["emb_params"]
    bad = dict(rec)
    del bad["valid_chrf"]
    bad["seed"] = "0"
    assert sorted(validate_record(bad)) == ["field 'seed' should be int, got str", "missing field 'valid_chrf'"]


def test_americasnlp_suite_loads_and_declares_its_splits():
    suite = load_suite(ROOT / "suites" / "americasnlp.yaml")
    assert [t.name for t in suite.tasks] == ["bzd-es", "es-bzd", "czn-es"]
    assert output_path(suite.task("bzd-es")) == ROOT / "measurements" / "americasnlp" / "v2" / "bzd-es.jsonl"
    assert output_path(suite.task("czn-es"), noise=True).name == "czn-es.noise.jsonl"
    for t in suite.tasks:
        assert set(t.targets) == {"valid_chrf", "test_chrf", "valid_bleu", "test_bleu", "valid_nll"}
        assert t.targets["valid_nll"].higher_is_better is False and t.targets["valid_chrf"].higher_is_better
    prep = prepare(suite.task("czn-es"))  # trains (or loads) the tokenizer; checks vocab_size
    sizes = {k: len(v) for k, v in prep.corpus.splits.items()}
    assert sizes == {"train": 357 + 299, "valid": 100, "test": 100}
    assert len(prep.vocab) == suite.task("czn-es").vocab_size


def test_refuses_to_mix_recipes_in_one_file(tmp_path, capsys):
    suite = make_suite(tmp_path, steps=2)
    assert main(["measure", str(suite), "--task", "t", "--n", "1", "--no-progress"]) == 0
    suite.write_text(suite.read_text().replace("max_steps: 2", "max_steps: 3"))
    assert main(["measure", str(suite), "--task", "t", "--n", "2", "--no-progress"]) == 2
    assert "line 1 was measured with recipe_sha256" in capsys.readouterr().err
    assert len(read_records(tmp_path / "out" / "t.jsonl")) == 1


def test_noise_runs_go_to_their_own_file_and_archs_file_is_honoured(tmp_path, capsys):
    suite = make_suite(tmp_path, steps=2)
    suite.write_text(suite.read_text().replace("    measure:\n", "    measure:\n      noise: {archs: 2, seeds: [1, 2]}\n"))
    assert main(["measure", str(suite), "--task", "t", "--noise", "--no-progress"]) == 0
    rows = read_records(tmp_path / "out" / "t.noise.jsonl")
    task = load_suite(suite).task("t")
    first = [a.key() for a in sample_archs(task.space, 2)]
    assert sorted((r["arch_key"], r["seed"]) for r in rows) == sorted((k, s) for k in first for s in (1, 2))
    assert not (tmp_path / "out" / "t.jsonl").exists()
    archs = tmp_path / "archs.jsonl"
    archs.write_text(json.dumps({"arch": rows[0]["arch"]}) + "\n")
    out = tmp_path / "custom.jsonl"
    assert main(["measure", str(suite), "--task", "t", "--archs", str(archs), "--seeds", "5,6", "--out", str(out),
                 "--no-progress"]) == 0
    assert [(r["arch_key"], r["seed"]) for r in read_records(out)] == [(rows[0]["arch_key"], 5), (rows[0]["arch_key"], 6)]
