"""The paper's LLM-PP prompt, rebuilt byte-for-byte from the released templates (llmas ``gpt_scorer.py``).

``prompt = template`` with ``$$$task_examples$$$`` (5 seeded sentence pairs) and ``$$$seedarch_examples$$$``
(demonstrations: 10 arch_info lines, ``GFLOPS: %.1f``, ``BLEU: %.2f``, blank line; stripped) replaced, then each
query appends ``"\\n\\n" + arch_info + "\\nGFLOPS: %.1f\\nBLEU: "`` and is sent as one user message
(../shared/docs/paper-system.md §1.3, §2.3-2.5).  A task's ``llm:`` mapping in the suite names the template
folder and the file of task sentence pairs.  Two probes (``anonymised``, ``renamed``) rewrite the prompt to
test memorisation; the ``latency`` variant asks for milliseconds instead of BLEU.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .. import data
from ..blocks import LLMBlock
from ..costs import compute_costs
from ..space import HAT_NAMES, Arch

TEMPLATES = (
    "gpt_scorer_no_instruction", "gpt_scorer_search_dimension_defn", "gpt_scorer_task_defn",
    "gpt_scorer_dataset_name", "gpt_scorer_dataset_examples", "gpt_scorer_architecture_paper",
    "gpt_scorer_gigaflops", "gpt_scorer_concentrate_statement", "default_flops",
)
DEFAULT_TEMPLATE = "gpt_scorer_concentrate_statement"  # the full LLM-PP prompt of the paper's README
PROBES = ("none", "anonymised", "renamed", "both")
LLM_KEYS = LLMBlock.KEYS  # the llm: block's keys, typed in bench.blocks
RENAMED = {name: f"hparam-{i + 1}" for i, name in enumerate(HAT_NAMES.values())}
# The latency variant: the paper's sentences, with BLEU replaced by the latency the task measured.
LATENCY_REWRITES = (
    ("where you will estimate the BLEU score for the test architecture",
     "where you will estimate the inference latency in milliseconds for the test architecture"),
    ("along with their BLEU and GFLOPS", "along with their latency (ms) and GFLOPS"),
    ("between architecture configuration, BLEU and GFLOPS", "between architecture configuration, latency and GFLOPS"),
)


class PromptError(ValueError):
    """A bad ``llm:`` mapping or prompt option."""


@dataclass(frozen=True)
class LLMTaskConfig:
    templates: str
    examples_source: str | None
    examples_target: str | None
    n_examples: int
    dataset: str
    flops_vocab: int | None


def task_config(task) -> LLMTaskConfig:
    """The task's ``llm:`` block (typed and checked when the suite loaded, bench.blocks.LLMBlock), with the
    template folder resolved: a folder next to the suite, else a mirror path of the released templates."""
    block = task.llm
    if block is None:
        raise PromptError(f"{task.suite.path}: {task.where}.llm: missing; LLM-PP needs it (keys: {sorted(LLM_KEYS)})")
    folder = block.templates.rstrip("/")
    local = task.suite.path.parent / folder
    if local.is_dir():
        folder = str(local.resolve())
    return LLMTaskConfig(folder, block.examples_source, block.examples_target, block.n_examples, block.dataset,
                         block.flops_vocab)


@lru_cache(maxsize=64)
def load_template(folder: str, name: str) -> str:
    if name not in TEMPLATES:
        raise PromptError(f"template {name!r} is not allowed; allowed values: {list(TEMPLATES)}")
    if folder.startswith("/"):  # the project's own templates (tasks the paper never released prompts for)
        path = Path(folder) / name
        if not path.exists():
            raise PromptError(f"template {name!r} not found in {folder}; this task ships only "
                              f"{sorted(p.name for p in Path(folder).iterdir())}")
        return path.read_text(encoding="utf-8")
    return data.fetch(f"{folder}/{name}").read_bytes().decode("utf-8")


@lru_cache(maxsize=16)
def _lines(path: str) -> tuple[str, ...]:
    return tuple(data.fetch(path).read_bytes().decode("utf-8").split("\n")[:-1])


def sample_indices(n_rows: int, k: int, seed: int) -> list[int]:
    """gpt_scorer's procedure: random.seed(seed); distinct randint(0, N-1) draws until k; ascending order."""
    rng = random.Random(seed)
    picked: list[int] = []
    while len(picked) < min(k, n_rows):
        i = rng.randint(0, n_rows - 1)
        if i not in picked:
            picked.append(i)
    return sorted(picked)


def task_examples(cfg: LLMTaskConfig, seed: int) -> str:
    if not cfg.examples_source or cfg.n_examples == 0:
        return ""
    src, tgt = _lines(cfg.examples_source), _lines(cfg.examples_target)
    if len(src) != len(tgt):
        raise PromptError(f"task example files differ in length: {cfg.examples_source} has {len(src)} lines, "
                          f"{cfg.examples_target} has {len(tgt)}")
    out = ""
    for k, i in enumerate(sample_indices(len(src), cfg.n_examples, seed)):
        out += f"Example {k + 1}:\nInput: {src[i]}\nOutput: {tgt[i]}\n\n"
    return out.strip()


def gflops(task, arch: Arch, flops_vocab: int | None = None) -> float:
    """Released total_flops where the data has them (the paper's numbers), else computed (§6.5)."""
    rec = task.lookup(arch)
    if rec is not None and "total_flops" in rec.extras:
        return rec.extras["total_flops"] / 1e9
    vocab = flops_vocab or task.vocab_size
    if vocab is None:
        raise PromptError(f"task {task.name}: vocab_size (or llm.flops_vocab) is needed for the query GFLOPS")
    return compute_costs(arch, vocab, task.space.qkv_dim).total_flops / 1e9


def fmt_gflops(g: float) -> str:
    """The paper's one decimal; tiny models (< 1 GFLOP, e.g. the AmericasNLP space) keep three so they differ."""
    return ("GFLOPS: %.1f\n" if g >= 1 else "GFLOPS: %.3f\n") % g


def value_label(target) -> str:
    """What the demonstrations call the target: the paper's ``BLEU``, or ``Latency`` (ms)."""
    if target.kind == "latency":
        return "Latency"
    if target.unit.upper() == "BLEU" or "bleu" in target.name.lower():
        return "BLEU"
    if target.unit.lower() == "chrf" or "chrf" in target.name.lower():
        return "chrF"
    raise PromptError(f"LLM-PP prompts exist for BLEU and latency targets; {target.name!r} (unit "
                      f"{target.unit!r}) is neither")


@dataclass
class PromptBuilder:
    """The prompt prefix of one (task, seed, target, template, demos, probe); ``query(arch)`` completes it."""

    task: object
    target: str
    seed: int
    template: str = DEFAULT_TEMPLATE
    demos: int = 10
    probe: str = "none"
    flops_vocab: int | None = None
    constraint: float | None = None  # default_flops only
    num_generate: int = 10  # default_flops only

    def __post_init__(self):
        if self.probe not in PROBES:
            raise PromptError(f"probe={self.probe!r} is not allowed; allowed values: {list(PROBES)}")
        if self.template not in TEMPLATES:
            raise PromptError(f"template={self.template!r} is not allowed; allowed values: {list(TEMPLATES)}")
        if not isinstance(self.demos, int) or self.demos < 0:
            raise PromptError(f"demos={self.demos!r} must be a non-negative integer")
        self.cfg = task_config(self.task)
        tgt = self.task.targets.get(self.target)
        if tgt is None:
            raise PromptError(f"task {self.task.name}: no target {self.target!r}; allowed: {list(self.task.targets)}")
        self.label = value_label(tgt)
        self.vocab = self.flops_vocab or self.cfg.flops_vocab
        self.demo_archs: list[Arch] = []
        self.demo_values: list[float] = []

    def set_demos(self, archs: Sequence[Arch], values: Sequence[float]) -> PromptBuilder:
        """Demonstrations = the first ``demos`` training architectures in file order."""
        self.demo_archs = list(archs)[: self.demos]
        self.demo_values = [float(v) for v in values][: self.demos]
        self._prefix = None
        return self

    def demos_from_split(self) -> PromptBuilder:
        train, _ = self.task.split(self.seed)
        train = [r for r in train if r.targets.get(self.target) == r.targets.get(self.target)]  # drop nan
        return self.set_demos([r.arch for r in train], [r.targets[self.target] for r in train])

    # ---- pieces --------------------------------------------------------
    def arch_lines(self, arch: Arch) -> str:
        text = "\n".join(arch.to_arch_info())
        return _rename(text) if self.probe in ("renamed", "both") else text

    def demo_block(self) -> str:
        out = ""
        for a, v in zip(self.demo_archs, self.demo_values):
            out += self.arch_lines(a) + "\n" + fmt_gflops(gflops(self.task, a, self.vocab))
            out += f"{self.label}: %.2f" % v + "\n\n"
        return out.strip()

    def template_text(self) -> str:
        text = load_template(self.cfg.templates, self.template)
        if self.label == "Latency":
            for old, new in LATENCY_REWRITES:
                text = text.replace(old, new)
        if self.probe in ("anonymised", "both"):
            text = _anonymise(text, self.cfg.dataset)
        if self.probe in ("renamed", "both"):
            text = _rename(text)
        return text

    @property
    def prefix(self) -> str:
        if getattr(self, "_prefix", None) is None:
            examples = "" if self.probe in ("anonymised", "both") else task_examples(self.cfg, self.seed)
            text = self.template_text().replace("$$$task_examples$$$", examples)
            if self.template == "default_flops":
                c = f"{self.constraint:.1f}" if self.constraint is not None else "$$$constraint_value$$$"
                text = text.replace("$$$constraint_value$$$", c)
                text = text.replace("$$$num_arch_to_generate$$$", str(self.num_generate))
            self._prefix = text.replace("$$$seedarch_examples$$$", self.demo_block())
        return self._prefix

    def query(self, arch: Arch) -> str:
        if self.template == "default_flops":
            raise PromptError("default_flops is the paper's architecture *generator* prompt; it has no "
                              "per-architecture query (render it with `bench prompt --template default_flops`)")
        return (self.prefix + "\n\n" + self.arch_lines(arch) + "\n"
                + fmt_gflops(gflops(self.task, arch, self.vocab)) + f"{self.label}: ")

    def template_sha(self) -> str:
        return hashlib.sha256(self.template_text().encode()).hexdigest()[:16]


_RENAME_RE = re.compile("|".join(re.escape(n) for n in sorted(RENAMED, key=len, reverse=True)))


def _rename(text: str) -> str:
    return _RENAME_RE.sub(lambda m: RENAMED[m.group(0)], text)


def _anonymise(text: str, dataset: str) -> str:
    """Remove the dataset name and language pair: the phrase becomes neutral, the task-example instruction
    (whose sentences reveal the languages) is dropped and the instructions are renumbered."""
    if dataset:
        text = text.replace(f"{dataset} machine translation", "an undisclosed machine translation dataset")
        text = text.replace(dataset, "an undisclosed dataset")
    lines, out, n = text.split("\n"), [], 0
    skip_next = False
    for line in lines:
        if skip_next and line == "$$$task_examples$$$":
            skip_next = False
            continue
        skip_next = False
        if re.match(r"^\d+\. Some examples for ", line):
            skip_next = True
            continue
        m = re.match(r"^(\d+)\. ", line)
        if m:
            n += 1
            line = f"{n}. " + line[m.end():]
        out.append(line)
    return "\n".join(out)
