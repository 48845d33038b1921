"""``llmas``: the paper's release (UBC-NLP/llmas): 30 architectures, 3 fixed 10/20 splits, released supernet
predictions, and the 8,500-architecture unlabelled pool."""
from __future__ import annotations

import json
from typing import Any

from .. import data
from ..space import Arch, ArchError
from ..types import Record, SuiteError, Target, TaskData
from .base import Source, source
from .release import LLMAS_POOL, LLMAS_SEEDS, LLMAS_TASKS, SUPERNETS, llmas_pool_path, llmas_split_path


@source("llmas")
class LlmasSource(Source):
    keys = {"task", "seeds", "pool"}
    required = {"task"}
    available_targets = {
        "valid_bleu": Target("valid_bleu", "BLEU", True, "quality"),
        "test_bleu": Target("test_bleu", "BLEU", True, "quality"),
        "latency_ms": Target("latency_ms", "ms", False, "latency"),
    }
    TASKS, SEEDS, POOL = LLMAS_TASKS, LLMAS_SEEDS, LLMAS_POOL

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
                path = llmas_split_path(seed, name, part)
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
                path = llmas_pool_path(folder, seeds[0], name)
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
