"""CI regression gate: compare new results with a baseline and fail when a metric moves the wrong way
beyond its tolerance.  Which metrics are gated, and which way is worse, come from the metric registry
(``bench.metrics.METRICS``: a declared default tolerance), overridden by the suite's ``gate``."""
from __future__ import annotations

import math

from tabulate import tabulate

from .metrics import METRICS, gate_tolerances


def compare(new: dict, baseline: dict, tolerance: dict[str, float] | None = None) -> tuple[bool, str]:
    """``tolerance``: the suite's gate (metric -> tolerance), on top of the registry's declared defaults."""
    tolerance = gate_tolerances(tolerance)
    def index(res):
        return {(r["task"], r["target"], r["predictor"], r["metric"]): r["mean"] for r in res["results"]}

    a, b = index(baseline), index(new)
    rows, failed = [], False
    for key, old in sorted(a.items()):
        metric = key[3]
        if metric not in tolerance:
            continue
        tol = tolerance[metric]
        new_v = b.get(key)
        if key not in b:
            rows.append([*key[:3], metric, _f(old), "missing", "", "FAIL (missing)"])
            failed = True
            continue
        if _nan(old) and _nan(new_v):
            continue
        if _nan(new_v) != _nan(old):
            rows.append([*key[:3], metric, _f(old), _f(new_v), "", "FAIL (nan)"])
            failed = True
            continue
        delta = new_v - old
        worse = -delta if METRICS[metric].higher_is_better else delta
        status = "FAIL" if worse > tol + 1e-12 else ("better" if worse < -tol else "ok")
        failed |= status == "FAIL"
        if status != "ok":
            rows.append([*key[:3], metric, _f(old), _f(new_v), f"{delta:+.3f} (tol {tol})", status])
    checked = sum(1 for k in a if k[3] in tolerance)
    if checked == 0:  # an empty or metric-less baseline would let anything pass
        gated = sorted(tolerance) or "none (the suite has no gate)"
        return False, (f"gate: the baseline has 0 metrics the gate checks (gated metrics: {gated}); nothing was "
                       f"compared: regenerate the baseline with `bench run --out reports/<suite>`")
    if not rows:
        text = f"gate: all {checked} checked metrics within tolerance"
    else:
        text = tabulate(rows, headers=["task", "target", "predictor", "metric", "baseline", "new", "delta", "status"],
                        tablefmt="github", disable_numparse=True)
    return (not failed), text


def _nan(x):
    return x is None or (isinstance(x, float) and math.isnan(x))


def _f(x):
    return "nan" if _nan(x) else f"{x:.3f}"


def read_results(path, flag: str) -> dict:
    """A results.json written by ``bench run``; anything else is one usage error naming the flag and the file."""
    import json

    from .outdir import UsageError

    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{flag} {path}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} {path}: not JSON ({exc.msg}, line {exc.lineno}); expected a results.json "
                         f"written by `bench run`") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("results"), list):
        raise UsageError(f"{flag} {path}: no 'results' list; expected a results.json written by `bench run`")
    return obj


def default_baseline(suite):
    """The committed reports/<suite>/results.json: under the working directory, else next to the suite's folder."""
    from pathlib import Path

    here = Path("reports") / suite.name / "results.json"
    if here.exists():
        return here
    beside = suite.path.resolve().parent.parent / "reports" / suite.name / "results.json"
    return beside if beside.exists() else here
