"""Typed task blocks: ``llm``, ``proxies``, ``latency`` and ``measure`` of a suite's task, checked when the suite
loads so that a typo (``llm: {datset: ...}``) is an error from ``bench validate``, not a skipped row at run time.

Each block is a frozen dataclass built by ``parse(cfg, err)``; ``err(key, message)`` makes the suite's error
("<file>: tasks[i].<block>.<key>: <what is wrong>; <allowed>").  Consumers that still read ``task.cfg`` see the
same mapping, now known to be well formed.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from .sources.release import HAT_TASKS
from .types import SuiteError

Err = Callable[[str, str], SuiteError]


def _mapping(block: str, cfg: Any, allowed, err: Err, required=()) -> dict:
    if not isinstance(cfg, dict):
        raise err(block, f"must be a mapping with keys {sorted(allowed)}, got {cfg!r}")
    for k in cfg:
        if k not in allowed:
            raise err(f"{block}.{k}", f"unknown key; allowed keys: {sorted(allowed)}")
    for k in required:
        if k not in cfg:
            raise err(f"{block}.{k}", "required key missing")
    return cfg


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _str(key: str, v, err: Err) -> str:
    if not isinstance(v, str) or not v.strip():
        raise err(key, f"must be a non-empty string, got {v!r}")
    return v


@dataclass(frozen=True)
class LLMBlock:
    """LLM-PP's prompt inputs: the template folder, the task examples, the dataset phrase, the FLOPs vocabulary."""

    templates: str
    examples_source: str | None = None
    examples_target: str | None = None
    n_examples: int = 5
    dataset: str = ""
    flops_vocab: int | None = None

    KEYS = {"templates": "mirror folder of the 9 template files, e.g. UBC-NLP/llmas/data/instruction_templates/wmt14ende",
            "examples": "{source: <file>, target: <file>, n: 5}: parallel sentence files for task examples",
            "dataset": "the dataset phrase used in the templates, e.g. WMT'14 English to German (removed by "
                       "probe=anonymised)",
            "flops_vocab": "vocabulary size for the query GFLOPS of architectures without released FLOPs"}
    EXAMPLE_KEYS = ("n", "source", "target")

    @classmethod
    def parse(cls, cfg, err: Err) -> LLMBlock:
        _mapping("llm", cfg, cls.KEYS, err)
        if not isinstance(cfg.get("templates"), str):
            raise err("llm.templates", f"required, {cls.KEYS['templates']}")
        ex = cfg.get("examples") or {}
        if not isinstance(ex, dict) or set(ex) - set(cls.EXAMPLE_KEYS) or ({"source", "target"} - set(ex) and ex):
            raise err("llm.examples", f"must be a mapping with keys {list(cls.EXAMPLE_KEYS)} (source and target "
                                      f"required), got {ex!r}")
        n = ex.get("n", 5)
        if not _int(n) or n < 0:
            raise err("llm.examples.n", f"must be a non-negative integer, got {n!r}")
        fv = cfg.get("flops_vocab")
        if fv is not None and (not _int(fv) or fv <= 0):
            raise err("llm.flops_vocab", f"must be a positive integer, got {fv!r}")
        if not isinstance(cfg.get("dataset", ""), str):
            raise err("llm.dataset", f"must be a string, got {cfg['dataset']!r}")
        return cls(cfg["templates"], ex.get("source"), ex.get("target"), n, cfg.get("dataset", ""), fv)


@dataclass(frozen=True)
class ProxiesBlock:
    """The parallel text zero-cost proxies score a batch of (and train its BPE on): mirror paths."""

    src: str
    tgt: str

    @classmethod
    def parse(cls, cfg, err: Err) -> ProxiesBlock:
        _mapping("proxies", cfg, ("src", "tgt"), err, required=("src", "tgt"))
        return cls(_str("proxies.src", cfg["src"], err), _str("proxies.tgt", cfg["tgt"], err))


@dataclass(frozen=True)
class LatencyBlock:
    """Which of HAT's released latency predictors a task's architectures belong to, and its output scale."""

    hat_task: str | None = None
    device: str | None = None
    lat_norm: float | None = None

    @classmethod
    def parse(cls, cfg, err: Err) -> LatencyBlock:
        _mapping("latency", cfg, [f.name for f in fields(cls)], err)
        hat_task = cfg.get("hat_task")
        if hat_task is not None and hat_task not in HAT_TASKS:
            raise err("latency.hat_task", f"{hat_task!r} is not allowed; allowed values: {list(HAT_TASKS)}")
        device = cfg.get("device")
        if device is not None:
            _str("latency.device", device, err)
        norm = cfg.get("lat_norm")
        if norm is not None and (isinstance(norm, bool) or not isinstance(norm, (int, float))
                                 or not math.isfinite(norm) or norm <= 0):
            raise err("latency.lat_norm", f"must be a positive number (ms), got {norm!r}")
        return cls(hat_task, device, None if norm is None else float(norm))


@dataclass(frozen=True)
class MeasureBlock:
    """What ``bench measure`` trains on: corpus, tokenizer and recipe (the recipe's own keys are the trainer's,
    checked by ``bench.mt.train.Recipe`` when a measurement starts), the sampling seed, the noise repeats and
    where the records go."""

    corpus: dict
    tokenizer: dict
    recipe: dict | None = None
    sample_seed: int = 0
    noise: dict | None = None
    records: str | None = None

    CORPUS_KEYS = ("src_lang", "tgt_lang", "train", "valid", "test")
    PART_KEYS = ("lines", "src", "tgt")
    TOKENIZER_KEYS = ("kind", "vocab_size")
    NOISE_KEYS = ("archs", "seeds")

    @classmethod
    def parse(cls, cfg, err: Err) -> MeasureBlock:
        _mapping("measure", cfg, [f.name for f in fields(cls)], err, required=("corpus", "tokenizer"))
        corpus = _mapping("measure.corpus", cfg["corpus"], cls.CORPUS_KEYS, err, required=cls.CORPUS_KEYS)
        for split in ("train", "valid", "test"):
            parts = corpus[split] if isinstance(corpus[split], list) else [corpus[split]]
            if not parts:
                raise err(f"measure.corpus.{split}", "must name at least one {src, tgt} pair of files")
            for i, part in enumerate(parts):
                key = f"measure.corpus.{split}" + (f"[{i}]" if isinstance(corpus[split], list) else "")
                _mapping(key, part, cls.PART_KEYS, err, required=("src", "tgt"))
        tok = _mapping("measure.tokenizer", cfg["tokenizer"], cls.TOKENIZER_KEYS, err)
        size = tok.get("vocab_size")
        if size is not None and (not _int(size) or size <= 0):
            raise err("measure.tokenizer.vocab_size", f"must be a positive integer, got {size!r}")
        recipe = cfg.get("recipe")
        if recipe is not None and not isinstance(recipe, dict):
            raise err("measure.recipe", f"must be a mapping of trainer settings, got {recipe!r}")
        seed = cfg.get("sample_seed", 0)
        if not _int(seed):
            raise err("measure.sample_seed", f"must be an integer, got {seed!r}")
        noise = cfg.get("noise")
        if noise is not None:
            _mapping("measure.noise", noise, cls.NOISE_KEYS, err)
        records = cfg.get("records")
        if records is not None and (not isinstance(records, str) or not records.endswith(".jsonl")):
            raise err("measure.records", f"must be a path ending in .jsonl, got {records!r}")
        return cls(corpus, tok, recipe, seed, noise, records)


BLOCKS = {"llm": LLMBlock, "proxies": ProxiesBlock, "latency": LatencyBlock, "measure": MeasureBlock}


def parse_blocks(cfg: dict, err: Err) -> dict[str, Any]:
    """block name -> the typed block, or None where the task has none."""
    return {name: (cls.parse(cfg[name], err) if cfg.get(name) is not None else None) for name, cls in BLOCKS.items()}
