"""``bench check SUITE``: the CI gate; fail when predictor quality regresses against a baseline."""
from __future__ import annotations

from pathlib import Path

from . import _args

HELP = "CI gate: fail when predictor quality regresses against a baseline"


def add_arguments(p) -> None:
    _args.suite(p)
    p.add_argument("--baseline", type=Path, help="baseline results.json (default: the committed "
                                                 "reports/<suite>/results.json)")
    p.add_argument("--results", type=Path, help="compare these results instead of a fresh run")
    p.add_argument("--predictors", help="comma list (default: those in the baseline)")


def main(args) -> int:
    from predictors.registry import split_specs

    from ..gate import compare, default_baseline, read_results
    from ..metrics import gate_tolerances
    from ..runner import run_suite
    from ..suite import load_suite

    suite = load_suite(args.suite)
    baseline_path = args.baseline or default_baseline(suite)
    baseline = read_results(baseline_path, "--baseline")
    if args.results:
        new = read_results(args.results, "--results")
    else:
        preds = split_specs(args.predictors) if args.predictors else sorted({r["predictor"] for r in baseline["results"]})
        _args.check_specs(preds, "--predictors" if args.predictors else f"--baseline {baseline_path}")
        targets = sorted({r["target"] for r in baseline["results"]})
        new = run_suite(suite, predictors=preds, targets=targets or None, progress=False,
                        split=(baseline.get("split") or {}).get("kind", "random")).to_json()
        if args.predictors:  # gate only what was re-run
            ran = {r["predictor"] for r in new["results"]} | set(preds)
            baseline = dict(baseline, results=[r for r in baseline["results"] if r["predictor"] in ran])
    ok, text = compare(new, baseline, suite.gate)
    print(text)
    print(f"gate {'passed' if ok else 'FAILED'} for suite {suite.name} against {baseline_path} "
          f"(tolerances: {gate_tolerances(suite.gate)})")
    return 0 if ok else 1
