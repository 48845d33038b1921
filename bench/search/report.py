"""Markdown report and Pareto plot of one search (and its non-hybrid baseline), from the search outputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tabulate import tabulate


def _f(v, digits=3):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) >= 1000 or abs(v) < 0.01 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return str(v)


def _fit_cell(spend: dict, spec: str) -> str:
    """Fit seconds; a student loaded from the cache also shows how long it once took to train."""
    text = _f(spend["wall_s"]["fit"].get(spec))
    d = (spend.get("scorer_details") or {}).get(spec) or {}
    if d.get("student_cached"):
        text += f" (student cached; trained in {_f(d.get('train_s'))} s)"
    return text


def pareto_front(lat: np.ndarray, q: np.ndarray) -> list[int]:
    """Indices of points not dominated (lower latency, higher quality), by latency."""
    idx = [i for i in np.argsort(lat, kind="stable") if np.isfinite(q[i]) and np.isfinite(lat[i])]
    front, best = [], -np.inf
    for i in idx:
        if q[i] > best:
            front.append(int(i))
            best = q[i]
    return front


def pareto_png(path: Path, runs: list[dict], ylabel: str, limit: float | None) -> Path:
    """runs: [{label, latency: [...], quality: [...]}]; best = index 0 (populations are in rank order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for run, color, marker in zip(runs, ["tab:blue", "tab:orange", "tab:green"], ["o", "s", "^"]):
        lat, q = np.asarray(run["latency"], float), np.asarray(run["quality"], float)
        ax.scatter(lat, q, s=14, alpha=0.45, color=color, marker=marker, label=f"{run['label']} (final population)")
        front = pareto_front(lat, q)
        ax.plot(lat[front], q[front], color=color, lw=1.2, drawstyle="steps-post")
        ax.scatter([lat[0]], [q[0]], s=90, color=color, edgecolor="black", marker="*", zorder=5,
                   label=f"{run['label']} best")
    if limit is not None:
        ax.axvline(limit, color="grey", ls="--", lw=1, label=f"constraint {limit:g} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def comparison_rows(hyb: dict, base: dict) -> list[list]:
    """Side-by-side rows (metric, hybrid, baseline, hybrid/baseline) from two runs' summaries."""
    rows = []
    for label, a, b in [
        ("best: predicted quality (final scorer)", hyb["best"]["final_score"], base["best"]["final_score"]),
        ("best: predicted latency (ms)", hyb["best"]["predicted_latency_ms"], base["best"]["predicted_latency_ms"]),
        ("best: GFLOPs", hyb["best"]["gflops"], base["best"]["gflops"]),
        ("best: params (M)", hyb["best"]["params"] / 1e6, base["best"]["params"] / 1e6),
        ("expensive scorer: HAT-style evaluations", hyb["ledger"]["expensive"]["hat_evals"],
         base["ledger"]["expensive"]["hat_evals"]),
        ("expensive scorer: distinct queries", hyb["ledger"]["expensive"]["queries"],
         base["ledger"]["expensive"]["queries"]),
        ("all scorers: distinct queries", hyb["ledger"]["queries_total"], base["ledger"]["queries_total"]),
        ("search wall time (s)", hyb["spend"]["wall_s"]["search"], base["spend"]["wall_s"]["search"]),
        ("expensive scorer wall time (s)", hyb["spend"]["wall_s"]["expensive_score"],
         base["spend"]["wall_s"]["expensive_score"]),
    ]:
        ratio = a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
        rows.append([label, a, b, ratio])
    proj_a, proj_b = hyb["spend"].get("projected_expensive_h"), base["spend"].get("projected_expensive_h")
    if proj_a is not None:
        rows.append(["projected expensive-scorer hours", proj_a, proj_b, proj_a / proj_b if proj_b else None])
    return rows


def markdown(main: dict, baseline: dict | None, files: dict) -> str:
    """The search report: setup, best architecture, cost ledger, baseline comparison, trajectory."""
    s = main
    lines = [f"# Search report: {s['task']} ({s['target']}), {s['constraint']}", ""]
    stages = s["ledger"]["stages"]
    plan = "; ".join(f"iterations {st['iterations'][0]}–{st['iterations'][1]}: `{st['scorer']}`" for st in stages)
    lines += [
        f"- Algorithm: HAT evolutionary search, {s['evo']['iterations']} iterations, population "
        f"{s['evo']['population']} ({s['evo']['parents']} parents, {s['evo']['mutations']} mutations "
        f"p={s['evo']['mutation_prob']}, {s['evo']['crossovers']} crossovers); seed {s['seed']}; scorers fitted "
        f"on split seed {s['split_seed']}.",
        f"- Scoring: {plan}.",
        f"- Constraint: {s['constraint']} by `{s['latency_predictor']}`." if s["latency_predictor"] else
        f"- Constraint: {s['constraint']}.",
        f"- The expensive (final-stage) scorer is `{s['ledger']['expensive']['scorer']}`. In the paper it is HAT's "
        "weight-sharing supernet (one validation pass per candidate), which cannot run offline: here its cost is "
        "counted in evaluations, and its wall time is that of the stand-in predictor.",
        "",
        "## Best architecture",
        "",
    ]
    rows = []
    for name, run in [("this search", s)] + ([("baseline (non-hybrid)", baseline)] if baseline else []):
        b = run["best"]
        pred = ", ".join(f"{k}: {_f(v)}" for k, v in b["predicted"].items())
        rows.append([name, b["summary"].replace("|", "/"), pred, _f(b["predicted_latency_ms"]), _f(b["gflops"]),
                     _f(b["params"] / 1e6), _f((b.get("measured") or {}).get(s["target"]))])
    lines.append(tabulate(rows, headers=["run", "architecture", "predicted quality by each stage's scorer",
                                         "pred. latency ms", "GFLOPs", "params M", f"measured {s['target']}"],
                          tablefmt="github"))
    lines += ["", "## Cost ledger", ""]
    for name, run in [("this search", s)] + ([("baseline", baseline)] if baseline else []):
        led, sp = run["ledger"], run["spend"]
        rows = []
        for st in led["stages"]:
            rows.append([st["scorer"], f"{st['iterations'][0]}–{st['iterations'][1]}", st["queries"], st["hat_evals"],
                         st["failed_archs"], _fit_cell(sp, st["scorer"]),
                         _f(sp["wall_s"]["stage"][st["label"]]), sp["cost_text"].get(st["scorer"], "–")])
        lines.append(f"**{name}** — constraint: {led['constraint']['candidates']} candidates examined, "
                     f"{led['constraint']['rejected']} rejected; search {_f(sp['wall_s']['search'])} s, "
                     f"latency predictor {_f(sp['wall_s']['constraint'])} s; LLM calls {sp['llm_calls']}, "
                     f"dollars {_f(sp['dollars'])}; teacher labels one-off "
                     f"{_f(sp['teacher_label_dollars'])} $ (amortised over {sp['amortised_over']} searches: "
                     f"{_f(sp['teacher_label_dollars_amortised'])} $).")
        lines += ["", tabulate(rows, headers=["scorer", "iterations", "distinct queries", "HAT-style evaluations",
                                              "failed archs", "fit s", "stage wall s", "scorer cost()"],
                               tablefmt="github"), ""]
        exp = led["expensive"]
        lines.append(f"Expensive-scorer evaluations avoided vs a non-hybrid search: {exp['hat_evals_avoided']} of "
                     f"{exp['hat_evals_if_not_hybrid']} HAT-style evaluations.")
        lines.append("")
    if baseline:
        lines += ["## Hybrid vs non-hybrid (same seed)", ""]
        rows = [[r[0], _f(r[1]), _f(r[2]), _f(r[3])] for r in comparison_rows(s, baseline)]
        lines += [tabulate(rows, headers=["", "hybrid", "non-hybrid", "ratio"], tablefmt="github"), ""]
    if files.get("pareto"):
        lines += [f"![Pareto plot]({files['pareto']})", ""]
    lines += ["## Trajectory", ""]
    rows = [[t["iteration"], t["scorer"] + (" (switch: whole population re-scored)" if t["switch"] else ""),
             _f(t["best"], 4), _f(t["mean"], 4), t["new_queries"], t["failed"]] for t in s["trajectory"]]
    lines += [tabulate(rows, headers=["iteration", "scorer", "best", "mean", "new queries", "failed"],
                       tablefmt="github"), ""]
    lines += ["Files: " + ", ".join(f"`{v}`" for v in files.values() if v), ""]
    return "\n".join(lines)
