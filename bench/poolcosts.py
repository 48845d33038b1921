"""GFLOPs of a task's unlabelled pool: the released values next to values recomputed for the task's vocabulary.

The llmas pool rows carry a ``total_flops`` computed with the WMT'14 En-De vocabulary (32,768) for every
task; the output projection (2·30·D·V) makes them too small for En-Fr (44,512) and WMT'19 (49,600).
``pool_costs`` keeps both: ``released`` (as shipped) and ``recomputed`` (bench.costs with the task's V),
plus ``released_vocab`` (the vocabulary that reproduces the released value exactly, or None).

    python -m bench pool-flops suites/wmt14.yaml --tasks wmt14-en-fr [--out DIR]   (bench/commands/pool_flops.py)
"""
from __future__ import annotations

import json

from . import data
from .costs import compute_costs
from .sources.release import LLMAS_POOL, LLMAS_SEEDS, llmas_pool_path
from .space import Arch
from .suite import SuiteError

EN_DE_VOCAB = 32768


def released_pool_flops(task) -> dict[str, float]:
    """Arch key -> the pool row's released ``total_flops`` (read from the same files as the task's pool)."""
    src = task.cfg["source"]
    if src.get("kind") != "llmas":
        raise SuiteError(f"task {task.name}: released pool FLOPs exist only for source kind 'llmas'")
    seed = (src.get("seeds") or LLMAS_SEEDS)[0]
    out: dict[str, float] = {}
    for folder in src.get("pool") or LLMAS_POOL:
        path = llmas_pool_path(folder, seed, src["task"])
        for line in data.fetch(path).read_text().splitlines():
            row = json.loads(line)["scratch"]
            out.setdefault(Arch.from_arch_info(row["arch_info"]).key(), float(row["total_flops"]))
    return out


def pool_costs(task) -> list[dict]:
    """One row per pool architecture (task.pool order): released and recomputed total FLOPs."""
    if task.vocab_size is None:
        raise SuiteError(f"task {task.name}: vocab_size is needed to recompute FLOPs")
    released = released_pool_flops(task)
    q = task.space.qkv_dim
    rows = []
    for arch in task.pool:
        rel = released.get(arch.key(), float("nan"))
        rec = compute_costs(arch, task.vocab_size, q).total_flops
        vocab = None
        for v in dict.fromkeys((task.vocab_size, EN_DE_VOCAB)):
            if compute_costs(arch, v, q).total_flops == rel:
                vocab = v
                break
        rows.append({"arch": arch, "released": rel, "recomputed": float(rec), "released_vocab": vocab})
    return rows


def summary(task, rows: list[dict]) -> dict:
    by_vocab: dict = {}
    for r in rows:
        by_vocab[str(r["released_vocab"])] = by_vocab.get(str(r["released_vocab"]), 0) + 1
    rel = [r["released"] / 1e9 for r in rows]
    rec = [r["recomputed"] / 1e9 for r in rows]
    return {"task": task.name, "vocab_size": task.vocab_size, "n": len(rows), "released_vocab_counts": by_vocab,
            "released_gflops": [min(rel), max(rel)], "recomputed_gflops": [min(rec), max(rec)],
            "mean_ratio_recomputed_over_released": sum(b / a for a, b in zip(rel, rec)) / len(rows)}
