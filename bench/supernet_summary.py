"""The trained supernets of a suite at a glance: how each one stopped, and how well its inherited scores rank the
measured architectures (all of them, no split: the leaderboard's split-wise numbers are in ``reports/``).

``python -m bench.supernet_summary suites/americasnlp.yaml`` reads every
``measurements/supernets/<suite>/<task>/<kind>/scores.json`` (``bench supernet score``) and the task's records.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

KINDS = ("hat", "layer-mos", "neuron-mos")
# (target column in the records, the inherited metric score that ranks it, sign: +1 where higher is better); a loss
# target has no inherited metric of its own: the inherited valid chrF ranks it
TARGETS = (("valid_chrf", "metric/valid", "chrf", 1), ("test_chrf", "metric/test", "chrf", 1),
           ("valid_bleu", "metric/valid", "bleu", 1), ("valid_nll", "metric/valid", "chrf", -1))


def kendall(a, b) -> float:
    """The leaderboard's tau-b (bench.metrics), NaN below 3 pairs."""
    import numpy as np

    from .metrics import kendall as tau_b

    return tau_b(np.asarray(b, float), np.asarray(a, float)) if len(a) > 2 else math.nan


def row(task, kind: str, doc: dict) -> str:
    """One Markdown row: stop, dev loss, train time, then tau(metric score) / tau(loss score) per target."""
    by_key = {r.arch.key(): r for r in task.records}
    scored = [(by_key[a["arch_key"]], a["scores"]) for a in doc["archs"] if a["arch_key"] in by_key]
    ck = doc["checkpoint"]
    cells = [task.name, kind, f"{ck['steps']} steps, {ck.get('epochs', '?')} epochs ({ck['stopped']})",
             f"{ck['best_dev_loss_largest']:.3f}", f"{ck['train_seconds']:,.0f} / {ck['train_cpu_seconds']:,.0f}"]
    for col, split, metric, sign in TARGETS:
        pairs = [(r.targets[col] * sign, s) for r, s in scored if math.isfinite(r.targets.get(col, math.nan))]
        taus = []
        for key, name, sgn in ((split, metric, 1), ("loss/valid", "loss", -1)):  # score=metric, then score=loss
            ok = [(y, sgn * s[key][name]) for y, s in pairs if key in s]
            taus.append(f"{kendall([y for y, _ in ok], [x for _, x in ok]):+.2f}")
        cells.append(" / ".join(taus))
    cells.append(str(len(scored)))
    return "| " + " | ".join(cells) + " |"


def summary(suite) -> str:
    root = Path("measurements/supernets") / suite.name
    lines = ["| task | kind | stopped at | best dev loss (largest) | train wall / CPU s | valid chrF | test chrF "
             "| valid BLEU | −valid_nll | architectures |", "|---" * 10 + "|"]
    missing = []
    for task in suite.tasks:
        for kind in KINDS:
            path = root / task.name / kind / "scores.json"
            if not path.exists():
                missing.append(f"{task.name}/{kind}")
                continue
            lines.append(row(task, kind, json.loads(path.read_text(encoding="utf-8"))))
    lines += ["", "Each cell: Kendall τ of the inherited `score=metric` / `score=loss` with the measured target "
                  "(signed: + means the supernet ranks the architectures the right way round; for −valid_nll the "
                  "metric score is the inherited valid chrF)."]
    if missing:
        lines.append(f"Not scored yet: {', '.join(missing)}.")
    return "\n".join(lines)


def main(argv=None) -> int:
    from .suite import SuiteError, load_suite

    ap = argparse.ArgumentParser(prog="python -m bench.supernet_summary", description=__doc__.split("\n")[0])
    ap.add_argument("suite")
    a = ap.parse_args(argv)
    try:
        print(summary(load_suite(a.suite)))
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
