"""Where a task's measured architectures come from: one module per ``source.kind``, listed in SOURCE_MODULES.

- ``llmas`` (``llmas.py``): the paper's release (UBC-NLP/llmas);
- ``records`` (``records.py``): any JSONL/CSV file of measured architectures (yours);
- ``hat-latency-csv`` (``hat_latency.py``): latency datasets in HAT's CSV layout.

Adding a kind: a module with a ``@source("kind")`` subclass of ``base.Source``, listed here.  Sources build the
types of ``bench.types`` and never import ``bench.suite``; facts about the released data are in ``release.py``.
"""
from __future__ import annotations

import importlib

from .base import SOURCES, Source, random_splits, read_rows, record_costs, source
from .llmas import LlmasSource
from .release import LLMAS

SOURCE_MODULES = ["bench.sources.llmas", "bench.sources.records", "bench.sources.hat_latency"]

__all__ = ["LLMAS", "SOURCES", "SOURCE_MODULES", "LlmasSource", "Source", "load_sources", "random_splits",
           "read_rows", "record_costs", "source"]


def load_sources() -> dict[str, Source]:
    """kind -> Source, every module of SOURCE_MODULES imported (each registers its kinds)."""
    for module in SOURCE_MODULES:
        importlib.import_module(module)
    return SOURCES
