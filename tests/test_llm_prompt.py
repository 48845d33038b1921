"""LLM-PP prompts: byte-exact against the paper's format (llmas gpt_scorer.py), templates, probes, parsing."""
import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from bench.llm.client import parse_value
from bench.llm.prompt import RENAMED, TEMPLATES, PromptBuilder, PromptError, sample_indices
from bench.space import HAT_NAMES
from bench.suite import SuiteError, load_suite

ROOT = Path(__file__).resolve().parent.parent
LLMAS = Path(os.environ["BENCH_DATA_DIR"]) / "UBC-NLP/llmas/data"


@pytest.fixture(scope="module")
def wmt14():
    return load_suite(ROOT / "suites/wmt14.yaml")


def _rows(seed, task, part):
    return [json.loads(x)["scratch"] for x in (LLMAS / f"train-test_seedarchs/{seed}/{task}/{part}.jsonl").read_text().splitlines()]


def test_demo_block_and_query_byte_exact_no_instruction(wmt14):
    """The demonstrations-only template, rebuilt here from the raw JSONL exactly as gpt_scorer does."""
    task = wmt14.task("wmt14-en-de")
    train, test = _rows(123, "wmt14ende", "train"), _rows(123, "wmt14ende", "test")
    demos = ""
    for r in train[:10]:
        demos += "\n".join(r["arch_info"]) + "\n" + "GFLOPS: %.1f" % (r["total_flops"] / 1e9) + "\n"
        demos += f"BLEU: {r['valid_BLEU']:.2f}" + "\n\n"
    q = test[0]
    expected = demos.strip() + "\n\n" + "\n".join(q["arch_info"]) + "\n" + "GFLOPS: %.1f\n" % (q["total_flops"] / 1e9) + "BLEU: "
    pb = PromptBuilder(task, "valid_bleu", 123, template="gpt_scorer_no_instruction").demos_from_split()
    assert pb.query(task.split(123)[1][0].arch) == expected
    # the known first demonstration of wmt14ende seed 123
    assert expected.split("\n")[10:12] == ["GFLOPS: 2.7", "BLEU: 24.30"]


def test_full_prompt_structure(wmt14):
    task = wmt14.task("wmt14-en-de")
    raw = (LLMAS / "instruction_templates/wmt14ende/gpt_scorer_concentrate_statement").read_bytes().decode()
    head, rest = raw.split("$$$task_examples$$$")
    middle = rest.split("$$$seedarch_examples$$$")[0]
    pb = PromptBuilder(task, "valid_bleu", 123).demos_from_split()
    prompt = pb.query(task.split(123)[1][0].arch)
    assert prompt.startswith(head + "Example 1:\nInput: ")
    assert "$$$" not in prompt
    ex = prompt[len(head):prompt.index(middle)]
    assert ex.count("Example ") == 5 and not ex.endswith("\n") and "\nOutput: " in ex
    assert prompt.index(middle) > 0 and prompt.endswith("\nBLEU: ")
    demo = prompt[prompt.index(middle) + len(middle):]
    assert demo.startswith("encoder-embed-dim-subtransformer: ") and demo.count("BLEU: ") == 11


def test_task_example_sampling_reproduces_the_paper():
    """random.seed(seed); distinct randint(0, N-1); ascending -- the indices the spec verified for HF wmt16."""
    assert sample_indices(4548885, 5, 123) == [439257, 731374, 2236015, 2245438, 3416191]
    assert sample_indices(4548885, 5, 456) == [338422, 3276667, 3650800, 3769969, 3910783]
    assert sample_indices(4548885, 5, 789) == [299940, 1121832, 3278856, 4015317, 4117527]


@pytest.mark.parametrize("suite,taskname", [("wmt14", "wmt14-en-de"), ("wmt14", "wmt14-en-fr"), ("wmt19", "wmt19-en-de")])
def test_every_template_renders(suite, taskname):
    task = load_suite(ROOT / f"suites/{suite}.yaml").task(taskname)
    arch = task.split(task.seeds[0])[1][0].arch
    for name in TEMPLATES:
        pb = PromptBuilder(task, "valid_bleu", task.seeds[0], template=name, constraint=3.0).demos_from_split()
        text = pb.prefix if name == "default_flops" else pb.query(arch)
        assert "$$$" not in text, name
        if name != "default_flops":
            anon = PromptBuilder(task, "valid_bleu", task.seeds[0], template=name, probe="both").demos_from_split()
            assert not any(w in anon.query(arch) for w in ("WMT", "English", "German", "French", "-subtransformer"))
    gen = PromptBuilder(task, "valid_bleu", task.seeds[0], template="default_flops", constraint=3.0).demos_from_split()
    assert "exactly 3.0 GFLOPs" in gen.prefix and gen.prefix.endswith("last three layers)\n")
    with pytest.raises(PromptError, match="generator"):
        gen.query(arch)


def test_demos_knob_latency_and_probes(wmt14):
    task = wmt14.task("wmt14-en-de")
    arch = task.split(123)[1][0].arch
    assert PromptBuilder(task, "valid_bleu", 123, demos=3).demos_from_split().query(arch).count("\nBLEU: ") == 4
    lat = PromptBuilder(task, "latency_ms", 123).demos_from_split().query(arch)
    first = task.split(123)[0][0].targets["latency_ms"]
    assert lat.endswith("\nLatency: ") and "BLEU: " not in lat.split("Hyperparameter definition:")[1]
    assert f"Latency: {first:.2f}\n" in lat and "inference latency in milliseconds" in lat
    anon = PromptBuilder(task, "valid_bleu", 123, probe="anonymised").demos_from_split().query(arch)
    for word in ("WMT", "English", "German", "Example 1:"):
        assert word not in anon
    assert "\n4. You should concentrate" in anon  # instructions renumbered after dropping the examples
    ren = PromptBuilder(task, "valid_bleu", 123, probe="renamed").demos_from_split().query(arch)
    assert not any(n in ren for n in HAT_NAMES.values()) and "hparam-10: [" in ren and "WMT'14" in ren
    both = PromptBuilder(task, "valid_bleu", 123, probe="both").demos_from_split().query(arch)
    assert "WMT" not in both and "hparam-1: " in both and len(set(RENAMED.values())) == 10


def test_pool_arch_gflops_computed_and_flops_vocab(wmt14):
    enfr = wmt14.task("wmt14-en-fr")
    a = enfr.pool[0]
    assert enfr.lookup(a) is None
    q = PromptBuilder(enfr, "valid_bleu", 123).demos_from_split().query(a)
    q_paper = PromptBuilder(enfr, "valid_bleu", 123, flops_vocab=32768).demos_from_split().query(a)
    assert q.rsplit("GFLOPS: ", 1)[1] != q_paper.rsplit("GFLOPS: ", 1)[1]  # the paper's En-De-vocab quirk


def test_llm_mapping_errors(tmp_path, wmt14):
    text = (ROOT / "suites/wmt14.yaml").read_text().replace("      dataset: \"WMT'14 English to German\"\n",
                                                             "      datset: x\n", 1)
    p = tmp_path / "bad.yaml"
    p.write_text(text.replace("reference: reported/jawahar2024.yaml\n", ""))
    with pytest.raises(SuiteError, match=r"tasks\[0\]\.llm\.datset: unknown key; allowed keys: \['dataset'"):
        load_suite(p)  # refused when the suite loads (bench validate), not when llm-pp runs
    with pytest.raises(PromptError, match="probe='x' is not allowed"):
        PromptBuilder(wmt14.task("wmt14-en-de"), "valid_bleu", 123, probe="x")


def test_prompt_command_prints_the_exact_prompt(wmt14):
    from bench.cli import main

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["prompt", str(ROOT / "suites/wmt14.yaml"), "--task", "wmt14-en-de", "--seed", "456", "--arch", "3"]) == 0
    task = wmt14.task("wmt14-en-de")
    assert buf.getvalue() == PromptBuilder(task, "valid_bleu", 456).demos_from_split().query(task.split(456)[1][3].arch)
    assert buf.getvalue().endswith("BLEU: ")  # the exact bytes sent, no newline added


@pytest.mark.parametrize("text,strict,lenient", [
    ("25.3", 25.3, 25.3), (" 25.3 points", 25.3, 25.3), ("25.3.", None, 25.3), ("BLEU: 25.3", None, 25.3),
    ("", None, None), ("about twenty", None, None), ("nan", None, None), ("inf", None, None), ("-1e1", -10.0, -10.0),
])
def test_parse_rules(text, strict, lenient):
    assert parse_value(text, "strict") == strict
    assert parse_value(text, "lenient") == lenient
