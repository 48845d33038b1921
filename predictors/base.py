"""The predictor interface: a scikit-learn-like estimator over architectures.

A predictor is built for one context (task, target, split seed), ``fit(archs, y)`` on the
split's training architectures when it learns, and ``predict(archs)`` returns one float
per architecture (``nan`` where it failed: the harness reports coverage, never crashes).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.space import Arch


@dataclass
class Context:
    """Everything a predictor may look at: the task (space, vocab, records, data), the target and the split seed."""

    task: Any
    target: str
    seed: int
    options: dict = field(default_factory=dict)  # run-wide options (e.g. --llm, --concurrency)


class Predictor:
    name: str = ""
    spec: str = ""
    learns: bool = False  # fit() uses the labels
    on_target_scale: bool = True  # False: a score that only ranks; MAE needs calibration
    higher_is_better: bool = True  # True when a higher score predicts a higher target
    version: str = "1"
    in_sample: bool = False  # scored on data it was fitted on (e.g. released weights): reported apart, never ranked
    ceiling: bool = False  # a reference row (a twin measurement of the target), scored alike, never ranked

    def __init__(self, ctx: Context, **config: Any):
        self.ctx = ctx
        unknown = set(config) - set(self.config_keys())
        if unknown:
            raise ValueError(
                f"predictor {self.name!r}: unknown option(s) {sorted(unknown)}; allowed: {sorted(self.config_keys())}")
        self.config = dict(self.default_config(), **config)

    # ---- configuration --------------------------------------------------
    @classmethod
    def default_config(cls) -> dict:
        return {}

    @classmethod
    def config_keys(cls) -> set:
        return set(cls.default_config())

    @classmethod
    def config_choices(cls) -> dict[str, list]:
        """Options with a closed set of values: {key: allowed values}, checked when the spec is parsed."""
        return {}

    @classmethod
    def check_config(cls, config: dict) -> str | None:
        """Why this config is invalid (unknown key, value outside its choices), else None; no object is built."""
        keys = cls.config_keys()
        unknown = sorted(set(config) - set(keys))
        if unknown:
            allowed = sorted(keys) if keys else "none (this predictor takes no options)"
            return f"unknown option(s) {unknown}; allowed: {allowed}"
        for k, allowed in cls.config_choices().items():
            if k in config and config[k] not in allowed:
                return f"{k}={config[k]!r} is not allowed; allowed values: {list(allowed)}"
        return None

    def supports(self, task, target: str) -> str | None:
        """None if this predictor applies to the task/target, else why not (shown as skipped)."""
        return None

    # ---- estimator API ------------------------------------------------
    def fit(self, archs: Sequence[Arch], y: np.ndarray) -> Predictor:
        return self

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        raise NotImplementedError

    # ---- reporting --------------------------------------------------------
    def cost(self) -> dict:
        """Extra cost counters (calls, tokens, dollars, cache hits...)."""
        return {}

    def describe(self) -> dict:
        return {"name": self.name, "spec": self.spec or self.name, "version": self.version, "config": self.config,
                "higher_is_better": self.higher_is_better, "on_target_scale": self.on_target_scale}

    def details(self) -> dict:
        """Per-run extras for results.json (e.g. the tensors a proxy touched)."""
        return {}
