"""The notebook API: results as one tidy pandas DataFrame.

    import bench
    df = bench.load_results("reports/wmt14/results.json")          # what a run wrote
    df = bench.run("suites/wmt14.yaml", predictors=["mean", "gp"])  # a fresh run; writes nothing unless out=
    df.query("metric == 'kendall'").groupby(["task", "predictor"]).value.agg(["mean", "std"])

One row per task x target x predictor x metric x seed (columns ``COLUMNS``), so pandas does the grouping that
the leaderboard does by hand; the full results (provenance, skipped rows, raw predictions) ride along in
``df.attrs["results"]``.  ``bench run --format csv`` prints the same frame.  pandas is imported here only, so
``import bench`` stays cheap.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["task", "target", "predictor", "metric", "seed", "value"]


def to_frame(results: dict) -> pd.DataFrame:
    """The tidy frame of a results dict (``results.json`` as loaded, or ``RunResult.to_json()``)."""
    import pandas as pd

    rows = []
    for r in results.get("results") or []:
        for seed, value in (r.get("per_seed") or {}).items():
            rows.append((r["task"], r["target"], r["predictor"], r["metric"], int(seed),
                         math.nan if value is None else float(value)))
    df = pd.DataFrame(rows, columns=COLUMNS).astype({"seed": "int64", "value": "float64"})
    df.attrs["results"] = results
    return df


def load_results(path: str | Path) -> pd.DataFrame:
    """The tidy frame of a ``results.json`` written by ``bench run`` (or of the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such results file; `bench run SUITE` writes reports/<suite>/results.json")
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(results, dict) or not isinstance(results.get("results"), list):
        raise ValueError(f"{path}: not a bench results file (no 'results' list); expected the results.json "
                         f"that `bench run` writes")
    return to_frame(results)


def run(suite: Any, predictors: list[str] | str | None = None, tasks: list[str] | str | None = None,
        targets: list[str] | str | None = None, out: str | Path | None = None, progress: bool = False,
        **options: Any) -> pd.DataFrame:
    """Run a suite (a path or a loaded ``Suite``) like ``bench run`` and return the tidy frame.

    ``predictors``/``tasks``/``targets``: lists or comma strings (default: the suite's predictors, every task,
    each task's primary target).  ``options`` are the run-wide predictor options of ``bench run``: ``llm``,
    ``concurrency``, ``max_calls``, ``max_dollars``, ``samples``.  Nothing is written unless ``out`` names a
    folder, which then gets ``leaderboard.md`` and ``results.json`` as from the command line.
    """
    from predictors.registry import split_specs

    from . import report
    from .runner import run_suite
    from .suite import Suite, load_suite

    allowed = {"llm", "concurrency", "max_calls", "max_dollars", "samples"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"bench.run: unknown option(s) {unknown}; allowed: {sorted(allowed)}")
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    res = run_suite(suite, predictors=_names(predictors, split_specs), tasks=_names(tasks), targets=_names(targets),
                    options={k: v for k, v in options.items() if v is not None}, progress=progress)
    results = res.to_json()
    if out is not None:
        report.write(results, Path(out))
    return to_frame(results)


def _names(value, split=None) -> list[str] | None:
    if value is None or isinstance(value, (list, tuple)):
        return list(value) if value else None
    return (split or (lambda s: [x.strip() for x in s.split(",") if x.strip()]))(value)
