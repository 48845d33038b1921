"""One invocation's state, passed down explicitly: options, budget, argv and the files it read.

Module globals leaked between runs in one process (a wmt19 result listed wmt14 files read earlier).  A
``Run`` is created per ``run_suite`` call and is active (``with run:``) while it runs; the data layer reports
each file it verifies to ``current()``, and the runner adds the files of task data cached from an earlier run.
"""
from __future__ import annotations

import contextvars
import sys
from dataclasses import dataclass, field
from typing import Any

_CURRENT: contextvars.ContextVar[Run | None] = contextvars.ContextVar("bench_run", default=None)

BUDGET_KEYS = ("max_calls", "max_dollars")


@dataclass
class Run:
    options: dict = field(default_factory=dict)  # run-wide predictor options (--llm, --concurrency, ...)
    argv: list[str] = field(default_factory=lambda: list(sys.argv))
    files: dict[str, str] = field(default_factory=dict)  # file read -> sha256
    llm_budget: Any = None  # the bench.llm.client.Budget every LLM predictor of this run draws from

    @property
    def budget(self) -> dict:
        return {k: self.options[k] for k in BUDGET_KEYS if self.options.get(k) is not None}

    def __enter__(self) -> Run:
        self.__dict__.setdefault("_tokens", []).append(_CURRENT.set(self))  # re-entrant: the CLI and run_suite
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(self._tokens.pop())


def current() -> Run | None:
    return _CURRENT.get()
