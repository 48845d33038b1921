"""Leaderboards generated from results: Markdown (and CSV/JSON) tables, never edited by hand."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from tabulate import tabulate

from .metrics import METRICS

SUPERNET_ROWS = ("hat", "sandwich", "layer-mos", "neuron-mos")
SUPERNET_NOTE = (
    "the supernet rows (`hat`, `sandwich`, `layer-mos`, `neuron-mos`) use the release's column labels literally. "
    "They are reported to be mislabelled relative to the paper: the figures the paper gives for Layer-wise MoS on "
    "WMT'14 En-De are those of the release's `Supernet (Sandwich)` column (`sandwich` here), and its Neuron-wise "
    "MoS those of the release's `Layer-wise MoS` (`layer-mos`). The paper's supernet table is not among this "
    "project's reference figures (../shared/docs/paper-reported.md), so the harness cannot confirm the mapping: "
    "compare these rows with the paper by value, not by name.")


def columns() -> list[str]:
    """Leaderboard columns: every declared metric, in declaration order (bench.metrics is the one list)."""
    return list(METRICS)


def _fmt(mean, std, digits=2):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _cost(rows: dict, llm: dict | None = None) -> str:
    fit = rows.get("fit_s", {}).get("mean")
    q = rows.get("query_ms_per_arch", {}).get("mean")
    parts = []
    if fit is not None and fit >= 0.0005:
        parts.append(f"fit {fit:.3g} s")
    if q is not None:
        parts.append(f"{q:.3g} ms/arch")
    if llm:  # LLM predictors: calls made, cache hits and dollars, summed over seeds
        d = llm.get("dollars")
        parts.append(f"{llm['calls']} calls, {llm['cache_hits']} cached, " + ("$?" if d is None else f"${d:.4g}"))
    return ", ".join(parts) or "–"


def _llm_costs(results: dict) -> dict:
    """(task, target, predictor) -> summed LLM counters of its runs (those whose cost has ``calls``)."""
    out: dict[tuple, dict] = {}
    for r in results.get("runs", []):
        c = r.get("cost") or {}
        if "calls" not in c:
            continue
        s = out.setdefault((r["task"], r["target"], r["predictor"]), {"calls": 0, "cache_hits": 0, "dollars": 0.0})
        s["calls"] += c["calls"]
        s["cache_hits"] += c.get("cache_hits", 0)
        s["dollars"] = None if s["dollars"] is None or c.get("dollars") is None else s["dollars"] + c["dollars"]
    return out


def _cell(r: dict) -> str:
    m = METRICS[r["metric"]]
    text = _fmt(r["mean"], r["std"], m.digits)
    n, k = r.get("seeds"), r.get("seeds_defined")
    if n is not None and k is not None and 0 < k < n:
        text += f" ({k}/{n} seeds)"
    return text


def _versus(k: dict) -> str:
    """Δτ to the table's best and the Holm-corrected p; ≈ marks a statistical tie."""
    if "best" not in k:
        return "–"
    if k.get("p_vs_best") is None:
        return "best"
    d, p = k.get("delta_vs_best"), k.get("p_holm")
    if d is None or p is None or math.isnan(d) or math.isnan(p):
        return "–"
    return f"{d:+.2f}, p={p:.2g}" + (" ≈" if k.get("tied_with_best") else "")


def tables(results: dict) -> list[dict]:
    """Group aggregated rows into one table per (task, target): ranked rows, ceilings, in-sample rows."""
    groups: dict[tuple, dict[str, dict]] = {}
    for r in results["results"]:
        groups.setdefault((r["task"], r["target"]), {}).setdefault(r["predictor"], {})[r["metric"]] = r
    out = []
    llm = _llm_costs(results)
    for (task, target), preds in groups.items():
        cols = [c for c in columns() if any(c in m for m in preds.values())]
        rows = {"ranked": [], "ceiling": [], "in_sample": []}
        for name, m in preds.items():
            k = m.get("kendall", {})
            ci = k.get("ci95")
            first = next(iter(m.values()))
            tied = bool(k.get("tied_with_best")) and k.get("p_vs_best") is not None
            row = {"predictor": name + (" ≈" if tied else "")}
            for c in cols:
                row[c] = _cell(m[c]) if c in m else "–"
            row["tau_ci"] = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci and not math.isnan(ci[0]) else "–"
            row["versus"] = _versus(k)
            cov = m.get("coverage", {})
            fails = cov.get("failures", 0)
            row["coverage"] = f"{cov.get('mean', float('nan')):.0%}" + (f" ({fails} failed)" if fails else "")
            if cov.get("seed_errors"):
                row["coverage"] += f", {cov['seed_errors']} seed(s) errored"
            row["cost"] = _cost(m, llm.get((task, target, name)))
            row["_sort"] = k.get("mean", float("nan"))
            kind = "ceiling" if first.get("ceiling") else "in_sample" if first.get("in_sample") else "ranked"
            rows[kind].append(row)
        for rs in rows.values():
            rs.sort(key=lambda r: (math.isnan(r["_sort"]), -(r["_sort"] if not math.isnan(r["_sort"]) else 0)))
        out.append({"task": task, "target": target, "columns": cols, "rows": rows["ranked"],
                    "ceiling": rows["ceiling"], "in_sample": rows["in_sample"]})
    return out


def _headers(cols, versus=True):
    heads = ["predictor"]
    for c in cols:
        heads.append(METRICS[c].label)
        if c == "kendall":
            heads.append("τ 95% CI")
            if versus:
                heads.append("Δτ vs best, p (Holm)")
    return heads + ["coverage", "cost"]


def _cells(row, cols, versus=True):
    cells = [row["predictor"]]
    for c in cols:
        cells.append(row[c])
        if c == "kendall":
            cells.append(row["tau_ci"])
            if versus:
                cells.append(row["versus"])
    return cells + [row["coverage"], row["cost"]]


def _table(rows, cols, versus=True) -> str:
    return tabulate([_cells(r, cols, versus) for r in rows], headers=_headers(cols, versus), tablefmt="github",
                    disable_numparse=True)


def markdown(results: dict) -> str:
    prov = results["provenance"]
    lines = [f"# Leaderboard: suite `{results['suite']}`", "",
             "Generated by `python -m bench run`; do not edit. Each cell is mean ± std (population) over the "
             "split seeds; `(2/3 seeds)` marks a metric undefined on some seeds (e.g. constant predictions), "
             "averaged over the seeds where it is defined. Predictors are sorted by Kendall τ (signed, tau-b). "
             "`regret@1`: target of the best test architecture minus that of the predictor's top pick (target "
             "units, lower is better); `precision@5`: overlap of the predictor's top 5 with the true top 5 "
             "(ties broken at random, in expectation). `MAE (calibrated)` is for "
             "predictors that only rank: a linear map fitted on the train split puts them on the target's scale. "
             f"`Δτ vs best`: {_test_sentence(results)}; **≈** marks a row statistically tied with the best "
             "(corrected p ≥ α). The noise ceiling (a twin measurement of the target used as the prediction) and "
             "in-sample rows are scored alike and never ranked. "
             "Cost: fit time per split and query time per architecture in this run, on the machine that ran it; "
             "a score served from the cache costs only its lookup (LLM calls and cache hits are counted apart).", ""]
    split = results.get("split") or {}
    for task, desc in (split.get("tasks") or {}).items():
        lines += [f"- {task}: {desc}."]
    if split.get("tasks"):
        lines.append("")
    for kind, fr in (results.get("friedman") or {}).items():
        lines += _friedman_lines(fr, kind)
    ref = results.get("reference") or {}
    notes = results.get("notes") or {}
    skipped = results.get("skipped") or []
    split_ceilings = {r["predictor"] for r in results.get("runs") or [] if (r.get("details") or {}).get("twin") == "split"}
    for tab in tables(results):
        lines.append(f"## {tab['task']} — target `{tab['target']}`")
        lines.append("")
        lines.append(_table(tab["rows"], tab["columns"]))
        lines.append("")
        if tab["ceiling"]:
            split_twin = any(r["predictor"] in split_ceilings for r in tab["ceiling"])
            lines += ["Noise ceiling — a twin measurement as the prediction (reference, **not ranked**)"
                      + (". `twin=split` is the valid and test score of one trained model: it bounds evaluation-set "
                         "noise only, not training-seed noise (see the seed-noise data note, where there is one)"
                         if split_twin else "") + ":", "",
                      _table(tab["ceiling"], tab["columns"], versus=False), ""]
        if tab["in_sample"]:
            lines += ["In-sample, **not ranked** — scored on data these predictors were fitted on "
                      "(`\"in_sample\": true` in results.json):", "",
                      _table(tab["in_sample"], tab["columns"], versus=False), ""]
        if any(r["predictor"].split(" ")[0] in SUPERNET_ROWS for r in tab["rows"]):
            lines += [f"- Data note: {SUPERNET_NOTE}", ""]
        lines += _row_notes(results, tab)
        sk = [s for s in skipped if s["task"] == tab["task"] and s["target"] == tab["target"]]
        if sk:
            lines.append("Skipped: " + "; ".join(f"`{s['predictor']}` ({s['reason']})" for s in sk) + ".")
            lines.append("")
        refrows = [r for r in ref.get("rows", []) if r["task"] == tab["task"] and r["target"] == tab["target"]]
        if refrows:
            lines.append("Reference rows — **reported, not measured** (not ranked; " + ref.get("citation", "") + "):")
            lines.append("")
            heads = ["predictor (reported, not measured)", "Kendall τ", "MAE"]
            lines.append(tabulate([[r["predictor"], r.get("kendall", "–"), r.get("mae", "–")] for r in refrows],
                                  headers=heads, tablefmt="github", disable_numparse=True))
            lines.append("")
        for n in notes.get(tab["task"], []) if tab["target"] != "latency_ms" else []:
            lines.append(f"- Data note: {n}")
        if notes.get(tab["task"]) and tab["target"] != "latency_ms":
            lines.append("")
    tasks_without_rows = {s["task"] for s in skipped} - {t["task"] for t in tables(results)}
    for t in sorted(tasks_without_rows):
        lines.append(f"## {t}: nothing ran")
        lines += [f"- `{s['predictor']}` / {s['target']}: {s['reason']}" for s in skipped if s["task"] == t]
        lines.append("")
    lines += ["---", "Provenance: " + ", ".join(
        f"{k} `{prov[k]}`" for k in ("bench_version", "git_commit", "suite_file", "suite_sha256", "python", "torch",
                                     "numpy", "scikit-learn", "timestamp") if prov.get(k)),
              "", f"Data files ({len(prov.get('data_sha256', {}))}) and predictor configs are listed in "
                  "`results.json`."]
    return "\n".join(lines) + "\n"


def _row_notes(results: dict, tab: dict) -> list[str]:
    """What a predictor says about where its numbers came from (``details()["note"]``, ``["missing"]``: e.g.
    supernet scores replayed from a committed file), once per row."""
    seen: dict[str, list[str]] = {}
    for r in results.get("runs", []):
        if r["task"] == tab["task"] and r["target"] == tab["target"]:
            for k in ("note", "missing"):
                n = (r.get("details") or {}).get(k)
                if n and n not in seen.setdefault(r["predictor"], []):
                    seen[r["predictor"]].append(n)
    lines = [f"- Row note, `{p}`: {n}" for p, ns in seen.items() for n in ns]
    return lines + [""] if lines else []


def _test_sentence(results: dict) -> str:
    c = results.get("comparison") or {}
    return (f"τ of the row minus τ of the table's best, {c.get('test', 'paired bootstrap')}, "
            f"α = {c.get('alpha', 0.05)}")


def _friedman_lines(fr: dict, kind: str) -> list[str]:
    """Cross-task summary: mean rank by Kendall τ, Friedman test, Nemenyi critical difference."""
    lines = [f"## Across {kind} tables: mean rank by Kendall τ ({fr['n_tables']} tables, "
             f"{fr.get('n_common', len(fr['ranks']))} predictors with a defined τ in all)", ""]
    if fr.get("reason"):
        return lines + [fr["reason"], ""]
    lines.append(tabulate([[p, f"{r:.2f}"] for p, r in fr["ranks"].items()], headers=["predictor", "mean rank"],
                          tablefmt="github", disable_numparse=True))
    lines += ["", f"Friedman χ² = {fr['chi2']:.2f}, p = {fr['p']:.3g}; Nemenyi critical difference at α = "
                  f"{fr['alpha']}: {fr['cd']:.2f} ranks (two predictors whose mean ranks differ by less are not "
                  f"distinguishable across these tables). Plot: `{fr['png']}`.", ""]
    return lines


def to_csv(results: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["task", "target", "predictor", "metric", "mean", "std"])
    for r in results["results"]:
        w.writerow([r["task"], r["target"], r["predictor"], r["metric"], r["mean"], r["std"]])
    return buf.getvalue()


def write(results: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "leaderboard.md", out_dir / "results.json"
    from . import ranks
    for fr in (results.get("friedman") or {}).values():
        if not fr.get("reason"):
            ranks.plot(fr, out_dir / fr["png"])
    md.write_text(markdown(results))
    js.write_text(dumps(results) + "\n")
    return md, js


def dumps(results) -> str:
    """Strict JSON (RFC 8259): NaN and ±inf become null, so any JSON parser reads results.json."""
    return json.dumps(strict(results), indent=1, sort_keys=False, default=_json_default, allow_nan=False)


def strict(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [strict(v) for v in o]
    if hasattr(o, "tolist"):
        return strict(o.tolist())
    return o


def _json_default(o):
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
