"""LLM-PP on a task the paper released no prompt for: the project's own template, chrF demonstrations."""
import re

import pytest

from bench.llm.prompt import PromptBuilder, PromptError, gflops
from bench.suite import load_suite


def test_americasnlp_prompt_uses_local_template_and_chrf(root):
    task = load_suite(root / "suites/americasnlp.yaml").task("bzd-es")
    pb = PromptBuilder(task=task, target="valid_chrf", seed=0).demos_from_split()
    train, test = task.split(0)
    prompt = pb.prefix + pb.query(test[0].arch)[len(pb.prefix):]
    assert "AmericasNLP 2023 Bribri to Spanish" in prompt and "BLEU" not in prompt and "WMT" not in prompt
    assert prompt.endswith("\nchrF: ") and prompt.count("\nchrF: ") == min(10, len(train)) + 1
    assert f"chrF: {train[0].targets['valid_chrf']:.2f}" in prompt
    # tiny models keep three decimals, not the paper's "0.0": every GFLOPS line is 0.ddd, and not all are 0.000
    lines = re.findall(r"\nGFLOPS: (\S+)\n", prompt)
    assert len(lines) == min(10, len(train)) + 1 and all(re.fullmatch(r"0\.\d{3}", v) for v in lines)
    assert lines[-1] == f"{gflops(task, test[0].arch):.3f}" != "0.000"
    assert "Example 5:\nInput: " in prompt  # five real sentence pairs from the Bribri train split


def test_missing_local_template_names_what_exists(root):
    task = load_suite(root / "suites/americasnlp.yaml").task("czn-es")
    pb = PromptBuilder(task=task, target="valid_chrf", seed=0, template="gpt_scorer_gigaflops")
    with pytest.raises(PromptError, match="gpt_scorer_gigaflops' not found.*gpt_scorer_concentrate_statement"):
        pb.prefix  # noqa: B018 - the property access is what raises
    named = PromptBuilder(task=task, target="valid_chrf", seed=0, template="gpt_scorer_concentrate_statement")
    assert "Chatino" in named.prefix  # the template the message names does exist and loads
