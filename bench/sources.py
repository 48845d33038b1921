"""Where a task's measured architectures come from.  One class per ``source.kind``.

- ``llmas``: the paper's release (UBC-NLP/llmas), 30 architectures, 3 fixed 10/20 splits,
  released supernet predictions, and the 8,500-architecture unlabelled pool.
- ``records``: any JSONL/CSV file of measured architectures (yours), with targets mapped
  by column and seeded random splits of a declared train size.
"""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path
from typing import Any

from . import data
from .costs import compute_costs
from .space import Arch, ArchError, parse_arch
from .suite import Record, SuiteError, Target, TaskData

SOURCES: dict[str, "Source"] = {}


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


LLMAS = "UBC-NLP/llmas/data"
SUPERNETS = {"hat": "HAT", "sandwich": "Supernet (Sandwich)", "layer-mos": "Layer-wise MoS",
             "neuron-mos": "Neuron-wise MoS"}


@source("llmas")
class LlmasSource(Source):
    keys = {"task", "seeds", "pool"}
    required = {"task"}
    available_targets = {
        "valid_bleu": Target("valid_bleu", "BLEU", True, "quality"),
        "test_bleu": Target("test_bleu", "BLEU", True, "quality"),
        "latency_ms": Target("latency_ms", "ms", False, "latency"),
    }
    TASKS = ("wmt14ende", "wmt14enfr", "wmt19ende")
    SEEDS = (123, 456, 789)
    POOL = (111, 122, 133, 144, 155, 166, 177, 188, 199, 222, 333, 444, 555, 666, 777, 888, 999)

    def validate(self, task, src, where):
        super().validate(task, src, where)
        if src["task"] not in self.TASKS:
            raise task.error("source.task", f"{src['task']!r} is not allowed; allowed values: {list(self.TASKS)}")
        for s in src.get("seeds", []):
            if s not in self.SEEDS:
                raise task.error("source.seeds", f"{s!r} is not allowed; allowed values: {list(self.SEEDS)}")
        for p in src.get("pool", []):
            if p not in self.POOL:
                raise task.error("source.pool", f"{p!r} is not allowed; allowed values: {list(self.POOL)}")

    def load(self, task, src):
        name = src["task"]
        seeds = list(src.get("seeds") or self.SEEDS)
        records: list[Record] = []
        by_key: dict[str, int] = {}
        splits = {}
        files = []
        for seed in seeds:
            idx = {}
            for part in ("train", "test"):
                path = f"{LLMAS}/train-test_seedarchs/{seed}/{name}/{part}.jsonl"
                files.append(path)
                idx[part] = []
                for line in data.fetch(path).read_text().splitlines():
                    row = json.loads(line)
                    rec = self._record(task, row, path)
                    if rec.id not in by_key:
                        by_key[rec.id] = len(records)
                        records.append(rec)
                    idx[part].append(by_key[rec.id])
            splits[seed] = (idx["train"], idx["test"])
        pool = list(src.get("pool") or self.POOL)

        def pool_loader():
            archs, seen = [], set()
            for folder in pool:
                # The pool rows are identical across seed and task folders; read one copy.
                path = f"{LLMAS}/bleu_predictor_data/{folder}/{seeds[0]}/{name}/test.jsonl"
                for line in data.fetch(path).read_text().splitlines():
                    a = task.space.validate(Arch.from_arch_info(json.loads(line)["scratch"]["arch_info"]))
                    if a.key() not in seen:
                        seen.add(a.key())
                        archs.append(a)
            return archs

        return TaskData(records=records, splits=splits, pool_loader=pool_loader, files=files,
                        notes=self._quirks(records))

    @staticmethod
    def _quirks(records) -> list[str]:
        """Disclose what the release itself shows (paper-system.md §1.1): duplicated supernet columns."""
        notes = []
        for a, b in (("hat", "sandwich"), ("hat", "layer-mos"), ("hat", "neuron-mos"), ("sandwich", "layer-mos"),
                     ("sandwich", "neuron-mos"), ("layer-mos", "neuron-mos")):
            same = sum(1 for r in records if a in r.extras and r.extras[a] == r.extras.get(b))
            if same:
                notes.append(f"`{a}` and `{b}` give identical BLEU (valid and test) on {same} of the {len(records)} "
                             f"architectures in the release" + (": they are not independent baselines here."
                                                                 if same == len(records) else "."))
        gap = [r.targets["valid_bleu"] - r.targets["test_bleu"] for r in records]
        if gap:
            notes.append(f"valid BLEU − test BLEU over the {len(gap)} architectures: mean {sum(gap) / len(gap):+.2f} "
                         f"(min {min(gap):+.2f}, max {max(gap):+.2f}); predictors are scored on valid BLEU.")
        return notes

    def _record(self, task, row, path="") -> Record:
        s = row["scratch"]
        try:
            arch = task.space.validate(Arch.from_arch_info(s["arch_info"]))
        except ArchError as exc:
            raise SuiteError(f"{task.suite.path}: task {task.name}: {path}: {exc}") from None
        extras: dict[str, Any] = {
            "params_no_emb": s["num_parameters_without_embedding_weights"],
            "emb_params": s["num_embedding_parameters"],
            "total_flops": s["total_flops"],
            "last_layer_flops": s["last_layer_flops"],
            "flops_no_last": s["total_flops_without_last_layer"],
        }
        for key, label in SUPERNETS.items():
            if label in row:
                extras[key] = {"valid_bleu": row[label]["valid_BLEU"], "test_bleu": row[label]["test_BLEU"]}
        targets = {"valid_bleu": s["valid_BLEU"], "test_bleu": s["test_BLEU"], "latency_ms": s["overall_latency"]}
        return Record(id=arch.key(), arch=arch, targets=targets, extras=extras)


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


@source("records")
class RecordsSource(Source):
    """Your own measurements: a JSONL (one object per architecture, arch under ``arch`` or arch_info) or a CSV
    whose columns are the architecture fields; targets are columns, named in ``targets`` as
    ``{name: {column:, unit:, higher_is_better:, kind:}}``."""

    keys = {"file", "targets", "train_size", "test_size", "seeds", "filter", "duplicates", "drop_missing"}
    required = {"file", "targets", "train_size"}
    # Plausible ranges by unit: a value outside is a measurement error, refused at load time.
    RANGES = {"bleu": (0.0, 100.0), "chrf": (0.0, 100.0), "ms": (0.0, None), "s": (0.0, None)}

    def validate(self, task, src, where):
        super().validate(task, src, where)
        for key in ("train_size", "test_size"):
            v = src.get(key)
            if key in src and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise task.error(f"source.{key}", f"must be a positive integer, got {v!r}")
        seeds = src.get("seeds")
        if seeds is not None and (not isinstance(seeds, list) or not seeds
                                  or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
            raise task.error("source.seeds", f"must be a non-empty list of integers, e.g. [0, 1, 2], got {seeds!r}")
        data.check_spec(src["file"], f"{task.suite.path}: {task.where}.source.file")
        if src.get("duplicates", "error") not in ("error", "keep"):
            raise task.error("source.duplicates", f"{src['duplicates']!r} is not allowed; allowed values: "
                                                  f"['error', 'keep']")
        if not isinstance(src.get("drop_missing", False), bool):
            raise task.error("source.drop_missing", "must be true or false")

    def targets(self, task, src, cfg, where):
        spec = src.get("targets")
        if not isinstance(spec, dict) or not spec:
            raise task.error("source.targets", "must map target name -> {column, unit, higher_is_better, kind}")
        out = {}
        for name, t in spec.items():
            t = t or {}
            bad = set(t) - {"column", "unit", "higher_is_better", "kind"}
            if bad:
                raise task.error(f"source.targets.{name}", f"unknown keys {sorted(bad)}; allowed keys: "
                                                           f"['column', 'higher_is_better', 'kind', 'unit']")
            kind = t.get("kind", "quality")
            if kind not in ("quality", "latency"):
                raise task.error(f"source.targets.{name}.kind", f"{kind!r} is not allowed; allowed values: "
                                                                f"['latency', 'quality']")
            out[name] = Target(name, t.get("unit", ""), bool(t.get("higher_is_better", kind == "quality")), kind)
        if cfg:
            return {k: out[k] for k in cfg if k in out}
        return out

    def load(self, task, src):
        path = data.resolve(src["file"], task.suite.path.parent)
        cols = {name: (t or {}).get("column", name) for name, t in src["targets"].items()}
        rows = _read_rows(path)
        if src.get("filter"):
            rows = [r for r in rows if all(r.get(k) == v for k, v in src["filter"].items())]
        for name, col in cols.items():
            if rows and not any(col in r for r in rows):
                raise SuiteError(f"{path}: column {col!r} (target {name}) is in no row; columns: "
                                 f"{sorted(rows[0])}; fix source.targets.{name}.column in {task.suite.path}")
        records, seen, dropped = [], {}, {name: 0 for name in cols}
        for i, row in enumerate(rows):
            where = f"{path}: {'row' if path.suffix == '.csv' else 'line'} {row.get('_line', i + 1)}"
            try:
                arch = task.space.validate(parse_arch(row.get("arch", row)))
            except (ArchError, KeyError, TypeError, AttributeError) as exc:
                raise SuiteError(f"{where}: {exc}") from None
            targets = {}
            for name, col in cols.items():
                targets[name] = self._value(task, where, name, col, row.get(col), src["targets"][name] or {})
                if not math.isfinite(targets[name]):
                    dropped[name] += 1
            key = arch.key()
            if key in seen and src.get("duplicates", "error") == "error":
                raise SuiteError(f"{where}: duplicate architecture (same as {seen[key]}); remove one, or set "
                                 f"source.duplicates: keep in {task.suite.path} if repeats are on purpose")
            seen.setdefault(key, where.rsplit(": ", 1)[-1])
            extras = {k: v for k, v in row.items() if k not in cols.values() and k != "_line"}
            records.append(Record(id=f"{i}:{key}", arch=arch, targets=targets, extras=extras))
        notes = []
        for name, n in dropped.items():
            if n and not src.get("drop_missing", False):
                raise SuiteError(f"{path}: target {name} ({cols[name]}) is missing, NaN or infinite in {n} of "
                                 f"{len(records)} rows; fill them, or set source.drop_missing: true in "
                                 f"{task.suite.path} to leave those rows out of that target")
            if n:
                notes.append(f"{n} of {len(records)} rows of {path.name} have no finite `{name}` and are left out "
                             f"of that target (source.drop_missing: true).")
        seeds = src.get("seeds") or [0, 1, 2]
        if src["train_size"] >= len(records):
            raise task.error("source.train_size", f"{src['train_size']} leaves no test architectures "
                                                  f"({len(records)} records in {path})")
        splits = random_splits(len(records), src["train_size"], seeds, src.get("test_size"))
        return TaskData(records=records, splits=splits, files=[str(path)], notes=notes)

    def _value(self, task, where, name, col, v, tcfg) -> float:
        """One target value: a finite number in its unit's plausible range, or NaN when missing."""
        if v is None or v == "":
            return float("nan")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SuiteError(f"{where}: {col!r} = {v!r} is not a number (target {name}); write a number, or leave "
                             f"it empty / null when it was not measured")
        v = float(v)
        lo, hi = self.RANGES.get(str(tcfg.get("unit", "")).lower(), (None, None))
        if math.isfinite(v) and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            raise SuiteError(f"{where}: {col!r} = {v!r} is outside the plausible range of {tcfg.get('unit')} "
                             f"[{lo}, {hi if hi is not None else 'inf'}] (target {name}); fix the value or the unit")
        return v


def _read_rows(path: Path) -> list[dict]:
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


from . import latency_source  # noqa: E402,F401  (registers the hat-latency-csv source)
