"""One invocation's state, passed down explicitly: options, budget, argv and the files it read.

Module globals leaked between runs in one process (a wmt19 result listed wmt14 files read earlier).  The CLI
makes one ``Run`` per command (``bench.cli.main``), ``run_suite`` one when not given one; a run is active
(``with run:``) while it runs.  The data layer reports each file it verifies to ``current()`` (and so to the
runs it is nested in), the runner adds the files of task data cached from an earlier run, the LLM budget is
the run's (``llm_budget``), and provenance records the run's files and ``argv``.
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

    def read(self, what: str, sha256: str) -> None:
        """Record a file read, here and in the runs this one is nested in (a command that runs several suites
        lists every file they read)."""
        run = self
        while run is not None:
            run.files[what] = sha256
            run = run.__dict__.get("_parent")

    def __enter__(self) -> Run:
        parent = _CURRENT.get()
        if parent is not None and parent is not self and "_parent" not in self.__dict__:
            self._parent = parent
        self.__dict__.setdefault("_tokens", []).append(_CURRENT.set(self))  # re-entrant: the CLI and run_suite
        return self

    def __exit__(self, *exc) -> None:
        _CURRENT.reset(self._tokens.pop())


def current() -> Run | None:
    return _CURRENT.get()
