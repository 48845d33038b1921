"""Across tables: which predictors are better *in general*?  Mean ranks, Friedman test, critical difference.

Each (task, target) table ranks its predictors by mean Kendall τ (1 = best, ties share the mean rank).  Over the
predictors present with a defined τ in every table, the Friedman test asks whether the mean ranks differ at all,
and Nemenyi's critical difference CD = q_α · sqrt(k (k + 1) / (6 N)) (Demšar 2006) says how far apart two mean
ranks must be to call the predictors different.  The plot is Demšar's critical-difference diagram (PNG,
matplotlib Agg, drawn only when a leaderboard is written).
"""
from __future__ import annotations

import math

import numpy as np

ALPHA = 0.05


def by_kind(rows: list[dict], kinds: dict[str, str], alpha: float = ALPHA) -> dict[str, dict]:
    """One summary per target kind (quality, latency): ranks of BLEU and of latency tables are not mixed.
    ``kinds``: target name -> kind."""
    out = {}
    for kind in dict.fromkeys(kinds.values()):
        sel = [r for r in rows if kinds.get(r["target"]) == kind]
        if sel:
            out[kind] = friedman(sel, alpha, png=f"critical-difference-{kind}.png")
    return out


def friedman(rows: list[dict], alpha: float = ALPHA, png: str = "critical-difference.png") -> dict:
    """``rows``: aggregated result rows (ranked ones: ceilings and in-sample rows are left out)."""
    tau: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if r["metric"] == "kendall" and not r.get("ceiling") and not r.get("in_sample") and r["mean"] is not None and np.isfinite(r["mean"]):
            tau.setdefault((r["task"], r["target"]), {})[r["predictor"]] = r["mean"]
    tables = list(tau.values())
    common = sorted(set.intersection(*(set(t) for t in tables))) if tables else []
    out = {"n_tables": len(tables), "n_common": len(common), "ranks": {}, "alpha": alpha, "png": png}
    if len(tables) < 2 or len(common) < 3:
        out["reason"] = (f"A Friedman test needs at least 2 tables and 3 predictors with a defined τ in all of "
                         f"them; here {len(tables)} table(s), {len(common)} predictor(s).")
        return out
    from scipy import stats
    scores = np.array([[t[p] for p in common] for t in tables])  # (N tables, k predictors)
    r = np.vstack([stats.rankdata(-row) for row in scores])
    mean = r.mean(axis=0)
    order = np.argsort(mean, kind="stable")
    k, n = len(common), len(tables)
    chi2, p = stats.friedmanchisquare(*scores.T)
    q = stats.studentized_range.ppf(1 - alpha, k, 1e6) / math.sqrt(2)  # df -> infinity, as Nemenyi's table
    out.update(ranks={common[i]: float(mean[i]) for i in order}, chi2=float(chi2), p=float(p),
               cd=float(q * math.sqrt(k * (k + 1) / (6 * n))))
    return out


def cliques(ranks, cd: float) -> list[tuple[float, float]]:
    """Maximal runs of sorted mean ranks spanning less than CD (groups not shown to differ), as (lo, hi)."""
    r = np.sort(np.asarray(ranks, float))
    groups, last_end = [], -1
    for i in range(len(r)):
        j = i
        while j + 1 < len(r) and r[j + 1] - r[i] < cd:
            j += 1
        if j > i and j > last_end:
            groups.append((float(r[i]), float(r[j])))
            last_end = j
    return groups


def plot(fr: dict, path) -> None:
    """Critical-difference diagram: mean ranks on an axis, a bar of length CD, predictors joined when closer."""
    # no pyplot: its import alone is ~0.2 s
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names, ranks = list(fr["ranks"]), np.array(list(fr["ranks"].values()))
    k = len(names)
    half = (k + 1) // 2
    margin = max(1.5, 0.8 * k)  # room for the names, best half on the right, the rest on the left
    fig = Figure(figsize=(10, 1.4 + 0.22 * half))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.02, 0.98, 0.84))
    ax.set_xlim(k + margin, 1 - margin)  # inverted: rank 1 (best) on the right, as in Demšar's figures
    ax.set_ylim(-half - 1, 1.6)
    ax.hlines(0, 1, k, color="black")
    for i in range(1, k + 1):
        ax.vlines(i, 0, 0.15, color="black")
        ax.text(i, 0.3, str(i), ha="center", fontsize=8)
    for j, (name, rk) in enumerate(zip(names, ranks)):
        best_side = j < half
        y = -0.8 - (j if best_side else k - 1 - j)
        edge = 1 - 0.1 * margin if best_side else k + 0.1 * margin
        ax.plot([rk, rk, edge], [0, y, y], color="tab:blue", lw=0.8)
        ax.text(edge, y, f" {name} ({rk:.2f}) ", ha="left" if best_side else "right", va="center", fontsize=7)
    end = min(k, 1 + fr["cd"])  # the CD bar from rank 1, clipped to the axis when CD exceeds the rank range
    ax.plot([1, end], [1.0, 1.0], color="tab:red", lw=2)
    ax.text((1 + end) / 2, 1.15, f"CD = {fr['cd']:.2f}" + (" (beyond the axis)" if end < 1 + fr["cd"] else ""),
            ha="center", fontsize=8, color="tab:red")
    for level, (a, b) in enumerate(cliques(ranks, fr["cd"])):  # Demšar: one bar per maximal group of
        y = -0.25 - 0.18 * level                                  # predictors closer than CD, staggered
        ax.plot([a - 0.03, b + 0.03], [y, y], color="black", lw=2.5)
    ax.set_axis_off()
    ax.set_title(f"mean rank by Kendall τ over {fr['n_tables']} tables; Friedman p = {fr['p']:.3g}", fontsize=9)
    fig.savefig(path, dpi=120, metadata={"Software": None})


# ------------------------------------------------------------------ across suites (`bench ranks`)
def across_suites(results: dict) -> tuple[str, dict]:
    """Pool the tables of several suites' results (path -> results.json; per target kind) into one Friedman
    test and CD diagram: (the Markdown report, kind -> Friedman result)."""
    from tabulate import tabulate

    rows, kinds, names = [], {}, []
    for path, res in results.items():
        names.append(f"`{res.get('suite', path)}`")
        kinds.update({tg: v["kind"] for t in res["targets"].values() for tg, v in t.items()})
        rows += [dict(r, task=f"{res.get('suite')}/{r['task']}") for r in res["results"]]
    out = by_kind(rows, kinds)
    lines = [f"# Mean ranks across suites {', '.join(names)}", "",
             ("Generated by `python -m bench ranks`; do not edit. Each (suite, task, target) table ranks its "
              "predictors by mean Kendall τ; predictors present with a defined τ in every table of a kind are "
              "compared by a Friedman test and Nemenyi's critical difference."), ""]
    for kind, fr in out.items():
        lines.append(f"## {kind} targets: {fr['n_tables']} tables, {fr['n_common']} predictors in all")
        lines.append("")
        if fr.get("reason"):
            lines += [fr["reason"], ""]
            continue
        lines += [tabulate([[p, f"{r:.2f}"] for p, r in fr["ranks"].items()], headers=["predictor", "mean rank"],
                           tablefmt="github", disable_numparse=True), "",
                  (f"Friedman χ² = {fr['chi2']:.2f}, p = {fr['p']:.3g}; critical difference (α = {fr['alpha']}) "
                   f"{fr['cd']:.2f} ranks. ![critical difference]({fr['png']})"), ""]
    return "\n".join(lines), out
