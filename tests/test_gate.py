"""The CI gate at its edges: a move just past the tolerance fails, one just inside passes, nan and missing fail."""
import math

from bench.gate import compare
from bench.suite import load_suite


def _res(**metrics):
    return {"results": [{"task": "t", "target": "valid_bleu", "predictor": "p", "metric": m, "mean": v}
                        for m, v in metrics.items()]}


def test_tolerance_edges_on_both_directions():
    tol = {"kendall": 0.02, "mae": 0.05}
    base = _res(kendall=0.60, mae=0.30)
    assert compare(_res(kendall=0.60 - 0.019, mae=0.30 + 0.049), base, tol)[0]  # inside: ok
    ok, text = compare(_res(kendall=0.60 - 0.03, mae=0.30), base, tol)  # 1.5 x tol worse: fails
    assert not ok and "FAIL" in text and "kendall" in text
    assert not compare(_res(kendall=0.60, mae=0.30 + 0.075), base, tol)[0]  # MAE is lower-is-better
    assert compare(_res(kendall=0.90, mae=0.10), base, tol)[0]  # better is never a failure


def test_a_metric_turning_nan_or_missing_fails():
    tol = {"kendall": 0.02}
    ok, text = compare(_res(kendall=math.nan), _res(kendall=0.6), tol)
    assert not ok and "FAIL (nan)" in text
    ok, text = compare({"results": []}, _res(kendall=0.6), tol)
    assert not ok and "FAIL (missing)" in text
    assert compare(_res(kendall=math.nan), _res(kendall=math.nan), tol)[0]  # nan before and after: unchanged


def test_the_suites_gate_tolerances_are_the_documented_ones(root):
    """The committed suites gate with kendall/spearman 0.02 and MAE 0.05: a doubled tolerance must not pass silently."""
    for name in ("wmt14", "wmt19"):
        gate = load_suite(root / "suites" / f"{name}.yaml").gate
        assert gate == {"kendall": 0.02, "spearman": 0.02, "mae": 0.05, "mae_cal": 0.05}, name
