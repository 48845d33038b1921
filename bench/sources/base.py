"""What every source kind shares: the ``Source`` interface, its registry, seeded splits, row reading and
record costs."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from ..costs import compute_costs
from ..types import Record, SuiteError, Target, TaskData

SOURCES: dict[str, Source] = {}


def source(kind: str):
    def deco(cls):
        SOURCES[kind] = cls()
        cls.kind = kind
        return cls
    return deco


class Source:
    keys: set = set()
    required: set = set()
    available_targets: dict[str, Target] = {}

    def validate(self, task, src: dict, where: str) -> None:
        for k in src:
            if k != "kind" and k not in self.keys:
                raise task.error(f"source.{k}", f"unknown key for source kind {self.kind!r}; allowed keys: "
                                                f"{sorted(self.keys | {'kind'})}")
        for k in self.required:
            if k not in src:
                raise task.error(f"source.{k}", "required key missing")

    def targets(self, task, src: dict, cfg, where: str) -> dict[str, Target]:
        avail = self.available_targets
        if cfg is None:
            return dict(avail)
        if not isinstance(cfg, list) or not cfg:
            raise task.error("targets", f"must be a non-empty list; allowed values: {sorted(avail)}")
        out = {}
        for t in cfg:
            if t not in avail:
                raise task.error("targets", f"{t!r} is not allowed; allowed values: {sorted(avail)}")
            out[t] = avail[t]
        return out

    def load(self, task, src: dict) -> TaskData:
        raise NotImplementedError


def random_splits(n: int, train_size: int, seeds, test_size: int | None = None) -> dict:
    """Seeded random train/test splits over n records (the test set is the rest, or test_size of it)."""
    out = {}
    for seed in seeds:
        order = list(range(n))
        random.Random(seed).shuffle(order)
        train = sorted(order[:train_size])
        rest = order[train_size:]
        test = sorted(rest[:test_size] if test_size else rest)
        out[seed] = (train, test)
    return out


def read_rows(path: Path) -> list[dict]:
    """Rows of a CSV (values parsed as JSON scalars) or JSONL file; a bad line is an error naming file and line."""
    if path.suffix == ".csv":
        with open(path, newline="") as fh:
            return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{path}: not UTF-8 text ({exc}); expected JSONL, one object per line") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{path}: line {n}: not valid JSON ({exc.msg} at column {exc.colno}); expected one "
                             f"JSON object per line") from None
        if not isinstance(row, dict):
            raise SuiteError(f"{path}: line {n}: expected a JSON object, got {type(row).__name__}")
        row["_line"] = n
        rows.append(row)
    return rows


def _num(v: str):
    try:
        return json.loads(v)
    except (json.JSONDecodeError, TypeError):
        return v


def record_costs(task, rec: Record) -> dict:
    """params/FLOPs of a record: from the data where it has them, else computed for the task's vocabulary."""
    keys = ("params_no_emb", "emb_params", "total_flops", "last_layer_flops")
    if all(k in rec.extras for k in keys):
        return {k: rec.extras[k] for k in keys}
    if task.vocab_size is None:
        raise SuiteError(f"task {task.name}: vocab_size is needed to compute params/FLOPs")
    c = compute_costs(rec.arch, task.vocab_size, task.space.qkv_dim)
    return {"params_no_emb": c.params_no_emb, "emb_params": c.emb_params, "total_flops": c.total_flops,
            "last_layer_flops": c.last_layer_flops}
