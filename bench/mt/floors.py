"""What chrF/BLEU a system earns without translating: the floors every measured target is read against.

(a) ``shuffled``: the split's own references, permuted (seeded) so each line gets another line's
    reference: fluent target-language text that is not a translation;
(b) ``copy``: the source sentence copied unchanged (names, numbers and loanwords overlap);
(c) ``constant``: the most frequent target sentence of the training split, output for every line.
A set of architectures whose median sits below (a) is ranking how fast models escape degenerate
output, not translation quality.
"""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from .scoring import score

KINDS = ("shuffled", "copy", "constant")


def shuffled(refs: list[str], seed: int = 0) -> list[str]:
    """Non-empty references permuted with no line keeping its own (a seeded derangement); empty stay empty."""
    idx = [i for i, r in enumerate(refs) if r.strip()]
    perm = idx[:]
    rng = random.Random(seed)
    while len(perm) > 1:
        rng.shuffle(perm)
        if all(a != b for a, b in zip(idx, perm)):
            break
    out = list(refs)
    for i, j in zip(idx, perm):
        out[i] = refs[j]
    return out


def most_frequent(lines: list[str]) -> str:
    """The most frequent non-empty line (ties: the first seen)."""
    counts = Counter(x.strip() for x in lines if x.strip())
    return max(counts, key=lambda k: counts[k]) if counts else ""


def floors(corpus, seed: int = 0) -> dict:
    """{split: {kind: {chrf, bleu}}} for the valid and test splits, plus the constant sentence used."""
    const = most_frequent(corpus.splits["train"].tgt)
    out: dict = {"constant_sentence": const, "seed": seed}
    for split in ("valid", "test"):
        sp = corpus.splits[split]
        hyps = {"shuffled": shuffled(sp.tgt, seed), "copy": list(sp.src), "constant": [const] * len(sp.tgt)}
        out[split] = {}
        for k in KINDS:
            s = score(hyps[k], sp.tgt)
            out[split][k] = {"chrf": round(s["chrf"], 3), "bleu": round(s["bleu"], 3)}
    return out


def floors_path(task) -> Path:
    from ..measure import output_path

    p = output_path(task)
    return p.with_name(f"{task.name}.floors.json")


def write_floors(task, corpus) -> Path:
    path = floors_path(task)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"task": task.name, **floors(corpus)}
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_floors(task) -> dict | None:
    path = floors_path(task)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
