"""Typed task blocks (bench/blocks.py): each is checked when the suite loads, so `bench validate` refuses a typo
with the suite's error shape (file: key: what is wrong; allowed), and a good block comes back typed."""
from pathlib import Path

import pytest

from bench.cli import main
from bench.suite import SuiteError, load_suite

ROOT = Path(__file__).resolve().parents[1]
WMT14 = (ROOT / "suites/wmt14.yaml").read_text().replace("reference: reported/jawahar2024.yaml\n", "")
RECORDS = """
name: t
predictors: [mean]
tasks:
  - name: t
    search_space: {encoder_embed_dim: [512], decoder_embed_dim: [512], encoder_layer_num: [6],
                   decoder_layer_num: [1, 2], encoder_ffn_embed_dim: [1024], decoder_ffn_embed_dim: [1024],
                   encoder_self_attention_heads: [4], decoder_self_attention_heads: [4],
                   decoder_ende_attention_heads: [4], decoder_arbitrary_ende_attn: [-1]}
    vocab_size: 1000
    source: {kind: records, file: {path: r.jsonl}, targets: {chrf: {column: chrf, unit: chrF}}, train_size: 1}
"""
MEASURE = """    measure:
      corpus:
        src_lang: a
        tgt_lang: b
        train: [{src: x.a, tgt: x.b}, {src: y.a, tgt: y.b, lines: [0, 10]}]
        valid: {src: v.a, tgt: v.b}
        test: {src: t.a, tgt: t.b}
      tokenizer: {kind: bpe, vocab_size: 1000}
      recipe: {max_steps: 10}
      sample_seed: 3
      records: out.jsonl
"""


def _suite(tmp_path, text):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def _validate(path, capsys) -> tuple[int, str]:
    rc = main(["validate", str(path), "--no-data"])
    return rc, capsys.readouterr().err


def test_llm_block_typo_is_refused_by_validate(tmp_path, capsys):
    bad = _suite(tmp_path, WMT14.replace("      dataset: \"WMT'14 English to German\"\n", "      datset: x\n", 1))
    rc, err = _validate(bad, capsys)
    assert rc == 2
    assert err.startswith(f"error: {bad}: tasks[0].llm.datset: unknown key; allowed keys: ['dataset', 'examples',")
    task = load_suite(_suite(tmp_path, WMT14)).task("wmt14-en-de")
    assert task.llm.templates == "UBC-NLP/llmas/data/instruction_templates/wmt14ende"
    assert task.llm.n_examples == 5 and task.llm.dataset == "WMT'14 English to German"


@pytest.mark.parametrize("block,expect", [
    ("llm: {templates: x, examples: {source: a, n: 5}}", r"tasks\[0\]\.llm\.examples: must be a mapping"),
    ("llm: {templates: x, flops_vocab: -1}", r"tasks\[0\]\.llm\.flops_vocab: must be a positive integer"),
    ("llm: {examples: {source: a, target: b}}", r"tasks\[0\]\.llm\.templates: required"),
])
def test_llm_block_values(tmp_path, block, expect):
    with pytest.raises(SuiteError, match=expect):
        load_suite(_suite(tmp_path, RECORDS + f"    {block}\n"))


def test_proxies_block(tmp_path, capsys):
    rc, err = _validate(_suite(tmp_path, RECORDS + "    proxies: {src: a.en, tg: a.de}\n"), capsys)
    assert rc == 2 and "tasks[0].proxies.tg: unknown key; allowed keys: ['src', 'tgt']" in err
    with pytest.raises(SuiteError, match=r"tasks\[0\]\.proxies\.tgt: required key missing"):
        load_suite(_suite(tmp_path, RECORDS + "    proxies: {src: a.en}\n"))
    task = load_suite(_suite(tmp_path, RECORDS + "    proxies: {src: a.en, tgt: a.de}\n")).tasks[0]
    assert (task.proxies.src, task.proxies.tgt) == ("a.en", "a.de")


def test_latency_block(tmp_path, capsys):
    rc, err = _validate(_suite(tmp_path, RECORDS + "    latency: {lat_nrom: 200}\n"), capsys)
    assert rc == 2 and "tasks[0].latency.lat_nrom: unknown key; allowed keys: ['device', 'hat_task', 'lat_norm']" in err
    with pytest.raises(SuiteError, match=r"tasks\[0\]\.latency\.lat_norm: must be a positive number"):
        load_suite(_suite(tmp_path, RECORDS + "    latency: {lat_norm: -1}\n"))
    with pytest.raises(SuiteError, match=r"tasks\[0\]\.latency\.hat_task: 'wmt15' is not allowed; allowed values: "
                                         r"\['wmt14ende'"):
        load_suite(_suite(tmp_path, RECORDS + "    latency: {hat_task: wmt15}\n"))
    task = load_suite(_suite(tmp_path, RECORDS + "    latency: {hat_task: wmt14ende, device: cpu_xeon, lat_norm: 300}\n")).tasks[0]
    assert task.latency.lat_norm == 300.0 and task.latency.device == "cpu_xeon"
    assert load_suite(_suite(tmp_path, RECORDS)).tasks[0].latency is None


def test_measure_block(tmp_path, capsys):
    task = load_suite(_suite(tmp_path, RECORDS + MEASURE)).tasks[0]
    assert task.measure.sample_seed == 3 and task.measure.recipe == {"max_steps": 10}
    assert task.measure.records == "out.jsonl" and task.measure.tokenizer["vocab_size"] == 1000
    rc, err = _validate(_suite(tmp_path, RECORDS + MEASURE.replace("tokenizer: {kind", "tokeniser: {kind")), capsys)
    assert rc == 2 and "tasks[0].measure.tokeniser: unknown key; allowed keys: ['corpus', 'noise'," in err
    for old, new, expect in [
        ("        valid: {src: v.a, tgt: v.b}\n", "", r"measure\.corpus\.valid: required key missing"),
        ("{src: y.a, tgt: y.b, lines", "{src: y.a, tgt: y.b, line", r"measure\.corpus\.train\[1\]\.line: unknown key"),
        ("vocab_size: 1000}", "vocab_size: many}", r"measure\.tokenizer\.vocab_size: must be a positive integer"),
        ("records: out.jsonl", "records: out.csv", r"measure\.records: must be a path ending in \.jsonl"),
        ("sample_seed: 3", "sample_seed: x", r"measure\.sample_seed: must be an integer"),
    ]:
        with pytest.raises(SuiteError, match=expect):
            load_suite(_suite(tmp_path, RECORDS + MEASURE.replace(old, new)))


def test_shipped_suites_have_well_formed_blocks():
    for path in sorted((ROOT / "suites").glob("*.yaml")):
        for task in load_suite(path).tasks:  # loads without error: every block typed
            assert task.llm is None or task.llm.templates
