"""``bench latency measure|curve|released``: on-device latency and latency-predictor studies.

- ``measure``: time architectures (a suite task's, sampled from its space, or an arch file) on this CPU or
  GPU with HAT's protocol into a resumable HAT-layout CSV (bench/latency_measure.py);
- ``curve``: the suite at several train sizes (same test sets, nested train sets) -> one report;
- ``released``: HAT's released latency predictors on the full datasets they were trained on (80% of them).
The studies themselves are in ``bench.latency_study``.
"""
from __future__ import annotations

from . import _args

HELP = "measure latency on this device (HAT protocol); latency learning curves"


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="latency_command", required=True)
    m = sub.add_parser("measure", help="measure latency on this machine (HAT protocol), resumable CSV")
    m.add_argument("source", help="suite YAML (its task's architectures, or samples of its space) or an arch file "
                                   "(.jsonl / .json / .yml, e.g. a HAT subtransformer config)")
    _args.task(m, help="task of the suite (default: the first)")
    m.add_argument("--n", type=int, help="number of architectures (default: all records, or 100 samples)")
    m.add_argument("--sample", action="store_true",
                   help="sample from the task's search space (automatic when its records are layer averages)")
    m.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    m.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    m.add_argument("--latiter", type=int, default=20, help="timed repetitions (HAT: 20 GPU/Xeon, 2 RPi, 300 train.py)")
    m.add_argument("--warmup", type=int, default=5)
    m.add_argument("--beam", type=int, default=5)
    m.add_argument("--src-len", type=int, default=30, help="source/target length (30 = WMT)")
    m.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    m.add_argument("--clock", default="wall", choices=["wall", "process"],
                   help="CPU timing: wall clock (HAT) or this process's CPU time (robust on a shared machine)")
    m.add_argument("--vocab-size", type=int, help="vocabulary (default: the task's, else 32768)")
    _args.out(m, "folder of the CSV <task>_<device>.csv (default measurements/latency/); a path ending in .csv "
                 "names the file itself")
    _args.no_progress(m)

    c = sub.add_parser("curve", help="learning curves: run a suite at several train sizes")
    _args.suite(c)
    c.add_argument("--sizes", default="10,100,1000", help="comma list of train sizes (default 10,100,1000)")
    c.add_argument("--predictors", help="comma list of predictor specs (default: the suite's)")
    _args.tasks(c)
    _args.out(c, "output dir (default a new runs/<suite>-curve/<UTC time>/; the committed reports/ only when "
                 "named here)")
    _args.no_write(c)
    _args.no_progress(c)

    r = sub.add_parser("released", help="HAT's released latency predictors on their own full datasets")
    _args.suite(r, default="suites/latency.yaml")
    _args.tasks(r)
    _args.out(r, "write released.md here (default a new runs/<suite>-released/<UTC time>/)")
    _args.no_write(r)


def main(args) -> int:
    from .. import latency_study

    if args.latency_command != "measure":
        args.suite = _args.suite_path(args)
    else:
        _args.one(args.task, "--task")
    return {"measure": latency_study.measure, "curve": latency_study.curve,
            "released": latency_study.released}[args.latency_command](args)
