"""Split kinds: which architectures a predictor is fitted on and which it is scored on.

- ``random`` (default): the task's own seeded splits (the release's for ``llmas``).
- ``ood-depth``: out-of-distribution in depth.  Train on the architectures with the smallest decoder layer
  counts, test on the deeper ones; the cut is the depth that makes the train set closest to the task's usual
  train size (at least 2 architectures on each side), and the leaderboard states it.

A split kind is a function ``task -> (splits, description)`` with ``splits`` = {seed: (train, test)} records.
"""
from __future__ import annotations


def random(task):
    return {s: task.split(s) for s in task.seeds}, ""


def ood_depth(task):
    recs = task.records
    usual = len(task.split(task.seeds[0])[0])
    depths = sorted({r.arch.decoder_layer_num for r in recs})
    best = None
    for cut in depths[1:]:
        n_train = sum(r.arch.decoder_layer_num < cut for r in recs)
        if n_train < 2 or len(recs) - n_train < 2:
            continue
        if best is None or abs(n_train - usual) < abs(best[1] - usual):
            best = (cut, n_train)
    if best is None:
        from .suite import SuiteError
        raise SuiteError(f"--split ood-depth: task {task.name} has too few decoder depths "
                         f"({depths}) to split into shallow train and deep test architectures")
    cut = best[0]
    train = [r for r in recs if r.arch.decoder_layer_num < cut]
    test = [r for r in recs if r.arch.decoder_layer_num >= cut]
    desc = (f"split `ood-depth`: trained on the {len(train)} architectures with decoder_layer_num ≤ {cut - 1}, "
            f"tested on the {len(test)} with decoder_layer_num ≥ {cut} (one split, seed {task.seeds[0]})")
    return {task.seeds[0]: (train, test)}, desc


SPLITS = {"random": random, "ood-depth": ood_depth}
