"""The data types a task is made of, shared by suites, sources and predictors.

They live apart from ``bench.suite`` so that sources (which build them) never import the suite module (which
uses the sources): no import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .space import Arch


class SuiteError(ValueError):
    """A malformed suite file (or the data it names)."""


@dataclass(frozen=True)
class Target:
    name: str
    unit: str = ""
    higher_is_better: bool = True  # for the *quantity* (BLEU up is good, latency down is good)
    kind: str = "quality"  # quality | latency


@dataclass
class Record:
    """One measured architecture: its targets and whatever else the data carries (costs, replayed predictions)."""

    id: str
    arch: Arch
    targets: dict[str, float]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskData:
    records: list[Record]
    splits: dict[int, tuple[list[int], list[int]]]  # seed -> (train indices, test indices), in file order
    pool_loader: Any = None  # () -> list[Arch]; the unlabelled pool
    files: list[str] = field(default_factory=list)  # data files read, for provenance
    notes: list[str] = field(default_factory=list)  # quirks found in the data, computed at load time
