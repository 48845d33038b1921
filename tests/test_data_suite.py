"""Pinned data, offline behaviour, and suite validation errors."""
import shutil
import textwrap
import urllib.error
import urllib.request

import pytest

from bench import data
from bench.data import DataError
from bench.suite import SuiteError, load_suite

TRAIN = "UBC-NLP/llmas/data/train-test_seedarchs/123/wmt14ende/train.jsonl"  # shipped in the package
POOL = "UBC-NLP/llmas/data/bleu_predictor_data/111/123/wmt14ende/test.jsonl"  # pinned, fetched, not shipped


def test_mirror_file_is_verified(monkeypatch):
    p = data.fetch(TRAIN)
    assert p.exists() and data.known_sha256(TRAIN) == data.pins()[TRAIN].sha256


def test_checksum_mismatch_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / TRAIN
    bad.parent.mkdir(parents=True)
    shutil.copy(data.fetch(TRAIN), bad)
    with open(bad, "a") as fh:
        fh.write("tampered\n")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="checksum mismatch.*refused"):
        data.fetch(TRAIN)


def test_corrupt_cached_download_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    cached = tmp_path / "data" / POOL
    cached.parent.mkdir(parents=True)
    cached.write_text("not the file\n")
    with pytest.raises(DataError, match="checksum mismatch"):
        data.fetch(POOL)


def test_offline_without_mirror_names_file_and_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as e:
        data.fetch(POOL)
    msg = str(e.value)
    assert POOL in msg and "BENCH_DATA_DIR" in msg and "raw.githubusercontent.com/UBC-NLP/llmas/35980b8" in msg
    assert not list(tmp_path.rglob(".part-*"))  # no partial file left behind


def test_download_verifies_and_caches(tmp_path, monkeypatch):
    """The download path (mirror unset): bytes from the pinned URL land in the cache only if the sha matches."""
    src = data.fetch(POOL).read_bytes()
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    seen = []

    class Resp:
        def __init__(self, body):
            self.body = body

        def read(self, n=-1):
            out, self.body = self.body[:n], self.body[n:]
            return out

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: (seen.append(url), Resp(src))[1])
    p = data.fetch(POOL)
    assert p.read_bytes() == src and seen == [data.pins()[POOL].url]
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Resp(b"evil"))
    (tmp_path / "data" / POOL).unlink()
    with pytest.raises(DataError, match="checksum mismatch"):
        data.fetch(POOL)
    assert not (tmp_path / "data" / POOL).exists()


def test_missing_from_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="missing from the offline mirror"):
        data.fetch(POOL)


def _suite(tmp_path, body):
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent(body))
    return p


SPACE = """
    search_space:
      encoder_embed_dim: [512]
      decoder_embed_dim: [512]
      encoder_ffn_embed_dim: [1024]
      decoder_ffn_embed_dim: [1024]
      encoder_layer_num: [1]
      decoder_layer_num: [1, 2]
      encoder_self_attention_heads: [4]
      decoder_self_attention_heads: [4]
      decoder_ende_attention_heads: [4]
      decoder_arbitrary_ende_attn: [-1]
"""


@pytest.mark.parametrize("body,expect", [
    ("name: x\ntasks: []\n", "tasks: must be a non-empty list"),
    ("name: x\nbogus: 1\ntasks: [{name: a}]\n", "bogus: unknown key; allowed keys"),
    ("name: x\ntasks:\n  - name: a\n    source: {kind: nope}\n    search_space: {}\n",
     "tasks[0].search_space: missing dimensions"),
    ("name: x\ngate: {kendall: -1}\ntasks: [{name: a}]\n", "gate.kendall: tolerance must be a non-negative number"),
    ("name: x\ntasks:\n  - name: a\n    search_space: nospace\n    source: {kind: llmas, task: wmt14ende}\n",
     "tasks[0].search_space: 'nospace' is not defined"),
    ("name: x\ntasks: [\n", "not valid YAML"),
])
def test_suite_errors_name_file_key_and_allowed(tmp_path, body, expect):
    p = _suite(tmp_path, body)
    with pytest.raises(SuiteError) as e:
        load_suite(p)
    assert str(p) in str(e.value) and expect in str(e.value)


def test_bad_source_kind_lists_allowed(tmp_path):
    p = _suite(tmp_path, "name: x\ntasks:\n  - name: a\n    source: {kind: nope}" + SPACE)
    with pytest.raises(SuiteError, match=r"tasks\[0\]\.source\.kind: 'nope' is not allowed; allowed values: \[.*'llmas'"):
        load_suite(p)


def test_bad_llmas_task_lists_allowed(tmp_path):
    p = _suite(tmp_path, "name: x\ntasks:\n  - name: a\n    source: {kind: llmas, task: wmt99}" + SPACE)
    with pytest.raises(SuiteError, match=r"source\.task: 'wmt99' is not allowed; allowed values: \['wmt14ende'"):
        load_suite(p)


def test_bad_target_lists_allowed(tmp_path):
    p = _suite(tmp_path, "name: x\ntasks:\n  - name: a\n    targets: [bleu]\n"
                         "    source: {kind: llmas, task: wmt14ende}" + SPACE)
    with pytest.raises(SuiteError, match=r"targets: 'bleu' is not allowed; allowed values: \['latency_ms', 'test_bleu'"):
        load_suite(p)


def test_data_outside_space_is_rejected_with_field(tmp_path):
    # a 1-layer space cannot hold the released 6-layer encoders
    p = _suite(tmp_path, "name: x\ntasks:\n  - name: a\n    source: {kind: llmas, task: wmt14ende}" + SPACE)
    suite = load_suite(p)
    with pytest.raises(SuiteError, match=r"s.yaml: task a: UBC-NLP/llmas.*outside the search space.*encoder_layer_num = 6; allowed choices: \[1\]"):
        suite.tasks[0].records  # noqa: B018 - the property access is what raises


def test_user_records_suite(tmp_path):
    """A suite is YAML only: a user's JSONL of measured archs runs through the whole harness."""
    import json

    from bench.runner import run_suite

    rows = []
    for i, (nd, ffn) in enumerate([(1, 1024), (2, 1024)] * 6):
        arch = {"encoder_embed_dim": 512, "encoder_layer_num": 1, "encoder_ffn_embed_dim": [1024],
                "encoder_self_attention_heads": [4], "decoder_embed_dim": 512, "decoder_layer_num": nd,
                "decoder_ffn_embed_dim": [ffn] * nd, "decoder_self_attention_heads": [4] * nd,
                "decoder_ende_attention_heads": [4] * nd, "decoder_arbitrary_ende_attn": [-1] * nd}
        rows.append({"arch": arch, "bleu": 20 + nd + 0.1 * i})
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    p = _suite(tmp_path, "name: mine\npredictors: [mean, params, linear]\ntasks:\n  - name: a\n    vocab_size: 1000\n"
                         "    source: {kind: records, file: {path: m.jsonl}, targets: {bleu: {unit: BLEU}}, "
                         "train_size: 4, seeds: [0, 1], duplicates: keep}" + SPACE)
    res = run_suite(load_suite(p), progress=False).to_json()
    kt = {r["predictor"]: r for r in res["results"] if r["metric"] == "kendall"}
    assert set(kt) == {"mean", "params", "linear"} and set(kt["params"]["per_seed"]) == {"0", "1"}
    assert kt["mean"]["mean"] != kt["mean"]["mean"]  # a constant has no ranking: NaN, shown as "–"
    assert kt["params"]["mean"] > 0.3  # deeper decoders score higher here, and have more params


def _arch(nd):
    return {"encoder_embed_dim": 512, "encoder_layer_num": 1, "encoder_ffn_embed_dim": [1024],
            "encoder_self_attention_heads": [4], "decoder_embed_dim": 512, "decoder_layer_num": nd,
            "decoder_ffn_embed_dim": [1024] * nd, "decoder_self_attention_heads": [4] * nd,
            "decoder_ende_attention_heads": [4] * nd, "decoder_arbitrary_ende_attn": [-1] * nd}


def test_records_from_several_files_averaged_over_seeds(tmp_path):
    """duplicates: mean turns each architecture's seed repeats (in one file or several) into one record."""
    import json
    import math

    write = lambda name, rows: (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write("s0.jsonl", [{"arch": _arch(n), "seed": 0, "bleu": 20.0 + n, "nll": None} for n in (1, 2)])
    write("s1.jsonl", [{"arch": _arch(1), "seed": 1, "bleu": 23.0, "nll": 4.0}])
    body = ("name: mine\ntasks:\n  - name: a\n    vocab_size: 1000\n    source: {kind: records, file: [{path: s0.jsonl}, "
            "{path: s1.jsonl}], targets: {bleu: {unit: BLEU}, nll: {higher_is_better: false}}, train_size: 1, "
            "drop_missing: true, duplicates: %s}" + SPACE)
    task = load_suite(_suite(tmp_path, body % "mean")).tasks[0]
    recs = {r.arch.decoder_layer_num: r for r in task.records}
    assert len(task.records) == 2 and [r.targets["bleu"] for r in task.records] == [22.0, 22.0]
    assert recs[1].extras["seeds"] == [0, 1] and recs[2].extras["repeats"] == 1
    assert recs[1].targets["nll"] == 4.0 and math.isnan(recs[2].targets["nll"])  # the mean of the finite values
    assert any("mean over each architecture's repeated runs" in n and "1 with 1, 1 with 2" in n
               for n in task.data.notes)
    assert len(task.data.files) == 2
    assert len(load_suite(_suite(tmp_path, body % "keep")).tasks[0].records) == 3
    only0 = load_suite(_suite(tmp_path, body.replace("train_size: 1,", "train_size: 1, filter: {seed: [0]},")
                              % "mean")).tasks[0]  # a list in source.filter: any of its values
    assert [r.targets["bleu"] for r in only0.records] == [21.0, 22.0]
    with pytest.raises(SuiteError, match=r"s1.jsonl: line 1: duplicate architecture \(same as \S*s0.jsonl: line 1\).*duplicates: keep \(or mean\)"):
        load_suite(_suite(tmp_path, body % "error")).tasks[0].records  # noqa: B018
    with pytest.raises(SuiteError, match=r"source.duplicates.*'median' is not allowed; allowed values: "
                                         r"\['error', 'keep', 'mean'\]"):
        load_suite(_suite(tmp_path, body % "median"))
    with pytest.raises(SuiteError, match=r"source.filter: must map a column to a value or a list of values"):
        load_suite(_suite(tmp_path, body.replace("train_size: 1,", "train_size: 1, filter: [seed],") % "mean"))
    with pytest.raises(SuiteError, match=r"source.filter.seed: an empty list keeps no row"):
        load_suite(_suite(tmp_path, body.replace("train_size: 1,", "train_size: 1, filter: {seed: []},") % "mean"))
    with pytest.raises(SuiteError, match=r"source.file: an empty list"):
        load_suite(_suite(tmp_path, body.replace("[{path: s0.jsonl}, {path: s1.jsonl}]", "[]") % "mean"))


def test_a_seed_mean_refuses_a_repeated_seed_and_drops_per_run_extras(tmp_path):
    """duplicates: mean averages distinct seeds: the same (architecture, seed) twice is an error naming both lines;
    the averaged record keeps only what its rows share; a missing target is counted in rows, naming every file."""
    import json

    write = lambda name, rows: (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write("s0.jsonl", [{"arch": _arch(n), "seed": 0, "bleu": 20.0 + n, "wall_seconds": 10.0 + n, "params": n}
                       for n in (1, 2)])
    write("s1.jsonl", [{"arch": _arch(n), "seed": 1, "bleu": 22.0 + n, "wall_seconds": 30.0, "params": n}
                       for n in (1, 2)])
    body = ("name: mine\ntasks:\n  - name: a\n    vocab_size: 1000\n    source: {kind: records, file: [{path: s0.jsonl}, "
            "{path: %s}], targets: {bleu: {unit: BLEU}}, train_size: 1, duplicates: mean}" + SPACE)
    recs = load_suite(_suite(tmp_path, body % "s1.jsonl")).tasks[0].records
    assert [r.targets["bleu"] for r in recs] == [22.0, 23.0]
    assert recs[0].extras["params"] == 1 and recs[0].extras["seeds"] == [0, 1]
    assert "wall_seconds" not in recs[0].extras and "seed" not in recs[0].extras  # one seed's, not the mean's
    write("again.jsonl", [{"arch": _arch(2), "seed": 0, "bleu": 30.0}])
    with pytest.raises(SuiteError, match=r"again.jsonl: line 1: architecture and seed 0 repeat .*s0.jsonl: line 2; "
                                         r"a seed mean .* averages distinct seeds"):
        load_suite(_suite(tmp_path, body % "again.jsonl")).tasks[0].records  # noqa: B018
    write("gap.jsonl", [{"arch": _arch(1), "seed": 1, "bleu": None}])
    with pytest.raises(SuiteError, match=r"s0.jsonl, .*gap.jsonl: target bleu .* in 1 of 3 rows"):
        load_suite(_suite(tmp_path, body % "gap.jsonl")).tasks[0].records  # noqa: B018


def test_noise_ceiling_seed_twin_with_a_list_file_and_a_seed_mean(tmp_path):
    """twin=seed reads *.noise.jsonl beside the first records file, also where source.file is a list; where the
    target is a seed mean, the second seed is inside it, so twin=seed is refused and auto falls back to split."""
    import json

    from predictors.base import Context
    from predictors.registry import create

    write = lambda name, rows: (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write("r.jsonl", [{"arch": _arch(n), "seed": 0, "valid_bleu": 20.0 + n, "test_bleu": 19.0 + n} for n in (1, 2)])
    write("r.noise.jsonl", [{"arch": _arch(n), "seed": 1, "valid_bleu": 25.0 + n, "test_bleu": 9.0} for n in (1, 2)])
    body = ("name: mine\ntasks:\n  - name: a\n    vocab_size: 1000\n    source: {kind: records, file: %s, "
            "targets: {valid_bleu: {unit: BLEU}, test_bleu: {unit: BLEU}}, train_size: 1%s}" + SPACE)

    def ceiling(file, extra, twin):
        task = load_suite(_suite(tmp_path, body % (file, extra))).tasks[0]
        p = create(f"noise-ceiling[twin={twin}]", Context(task, "valid_bleu", 0))
        why = p.supports(task, "valid_bleu")
        return why, (None if why else list(p.predict([r.arch for r in task.records])))

    assert ceiling("{path: r.jsonl}", "", "seed") == (None, [26.0, 27.0])
    assert ceiling("[{path: r.jsonl}]", "", "seed") == (None, [26.0, 27.0])  # a list: its first file's twins
    mean = ", duplicates: mean, filter: {seed: [0, 1]}"
    why, _ = ceiling("[{path: r.jsonl}, {path: r.noise.jsonl}]", mean, "seed")
    assert "mean over seeds (source.duplicates: mean)" in why and "use twin=split" in why
    assert ceiling("[{path: r.jsonl}, {path: r.noise.jsonl}]", mean, "auto") == (None, [14.5, 15.0])  # mean test_bleu


def test_seed_noise_beside_the_spread_is_a_leaderboard_note(tmp_path):
    """A records file with a *.noise.jsonl twin: each target's spread / pooled seed std, bold below 3."""
    import json

    write = lambda name, rows: (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write("m.jsonl", [{"arch": _arch(1), "seed": 0, "bleu": 20.0}, {"arch": _arch(2), "seed": 0, "bleu": 21.0}])
    write("m.noise.jsonl", [{"arch": _arch(1), "seed": s, "bleu": b} for s, b in ((1, 22.0), (2, 24.0))])
    body = ("name: mine\ntasks:\n  - name: a\n    vocab_size: 1000\n    source: {kind: records, file: {path: m.jsonl}, "
            "targets: {bleu: {unit: BLEU}}, train_size: 1}" + SPACE)
    task = load_suite(_suite(tmp_path, body)).tasks[0]
    note = next(n for n in task.data.notes if n.startswith("Spread across the 2 architectures against seed noise"))
    assert "1 architectures with 2+ seeds in m.noise.jsonl" in note and "`bleu` 0.707 / 2 = **0.4**" in note
    assert str(tmp_path / "m.noise.jsonl") in task.data.files  # its hash goes into the run's provenance
    write("m.noise.jsonl", [{"arch": _arch(1), "seed": 1, "bleu": 20.1}])
    note = next(n for n in load_suite(_suite(tmp_path, body)).tasks[0].data.notes if n.startswith("Spread"))
    assert "`bleu` 0.707 / 0.0707 = 10.0" in note  # not bold: seed noise is well below the spread


def test_seed_noise_of_a_seed_mean_pools_every_measured_seed(tmp_path):
    """A seed-mean target over seeds 0 and 1: its noise is the seed std pooled over every seed measured (seed 2
    too, as `bench measure --summary` pools it) over sqrt(2); the leaderboard once left seed 2 out and disagreed."""
    import json
    import math
    import statistics

    write = lambda name, rows: (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))  # noqa: E731
    write("m.jsonl", [{"arch": _arch(n), "seed": 0, "bleu": 20.0 + n} for n in (1, 2)])
    write("m.noise.jsonl", [{"arch": _arch(n), "seed": 1, "bleu": 21.0 + n} for n in (1, 2)]
          + [{"arch": _arch(1), "seed": 2, "bleu": 30.0}])
    body = ("name: mine\ntasks:\n  - name: a\n    vocab_size: 1000\n    source: {kind: records, file: [{path: m.jsonl}, "
            "{path: m.noise.jsonl}], filter: {seed: [0, 1]}, duplicates: mean, targets: {bleu: {unit: BLEU}}, "
            "train_size: 1}" + SPACE)
    task = load_suite(_suite(tmp_path, body)).tasks[0]
    assert [r.targets["bleu"] for r in task.records] == [21.5, 22.5]  # seed 2 is not in the target
    pooled = math.sqrt(statistics.fmean([statistics.variance([21.0, 22.0, 30.0]), 0.5]))
    note = next(n for n in task.data.notes if n.startswith("Spread across the 2 architectures"))
    assert f"`bleu` 0.707 / {pooled / math.sqrt(2):.3g} = " in note and "2 architectures with 2+ seeds" in note


def test_shipped_files_need_no_mirror_and_no_network(tmp_path, monkeypatch):
    """The default suites' labelled files ship in the package: found with no mirror, no cache and no network."""
    monkeypatch.delenv("BENCH_DATA_DIR")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    p = data.fetch(TRAIN)
    assert data.SHIPPED in p.parents and data.known_sha256(TRAIN) == data.pins()[TRAIN].sha256
    assert (data.SHIPPED / "UBC-NLP/llmas/LICENSE").read_text().startswith("MIT License")
    shipped = [f for f in data.SHIPPED.rglob("*") if f.is_file() and f.name not in ("LICENSE", "PROVENANCE.md")]
    assert shipped and all(data.sha256_of(f) == data.pins()[str(f.relative_to(data.SHIPPED))].sha256 for f in shipped)
    assert sum(f.stat().st_size for f in shipped) < 1_000_000
    with pytest.raises(DataError, match="BENCH_OFFLINE"):  # a large file: refused loudly, not downloaded
        data.fetch(POOL)


def test_tampered_shipped_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_DATA_DIR")
    fake = tmp_path / "shipped"
    (fake / TRAIN).parent.mkdir(parents=True)
    (fake / TRAIN).write_text("tampered\n")
    monkeypatch.setattr(data, "SHIPPED", fake)
    with pytest.raises(DataError, match="checksum mismatch"):
        data.fetch(TRAIN)


def test_checksum_message_for_own_file_does_not_say_delete(tmp_path):
    own = tmp_path / "mine.jsonl"
    own.write_text("{}\n")
    with pytest.raises(DataError) as e:
        data.resolve({"path": "mine.jsonl", "sha256": "0" * 64}, tmp_path)
    assert str(own) in str(e.value) and "delete" not in str(e.value)
