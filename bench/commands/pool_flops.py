"""``bench pool-flops SUITE``: the pool's GFLOPs as released (En-De vocabulary) vs recomputed for each task's."""
from __future__ import annotations

import csv
import json
import sys

from ..outdir import out_file
from . import _args

HELP = "pool GFLOPs: released (En-De vocabulary) vs recomputed for the task's vocabulary"


def add_arguments(p) -> None:
    _args.suite(p)
    _args.tasks(p, help="comma list of task names (default: every task with an llmas pool)")
    _args.out(p, "folder for pool-flops.csv (task, arch, released, recomputed GFLOPs); a path ending in .csv "
                 "names the file itself")


def main(args) -> int:
    from ..poolcosts import pool_costs, summary
    from ..suite import load_suite

    suite = load_suite(args.suite)
    tasks = ([suite.task(t) for t in args.tasks.split(",")] if args.tasks
             else [t for t in suite.tasks if t.cfg["source"]["kind"] == "llmas"])
    path = out_file(args.out, None, "pool-flops.csv", (".csv",))
    writer = None
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "w", newline="")
        writer = csv.writer(fh)
        writer.writerow(["task", "arch", "released_gflops", "recomputed_gflops", "released_vocab"])
    for task in tasks:
        rows = pool_costs(task)
        print(json.dumps(summary(task, rows)))
        if writer:
            for r in rows:
                writer.writerow([task.name, r["arch"].key(), r["released"] / 1e9, r["recomputed"] / 1e9,
                                 r["released_vocab"] or ""])
    if writer:
        fh.close()
        print(f"wrote {path}", file=sys.stderr)
    return 0
