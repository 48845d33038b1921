"""How stable a measured records file's ranking is: early stopping replayed at a shorter patience, and the
ranking two training seeds would agree on.

Every v2 record keeps its per-epoch dev-loss curve (``evals``), so what early stopping with patience
``k < p`` would have returned is read off the curve exactly (same schedule, same weights up to that epoch).
A longer patience cannot be replayed (the run stopped), so the table shows how much ``valid_nll`` ranks
move between ``k`` and the recipe's ``p``; the move from ``p`` to ``2p`` is bounded by the same curves'
behaviour and by seed noise.  The seed bound: if each architecture's target is its true value plus
independent Gaussian seed noise, two seeds' values correlate at ``rho = s^2 / (s^2 + n^2)`` (``s`` the
true spread across architectures, ``n`` the pooled seed std), and Kendall's tau between them is
``2/pi * asin(rho)``; no recipe change can be judged stable beyond that.  The measured spread of one seed's
values holds the noise too (its variance is ``s^2 + n^2``), so ``s^2`` is estimated as the measured
variance minus ``n^2``.

``python -m bench.mt.stability suites/americasnlp.yaml [--task T]`` prints the Markdown PILOT.md shows.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys


def replay_patience(rec: dict, patience: int) -> tuple[float, int]:
    """(best dev loss, stop epoch) of early stopping with ``patience`` evaluations, honouring the recipe's
    ``min_epochs``, replayed from the record's curve; a run that never triggered it returns its end."""
    best, bad = math.inf, 0
    min_epochs = rec["recipe"].get("min_epochs", 0)
    for e in rec["evals"]:
        if e["dev_loss"] < best - 1e-4:  # the trainer's improvement threshold
            best, bad = e["dev_loss"], 0
        else:
            bad += 1
        if bad >= patience and e["epoch"] >= min_epochs:
            return best, e["epoch"]
    return best, rec["evals"][-1]["epoch"]


def seed_tau_bound(spread_std: float, seed_std: float) -> float:
    """Expected Kendall tau between two training seeds' rankings (Gaussian model above; ``spread_std`` the
    true spread ``s``, without the noise)."""
    if seed_std <= 0:
        return 1.0
    rho = spread_std ** 2 / (spread_std ** 2 + seed_std ** 2)
    return 2 / math.pi * math.asin(rho)


def true_spread(measured_std: float, seed_std: float) -> float:
    """``s`` from the measured spread of single-seed values (variance ``s^2 + n^2``): 0 where the noise is as
    large as all of it."""
    return math.sqrt(max(measured_std ** 2 - seed_std ** 2, 0.0))


def task_table(name: str, rows: list[dict], nll: dict, averaged: dict | None = None) -> list[str]:
    """Markdown lines for one task: tau(valid_nll at patience k, at the recipe's patience) for k < p, and the
    seed bound from ``nll`` (the suite summary's valid_nll entry: ``std`` across architectures, ``seed_std``),
    and from ``averaged`` (its entry for a seed-averaged target, ``source.duplicates: mean``) where given."""
    from scipy.stats import kendalltau

    rows = [r for r in rows if r.get("status") == "ok" and r.get("evals")]
    if len(rows) < 3:
        return [f"{name}: fewer than 3 records with dev-loss curves; nothing to replay.", ""]
    p = rows[0]["recipe"]["patience"]
    at_p = [replay_patience(r, p) for r in rows]
    out = [f"**{name}** ({len(rows)} records, recipe patience {p}, min_epochs "
           f"{rows[0]['recipe'].get('min_epochs', 0)}):", "",
           "| patience k | tau(valid_nll at k, at p) | records whose best changes | mean epochs saved |",
           "| --- | --- | --- | --- |"]
    for k in range(1, p):
        at_k = [replay_patience(r, k) for r in rows]
        tau = kendalltau([a[0] for a in at_k], [b[0] for b in at_p]).statistic
        changed = sum(abs(a[0] - b[0]) > 1e-9 for a, b in zip(at_k, at_p))
        saved = statistics.fmean(b[1] - a[1] for a, b in zip(at_k, at_p))
        out.append(f"| {k} | {tau:.2f} | {changed} / {len(rows)} | {saved:.1f} |")
    out.append("")
    spread, seed = nll.get("std", math.nan), nll.get("seed_std")
    if seed is not None:
        s = true_spread(spread, seed)
        out.append(f"Seed bound on valid_nll: measured spread std {spread:.3f} (one seed: noise included), pooled "
                   f"seed std {seed:.3f}, so the true spread is ~{s:.3f} and two training seeds would rank these "
                   f"architectures at tau ~{seed_tau_bound(s, seed):.2f}.")
    else:
        out.append(f"Seed bound on valid_nll: no seed-noise runs yet (spread std {spread:.3f}).")
    if averaged and averaged.get("seed_std") is not None:
        s, k = true_spread(averaged["std"], averaged["seed_std"]), "/".join(map(str, averaged["repeats"]))
        out.append(f"The suite reads valid_nll as a mean of {k} seeds: spread std of the means {averaged['std']:.3f}, "
                   f"their noise {averaged['seed_std']:.3f}, so two independent such means would rank these "
                   f"architectures at tau ~{seed_tau_bound(s, averaged['seed_std']):.2f}.")
    out.append("")
    return out


def main(argv=None) -> int:
    from ..measure import output_path, read_records
    from ..measure_summary import task_summary
    from ..suite import load_suite

    ap = argparse.ArgumentParser(prog="python -m bench.mt.stability", description=__doc__.split("\n")[0])
    ap.add_argument("suite")
    ap.add_argument("--task", default="all")
    a = ap.parse_args(argv)
    from ..cli import ERRORS
    try:
        suite = load_suite(a.suite)
        tasks = [t for t in suite.tasks if t.measure] if a.task == "all" else [suite.task(a.task)]
        lines: list[str] = []
        for t in tasks:
            summ = task_summary(t)
            lines += task_table(t.name, read_records(output_path(t)), summ["valid_nll"],
                                summ["averaged"].get("valid_nll"))
    except ERRORS as exc:  # one line, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
