"""Declarative suites: YAML files of tasks, each a search space, measured architectures and targets.

A suite is validated as it loads; every error names the file, the key, the bad value and
the allowed values.  Sources (``bench.sources``) turn a task's ``source`` mapping into
records; adding a task or a suite is YAML only.  The types (``Record``, ``Target``, ``TaskData``,
``SuiteError``) are in ``bench.types``.
"""
from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

import yaml

from .blocks import parse_blocks
from .sources import load_sources
from .space import Arch, ArchError, SearchSpace
from .types import Record, SuiteError, Target, TaskData

__all__ = ["Record", "Suite", "SuiteError", "Target", "Task", "TaskData", "load_suite"]

SUITE_KEYS = {"name", "version", "description", "citation", "predictors", "gate", "reference", "spaces", "tasks",
              "metrics", "notes"}
TASK_KEYS = {"name", "search_space", "vocab_size", "source", "targets", "notes", "llm", "proxies", "latency",
             "measure", "description"}


class Task:
    def __init__(self, suite: Suite, cfg: dict, where: str):
        self.suite = suite
        self.cfg = cfg
        self.where = where
        self.name: str = cfg["name"]
        self.vocab_size: int | None = cfg.get("vocab_size")
        if self.vocab_size is not None and (isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int)
                                            or self.vocab_size <= 0):
            raise SuiteError(f"{suite.path}: {where}.vocab_size: must be a positive integer, got {self.vocab_size!r}")
        self.notes: list[str] = list(cfg.get("notes") or [])
        space_cfg = cfg.get("search_space")
        if isinstance(space_cfg, str):
            spaces = suite.cfg.get("spaces") or {}
            if space_cfg not in spaces:
                raise SuiteError(f"{suite.path}: {where}.search_space: {space_cfg!r} is not defined; "
                                 f"allowed values: {sorted(spaces)}")
            space_cfg, space_name = spaces[space_cfg], space_cfg
        else:
            space_name = self.name
        if not isinstance(space_cfg, dict):
            raise SuiteError(f"{suite.path}: {where}.search_space: must be a mapping of dimension -> choices "
                             f"or the name of an entry under 'spaces'")
        try:
            self.space = SearchSpace.from_config(space_cfg, name=space_name, where=f"{where}.search_space")
        except ArchError as exc:
            raise SuiteError(f"{suite.path}: {exc}") from None
        sources = load_sources()
        src = cfg.get("source")
        if not isinstance(src, dict) or "kind" not in src:
            raise SuiteError(f"{suite.path}: {where}.source: must be a mapping with a 'kind'; "
                             f"allowed kinds: {sorted(sources)}")
        if src["kind"] not in sources:
            raise SuiteError(f"{suite.path}: {where}.source.kind: {src['kind']!r} is not allowed; "
                             f"allowed values: {sorted(sources)}")
        self.source = sources[src["kind"]]
        self.source.validate(self, src, f"{where}.source")
        self.targets: dict[str, Target] = self.source.targets(self, src, cfg.get("targets"), f"{where}.targets")
        self.default_target = next(iter(self.targets))
        blocks = parse_blocks(cfg, self.error)  # typed llm / proxies / latency / measure blocks, or None
        self.llm, self.proxies, self.latency, self.measure = (blocks[k] for k in ("llm", "proxies", "latency",
                                                                                   "measure"))

    def error(self, key: str, msg: str) -> SuiteError:
        return SuiteError(f"{self.suite.path}: {self.where}.{key}: {msg}")

    @cached_property
    def data(self) -> TaskData:
        data = self.source.load(self, self.cfg["source"])
        self._by_key = {r.arch.key(): r for r in data.records}
        return data

    @property
    def records(self) -> list[Record]:
        return self.data.records

    @property
    def seeds(self) -> list[int]:
        return list(self.data.splits)

    def split(self, seed: int) -> tuple[list[Record], list[Record]]:
        if seed not in self.data.splits:
            raise SuiteError(f"task {self.name}: no split for seed {seed}; seeds: {self.seeds}")
        tr, te = self.data.splits[seed]
        return [self.records[i] for i in tr], [self.records[i] for i in te]

    def lookup(self, arch: Arch) -> Record | None:
        _ = self.data
        return self._by_key.get(arch.key())

    @cached_property
    def pool(self) -> list[Arch]:
        if self.data.pool_loader is None:
            raise SuiteError(f"task {self.name} has no unlabelled pool")
        return self.data.pool_loader()

    def __repr__(self) -> str:
        return f"Task({self.name})"


class Suite:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise SuiteError(f"{self.path}: suite file not found; suites are YAML files, e.g. suites/wmt14.yaml")
        if not self.path.is_file():
            raise SuiteError(f"{self.path}: not a file; give a suite YAML file, e.g. suites/wmt14.yaml")
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise SuiteError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        self.sha256 = hashlib.sha256(raw).hexdigest()
        try:
            cfg = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "parse error"
            raise SuiteError(f"{self.path}: not valid YAML{where} ({problem}); fix the file") from None
        if not isinstance(cfg, dict):
            raise SuiteError(f"{self.path}: top level must be a mapping with keys {sorted(SUITE_KEYS)}")
        self.cfg = cfg
        _check_keys(self.path, "", cfg, SUITE_KEYS, required={"name", "tasks"})
        self.name: str = str(cfg["name"])
        preds = cfg.get("predictors") or []
        if not isinstance(preds, list) or not all(isinstance(p, str) and p.strip() for p in preds):
            raise SuiteError(f"{self.path}: predictors: must be a list of predictor specs, e.g. [mean, gp], "
                             f"got {preds!r}")
        self.predictors: list[str] = list(preds)
        gate = cfg.get("gate") or {}
        if not isinstance(gate, dict):
            raise SuiteError(f"{self.path}: gate: must map metric -> tolerance, e.g. {{kendall: 0.02}}")
        self.gate: dict[str, float] = dict(gate)
        from .metrics import METRICS

        for metric, tol in self.gate.items():
            if metric not in METRICS:
                raise SuiteError(f"{self.path}: gate.{metric}: unknown metric; allowed keys: {sorted(METRICS)}")
            if isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0:
                raise SuiteError(f"{self.path}: gate.{metric}: tolerance must be a non-negative number, got {tol!r}")
        tasks = cfg["tasks"]
        if not isinstance(tasks, list) or not tasks:
            raise SuiteError(f"{self.path}: tasks: must be a non-empty list of task mappings")
        self.tasks: list[Task] = []
        seen = set()
        for i, tcfg in enumerate(tasks):
            where = f"tasks[{i}]"
            if not isinstance(tcfg, dict):
                raise SuiteError(f"{self.path}: {where}: must be a mapping with keys {sorted(TASK_KEYS)}")
            _check_keys(self.path, where, tcfg, TASK_KEYS, required={"name", "search_space", "source"})
            if tcfg["name"] in seen:
                raise SuiteError(f"{self.path}: {where}.name: duplicate task name {tcfg['name']!r}")
            seen.add(tcfg["name"])
            self.tasks.append(Task(self, tcfg, f"{where}"))

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise SuiteError(f"{self.path}: no task {name!r}; allowed values: {[t.name for t in self.tasks]}")

    def reference_rows(self) -> dict:
        ref = self.cfg.get("reference")
        if not ref:
            return {}
        p = (self.path.parent / ref)
        if not p.exists():
            raise SuiteError(f"{self.path}: reference: file {p} not found")
        return yaml.safe_load(p.read_text())


def _check_keys(path, where, cfg, allowed, required=()):
    prefix = f"{where}." if where else ""
    for key in cfg:
        if key not in allowed:
            raise SuiteError(f"{path}: {prefix}{key}: unknown key; allowed keys: {sorted(allowed)}")
    for key in required:
        if key not in cfg:
            raise SuiteError(f"{path}: {prefix}{key}: required key missing")


def load_suite(path: str | Path) -> Suite:
    return Suite(path)
