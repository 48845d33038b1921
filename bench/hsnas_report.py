"""``bench hsnas`` outputs: summary.json, report.md and pareto.png, rebuilt from the stage files every run."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .space import Arch

SCORE_LOSS_WHY = (
    "HAT's evolutionary search ranks candidates by the supernet's validation loss; a `score=loss` query (extract + "
    "dev NLL) skips greedy decoding, so it is several times cheaper than a `score=metric` query on this CPU "
    "(`python -m bench supernet bench` measures both), which is what makes a CPU search of this size affordable; "
    "the section below shows how each scorer ranks this task's measured architectures")
FLOPS_WHY = (
    "FLOPs (exact, `bench.costs`) instead of a latency limit: FLOPs are deterministic and exact on this box, while "
    "a CPU latency measured while the measurement jobs share its 2 cores mostly measures waiting for a core")


def _num(v):
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _f(v, d=2):
    return f"{v:.{d}f}" if _num(v) else "–"


def mean_std(vals) -> tuple[float | None, float | None, int]:
    v = [x for x in vals if _num(x)]
    if not v:
        return None, None, 0
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else None), len(v)


def _ms(vals, d=2) -> str:
    m, s, n = mean_std(vals)
    if m is None:
        return "–"
    return f"{m:.{d}f}" + (f" ± {s:.{d}f}" if s is not None else "") + f" (n={n})"


def paired(a: list[float], b: list[float]) -> dict:
    """Paired comparison of a - b over seeds: differences, sign counts, Wilcoxon signed-rank and paired t."""
    from scipy import stats

    pairs = [(x, y) for x, y in zip(a, b) if _num(x) and _num(y)]
    d = [x - y for x, y in pairs]
    out = {"n": len(d), "differences": d, "mean_difference": float(np.mean(d)) if d else None,
           "wins": sum(x > 0 for x in d), "losses": sum(x < 0 for x in d), "ties": sum(x == 0 for x in d),
           "sign_p": None, "wilcoxon_p": None, "t_p": None}
    nz = [x for x in d if x != 0]
    if nz:
        out["sign_p"] = float(stats.binomtest(sum(x > 0 for x in nz), len(nz), 0.5).pvalue)
        out["wilcoxon_p"] = float(stats.wilcoxon(nz).pvalue)
    if len(d) >= 2 and np.std(d) > 0:
        out["t_p"] = float(stats.ttest_rel([p[0] for p in pairs], [p[1] for p in pairs]).pvalue)
    return out


def floors(pipe) -> dict | None:
    from . import data

    spec = (pipe.task.cfg.get("source") or {}).get("floors")
    try:
        path = data.resolve(spec, pipe.suite.path.parent) if spec else pipe.records_path().with_name(
            f"{pipe.task.name}.floors.json")
    except Exception:  # noqa: BLE001 - floors are context, not required
        return None
    if not Path(path).exists():
        return None
    f = json.loads(Path(path).read_text())
    return {"file": str(path), **{split: {k: v.get("chrf") for k, v in f.get(split, {}).items()}
                                  for split in ("valid", "test")}}


def floor_verdict(fl: dict, runs: list[dict], col: str) -> str:
    """How many found architectures clear floor (a) (shuffled references, the suite's floor) and every floor,
    the highest of which (often the copied source) is what a non-translation scores at best."""
    vals = [(f"{r['mode']}/{r['seed']}", r[col]) for r in runs if _num(r[col])]
    named = {k: v for k, v in fl.items() if _num(v)}
    if not vals or not _num(named.get("shuffled")):
        return ""
    top_name = max(named, key=lambda k: named[k])
    a, top = named["shuffled"], named[top_name]
    below_a = [n for n, v in vals if v <= a]
    below_top = [n for n, v in vals if v <= top]
    out = f"above floor (a) ({_f(a)}): {len(vals) - len(below_a)} of {len(vals)} runs" + (
        f" (not: {', '.join(below_a)})" if below_a else "")
    if top_name != "shuffled":
        out += (f"; above the highest floor ({top_name} {_f(top)}): {len(vals) - len(below_top)} of {len(vals)}"
                + (f" (not: {', '.join(below_top)})" if below_top else ""))
    return out


def build_summary(pipe, cons, teacher, dist, runs, ck, ck_sha, diag=None) -> dict:
    from . import provenance
    from .data import sha256_of
    from .hsnas import PAPER_EVO, charge
    from .supernet import read_header

    s = pipe.s
    table = pipe.table()
    recs = pipe.records() if s.train else {}
    out_runs = []
    for (mode, seed), r in runs.items():
        ch = charge(r["queried"], table)
        ar = r["as_run_seconds"]
        overhead_w = ar["wall"] - ar["expensive_calls_wall"]
        overhead_c = ar["cpu"] - ar["expensive_calls_cpu"]
        key = Arch.from_dict(r["arch"]).key()
        rec = recs.get((key, 0))
        ok = rec is not None and rec.get("status") == "ok"
        out_runs.append({
            "mode": mode, "seed": seed,
            "search_seconds": overhead_w + ch["wall"], "search_cpu_seconds": overhead_c + ch["cpu"],
            "search_seconds_as_run": ar["wall"], "search_cpu_seconds_as_run": ar["cpu"],
            "expensive_seconds_charged": ch["wall"], "expensive_evaluations": r["expensive_evaluations"],
            "expensive_evaluations_imputed": ch["imputed"], "hat_style_evaluations": r["hat_style_evaluations"],
            "arch": r["arch"], "arch_summary": str(Arch.from_dict(r["arch"])), "gflops": r["gflops"],
            "params": r["params"], "supernet_score": r["supernet_score"], "distill_score": r.get("distill_score"),
            "measured_valid_chrf": rec["valid_chrf"] if ok else None,
            "measured_test_chrf": rec["test_chrf"] if ok else None,
            "measured_valid_nll": rec["best_dev_loss"] if ok else None,
            "record": ({"file": "records.jsonl", "arch_key": key, "seed": 0,
                        **{k: rec.get(k) for k in ("status", "valid_bleu", "test_bleu", "epochs", "stopped",
                                                   "wall_seconds", "train_seconds", "code_sha256")}}
                       if rec else None),
            "rejected": {"constraint": r["constraint"], "unbuildable": r["unbuildable_rejected"]},
        })
    found = {}
    for r in out_runs:
        found.setdefault(json.dumps(r["arch"], sort_keys=True), []).append(f"{r['mode']}/{r['seed']}")
    # the best found architecture by measured valid chrF (seed 0), with its other seeds
    best = None
    cands = [r for r in out_runs if _num(r["measured_valid_chrf"])]
    if cands:
        b = max(cands, key=lambda r: r["measured_valid_chrf"])
        key = Arch.from_dict(b["arch"]).key()
        by_seed = {sd: recs[(key, sd)] for sd in [0] + s.best_seeds if (key, sd) in recs}
        best = {"arch": b["arch"], "arch_summary": b["arch_summary"], "gflops": b["gflops"],
                "found_by": found[json.dumps(b["arch"], sort_keys=True)],
                "seeds": {str(sd): {"valid_chrf": v.get("valid_chrf"), "test_chrf": v.get("test_chrf"),
                                    "valid_nll": v.get("best_dev_loss")} for sd, v in by_seed.items()}}
        for m in ("valid_chrf", "test_chrf", "valid_nll"):
            mm, sdv, n = mean_std([v[m] for v in best["seeds"].values()])
            best[f"{m}_mean"], best[f"{m}_std"], best["n_seeds"] = mm, sdv, n
    # training cost of the found architectures (every seed), from their records
    found_keys = {Arch.from_dict(r["arch"]).key() for r in out_runs}
    trained = [v for (k, _), v in recs.items() if k in found_keys]
    train_log = json.loads((pipe.out / "stages" / "train.json").read_text()) \
        if (pipe.out / "stages" / "train.json").exists() else {"invocations": []}
    n_hybrid = sum(r["mode"] == "hybrid" for r in out_runs)
    by_mode = {m: [r for r in out_runs if r["mode"] == m] for m in dict.fromkeys(r["mode"] for r in out_runs)}

    def col(mode, k):
        return [r[k] for r in by_mode.get(mode, [])]

    comparison = {}
    if "hybrid" in by_mode and "supernet-only" in by_mode:
        seeds = sorted({r["seed"] for r in by_mode["hybrid"]} & {r["seed"] for r in by_mode["supernet-only"]})
        h = {r["seed"]: r for r in by_mode["hybrid"]}
        so = {r["seed"]: r for r in by_mode["supernet-only"]}
        comparison = {
            "seeds": seeds,
            "valid_chrf": paired([h[k]["measured_valid_chrf"] for k in seeds],
                                 [so[k]["measured_valid_chrf"] for k in seeds]),
            "test_chrf": paired([h[k]["measured_test_chrf"] for k in seeds],
                                [so[k]["measured_test_chrf"] for k in seeds]),
            "same_arch": [h[k]["arch"] == so[k]["arch"] for k in seeds],
            "time_ratio": (float(np.mean([h[k]["search_seconds"] for k in seeds])
                                 / np.mean([so[k]["search_seconds"] for k in seeds])) if seeds else None),
            "time_ratio_per_seed": [h[k]["search_seconds"] / so[k]["search_seconds"] for k in seeds],
            "cpu_ratio": (float(np.mean([h[k]["search_cpu_seconds"] for k in seeds])
                                / np.mean([so[k]["search_cpu_seconds"] for k in seeds])) if seeds else None),
            "evaluation_ratio": (float(np.mean([h[k]["expensive_evaluations"] for k in seeds])
                                       / np.mean([so[k]["expensive_evaluations"] for k in seeds])) if seeds else None),
        }
        if dist and n_hybrid:
            amort = dist["seconds"]["wall"] / n_hybrid
            comparison["time_ratio_with_amortised_distillation"] = float(
                (np.mean([h[k]["search_seconds"] for k in seeds]) + amort)
                / np.mean([so[k]["search_seconds"] for k in seeds])) if seeds else None
    measured_tbl = [v for v in table.values() if v]
    head = read_header(ck)
    ledger = {
        "stage_seconds": {
            "constraint": cons["seconds"], "teacher_selection": teacher["seconds"],
            "distillation": dist["seconds"] if dist else None,
            "searches": {m: {"wall": sum(col(m, "search_seconds")), "cpu": sum(col(m, "search_cpu_seconds")),
                             "wall_as_run": sum(col(m, "search_seconds_as_run"))} for m in by_mode},
            "training": {"wall": sum(i["wall"] for i in train_log["invocations"]),
                         "cpu": sum(i["cpu"] for i in train_log["invocations"]), "invocations": train_log["invocations"]},
        },
        "amortised": {
            "hybrid_runs": n_hybrid,
            "distillation_per_hybrid_run": ({k: v / n_hybrid for k, v in dist["seconds"].items()}
                                            if dist and n_hybrid else None),
            "teacher_selection_per_hybrid_run": ({k: v / n_hybrid for k, v in teacher["seconds"].items()}
                                                 if n_hybrid else None),
        },
        "rejected": {f"{r['mode']}/{r['seed']}": r["rejected"] for r in out_runs},
        "training_cost": {"records": len(trained), "architectures": len(found_keys),
                          "wall_seconds": sum(v.get("wall_seconds", 0) for v in trained),
                          "train_seconds": sum(v.get("train_seconds", 0) for v in trained),
                          "epochs": sum(v.get("epochs", 0) or 0 for v in trained)},
        "expensive_seconds": {"architectures_timed": len(measured_tbl),
                              "median_wall": float(np.median([v["wall"] for v in measured_tbl])) if measured_tbl else None,
                              "median_cpu": float(np.median([v["cpu"] for v in measured_tbl])) if measured_tbl else None,
                              "charging": "each run is charged the first (uncached) computation time of every distinct "
                                          "architecture it asked the supernet for, timed one architecture per call "
                                          "(expensive-seconds.json); cache hits of architectures never timed here are "
                                          "charged the median and counted as imputed"},
        "checkpoint_train_seconds": head.get("train_seconds"),
    }
    return {
        "task": pipe.task.name, "suite": str(pipe.suite.path), "target": teacher["target"],
        "constraint": {k: v for k, v in cons.items() if k != "key"}, "constraint_why": FLOPS_WHY,
        "teacher": {k: v for k, v in teacher.items() if k != "key"},
        "distill": {k: v for k, v in dist.items() if k != "key"} if dist else None,
        "expensive_scorer": pipe.supernet_spec(ck), "expensive_scorer_why": SCORE_LOSS_WHY,
        "checkpoint": {"path": str(ck), "sha256": ck_sha, "kind": head.get("kind"), "steps": head.get("steps"),
                       "stopped": head.get("stopped"), "sampling": head.get("sampling"),
                       "command": head.get("command")},
        "evo": s.evo, "paper_evo": PAPER_EVO, "seeds": s.seeds, "modes": s.modes,
        "runs": out_runs, "best": best, "comparison": comparison,
        "diagnostics": {k: v for k, v in (diag or {}).items() if k != "key"} or None,
        "found_supernet_vs_measured": _found_tau(out_runs), "ledger": ledger, "floors": floors(pipe),
        "records_file": "records.jsonl", "teacher_records_sha256": sha256_of(pipe.out / "teacher-records.jsonl"),
        "provenance": provenance.collect(pipe.suite, extra={"command": s.command, "threads": s.threads,
                                                            "checkpoint_sha256": ck_sha}),
    }


def _found_tau(runs: list[dict]) -> dict | None:
    """Kendall tau of the supernet's score against measured valid chrF over the distinct found architectures."""
    from scipy.stats import kendalltau

    seen = {}
    for r in runs:
        if _num(r["supernet_score"]) and _num(r["measured_valid_chrf"]):
            seen[json.dumps(r["arch"], sort_keys=True)] = (r["supernet_score"], r["measured_valid_chrf"])
    if len(seen) < 3:
        return None
    x, y = zip(*seen.values())
    tau = kendalltau(x, y).statistic
    return {"n": len(seen), "kendall": float(tau) if np.isfinite(tau) else None}


def pareto_png(path: Path, summary: dict, pipe) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in summary["runs"] if _num(r["measured_valid_chrf"])]
    if not runs:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    try:  # the task's measured random architectures, for context
        rt = pipe.records_task()
        tgt = summary["target"]
        xs = [pipe_gflops(pipe, r.arch) for r in rt.records]
        ys = [r.targets.get(tgt) for r in rt.records]
        ax.scatter(xs, ys, s=12, color="lightgrey", label=f"measured random architectures ({tgt})")
    except Exception:  # noqa: BLE001 - context only
        pass
    for mode, color, marker in (("hybrid", "tab:blue", "o"), ("supernet-only", "tab:orange", "s"),
                                ("random", "tab:green", "^")):
        rr = [r for r in runs if r["mode"] == mode]
        if rr:
            ax.scatter([r["gflops"] for r in rr], [r["measured_valid_chrf"] for r in rr], s=40, color=color,
                       marker=marker, alpha=0.8, edgecolor="black", label=f"{mode} (found, seed-0 training)")
    b = summary.get("best")
    if b and b.get("n_seeds", 0) > 1 and _num(b.get("valid_chrf_std")):
        ax.errorbar([b["gflops"]], [b["valid_chrf_mean"]], yerr=[b["valid_chrf_std"]], color="black", capsize=4,
                    marker="*", ms=10, label=f"best: mean ± std over {b['n_seeds']} training seeds")
    ax.axvline(summary["constraint"]["gflops_limit"], color="grey", ls="--", lw=1,
               label=f"FLOPs limit {summary['constraint']['gflops_limit']:.4g} GFLOPs")
    fl = (summary.get("floors") or {}).get("valid") or {}
    if _num(fl.get("shuffled")):
        ax.axhline(fl["shuffled"], color="red", ls=":", lw=1, label=f"floor (a) shuffled refs {fl['shuffled']:.1f}")
    if _num(fl.get("copy")) and fl["copy"] > (fl.get("shuffled") or -math.inf):
        ax.axhline(fl["copy"], color="purple", ls=":", lw=1, label=f"floor (b) copied source {fl['copy']:.1f}")
    ax.set_xlabel("GFLOPs (exact, bench.costs)")
    ax.set_ylabel("measured valid chrF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return True


def pipe_gflops(pipe, arch) -> float:
    from .hsnas import gflops
    return gflops(pipe.task, arch)


def markdown(summary: dict, has_png: bool) -> str:
    s = summary
    c, t, ev, pe = s["constraint"], s["teacher"], s["evo"], s["paper_evo"]
    L = [f"# HS-NAS end to end: {s['task']} ({s['target']})", "",
         "Generated by `bench hsnas`; every number below is computed from the files in this folder "
         "(`summary.json` holds them all).", "", "## Setup", ""]
    L.append(f"- **Constraint**: GFLOPs ≤ {c['gflops_limit']:.5g} ({c['how']}); it rejects "
             f"{c['sample_rejected_share']:.0%} of random buildable architectures (sample GFLOPs "
             f"{c['sample_gflops']['min']:.4g}–{c['sample_gflops']['max']:.4g}, median {c['sample_gflops']['median']:.4g}). "
             f"{s['constraint_why']}. Architectures whose decoder attends to more encoder layers than exist are "
             "rejected too (they cannot be built): the per-run rejection counts below include them, so they overstate "
             "what the FLOPs limit alone rejected (`rejected.unbuildable` in `summary.json` counts every unbuildable "
             "check, including candidates drawn past the last one a population needed).")
    lb = t.get("leaderboard") or []
    rec = t["records"]
    if lb:
        rows = ", ".join(f"`{r['predictor']}` {_f(r['kendall'], 3)}" for r in lb)
        L.append(f"- **Teacher**: `{t['teacher']}`, the best mean Kendall τ on {s['target']} over the task's "
                 f"{rec['rows']} measured records (snapshot `teacher-records.jsonl`, sha256 {rec['sha256'][:12]}…; "
                 f"train size {rec['train_size']}, splits {rec['splits']}), computed now by `bench.runner`: {rows}. "
                 "With so few test architectures per split these τ are noisy; the choice is what the leaderboard "
                 "would say today, not a settled ranking.")
    else:
        L.append(f"- **Teacher**: `{t['teacher']}` (`--teacher`), fitted on {rec['train_size']} of the "
                 f"{rec['rows']} measured records.")
    d = s.get("distill")
    if d:
        L.append(f"- **Initializer**: `{d['spec']}`: HAT's MLP trained on the teacher's labels of "
                 f"{d['details'].get('pool')} seeded architectures of the space (the paper's recipe of distilling on "
                 f"the unlabelled pool); fitting the teacher, labelling and distillation took {_f(d['seconds']['wall'], 1)} s "
                 f"wall / {_f(d['seconds']['cpu'], 1)} s CPU once, amortised over the hybrid runs below."
                 + (f" {d['note']}." if d.get("note") else ""))
    ck = s["checkpoint"]
    L.append(f"- **Expensive scorer**: `{s['expensive_scorer'].replace(ck['path'], '…/' + Path(ck['path']).name)}` "
             f"(HAT supernet, {ck['steps']} steps, stopped by {ck['stopped']}; sha256 {ck['sha256'][:12]}…). "
             f"Why `score=loss`: {s['expensive_scorer_why']}.")
    L.append(f"- **Search**: HAT's evolution scaled down proportionally for this CPU: population {ev['population']} "
             f"({ev['parents']} parents, {ev['mutations']} mutations, {ev['crossovers']} crossovers), "
             f"{ev['iterations']} iterations, mutation probability {ev['mutation_prob']}, hybrid switch at iteration "
             f"{ev['switch_at']} (half); HAT: population {pe['population']} ({pe['parents']}/{pe['mutations']}/"
             f"{pe['crossovers']}), {pe['iterations']} iterations, switch {pe['switch_at']}. `random` = best by the "
             "supernet of N distinct random constraint-satisfying architectures, N = the hybrid run's distinct "
             "supernet queries for the same seed. Seeds: " + ", ".join(map(str, s["seeds"])) + ".")
    L.append("- **Search time**: `search_seconds` = the search's own overhead as run + the *uncached* time of "
             "each distinct supernet evaluation it asked for: " + s["ledger"]["expensive_seconds"]["charging"]
             + f" ({s['ledger']['expensive_seconds']['architectures_timed']} architectures timed, median "
             f"{_f(s['ledger']['expensive_seconds']['median_wall'])} s wall / "
             f"{_f(s['ledger']['expensive_seconds']['median_cpu'])} s CPU each). The distillation is not in a "
             "hybrid run's search_seconds; it is shown amortised. One torch thread, on a CPU shared with other jobs: "
             "wall seconds include waiting for a core, CPU seconds do not.")
    L.append("- **Training**: every found architecture trained from scratch with the suite's recipe by `bench measure`'s "
             "code into `records.jsonl` (seed 0; the best by measured valid chrF also with seeds "
             + ", ".join(str(k) for k in s["best"]["seeds"] if k != "0") if s.get("best") else
             "- **Training**: none yet (`--no-train` or nothing finished).")
    if s.get("best"):
        L[-1] += "). They go to this folder, not the task's records file: searched architectures are not a random " \
                 "sample of the space, and the suite's file is the leaderboard's random sample (and is locked by " \
                 "running measurement jobs)."
    L += ["", "## Results per mode (mean ± std over seeds)", ""]
    from tabulate import tabulate
    modes = list(dict.fromkeys(r["mode"] for r in s["runs"]))
    rows = []
    for m in modes:
        rr = [r for r in s["runs"] if r["mode"] == m]
        rows.append([m, _ms([r["measured_valid_chrf"] for r in rr]), _ms([r["measured_test_chrf"] for r in rr]),
                     _ms([r["measured_valid_nll"] for r in rr], 3), _ms([r["search_seconds"] for r in rr], 1),
                     _ms([r["search_cpu_seconds"] for r in rr], 1), _ms([r["expensive_evaluations"] for r in rr], 1),
                     _ms([r["gflops"] for r in rr], 4)])
    L.append(tabulate(rows, headers=["mode", "valid chrF", "test chrF", "valid NLL", "search s (wall)",
                                     "search s (CPU)", "supernet evals", "GFLOPs"], tablefmt="github"))
    L += ["", "Per run:", ""]
    rows = [[r["mode"], r["seed"], r["arch_summary"], _f(r["gflops"], 4), _f(r["supernet_score"], 3),
             _f(r["measured_valid_chrf"]), _f(r["measured_test_chrf"]), _f(r["measured_valid_nll"], 3),
             _f(r["search_seconds"], 1), _f(r["search_seconds_as_run"], 1), r["expensive_evaluations"],
             r["expensive_evaluations_imputed"],
             f"{r['rejected']['constraint'].get('rejected', '–')}/{r['rejected']['constraint'].get('candidates', '–')}"]
            for r in s["runs"]]
    L.append(tabulate(rows, headers=["mode", "seed", "architecture", "GFLOPs", "supernet −loss", "valid chrF",
                                     "test chrF", "valid NLL", "search s", "as run s", "evals", "imputed",
                                     "rejected (FLOPs or unbuildable)/candidates"], tablefmt="github"))
    cmp = s.get("comparison") or {}
    if cmp.get("seeds"):
        L += ["", "## Hybrid vs supernet-only", ""]
        for tgt in ("valid_chrf", "test_chrf"):
            p = cmp[tgt]
            name = tgt.replace("_", " ")
            if not p["n"]:
                L.append(f"- Measured {name}: no seed has both runs' architectures trained yet.")
                continue
            diffs = ", ".join(_f(x) for x in p["differences"])
            L.append(f"- Measured {name}, hybrid − supernet-only per seed {cmp['seeds']}: [{diffs}] "
                     f"(mean {_f(p['mean_difference'])}; {p['wins']} wins, {p['losses']} losses, {p['ties']} ties; "
                     f"sign test p = {_f(p['sign_p'], 3)}, Wilcoxon p = {_f(p['wilcoxon_p'], 3)}, paired t p = "
                     f"{_f(p['t_p'], 3)}). With n = {p['n']} seed pairs the smallest two-sided sign/Wilcoxon p is "
                     f"{2 * 0.5 ** p['n']:.3g} and a paired t has {p['n'] - 1} degree(s) of freedom: "
                     "read the differences, not the p-values.")
        L.append(f"- Same architecture found: {cmp['same_arch']}.")
        L.append(f"- Search time hybrid / supernet-only (uncached, wall): {_f(cmp['time_ratio'], 3)} (per seed "
                 + ", ".join(_f(x, 3) for x in cmp["time_ratio_per_seed"]) + f"); CPU: {_f(cmp['cpu_ratio'], 3)}; "
                 f"supernet evaluations: {_f(cmp['evaluation_ratio'], 3)}"
                 + (f"; with the distillation amortised over the hybrid runs: "
                    f"{_f(cmp.get('time_ratio_with_amortised_distillation'), 3)}" if
                    cmp.get("time_ratio_with_amortised_distillation") is not None else "")
                 + ". The paper reports about 0.5 (half the search time) at equal quality.")
    dg = s.get("diagnostics")
    if dg:
        L += ["", "## Do the scorers rank this task's architectures?", ""]
        tnames = list(next(iter(dg["kendall"].values())).keys()) if dg["kendall"] else []
        rows = [[name] + [_f(v.get(t), 3) for t in tnames] for name, v in dg["kendall"].items()]
        L.append(f"Kendall τ on the {dg['n']} measured random architectures of `teacher-records.jsonl` ({dg['note']}):")
        L.append("")
        L.append(tabulate(rows, headers=["scorer"] + tnames, tablefmt="github"))
        fs = s.get("found_supernet_vs_measured")
        if fs:
            L.append("")
            L.append(f"Over the {fs['n']} distinct found architectures, the supernet's score against their measured "
                     f"valid chrF: Kendall τ {_f(fs['kendall'], 3)} (a narrow range of architectures near the limit).")
    b = s.get("best")
    fl = s.get("floors")
    if b:
        L += ["", "## Best found architecture", ""]
        L.append(f"`{b['arch_summary']}` ({_f(b['gflops'], 4)} GFLOPs; found by {', '.join(b['found_by'])}): valid chrF "
                 f"{_f(b['valid_chrf_mean'])}" + (f" ± {_f(b['valid_chrf_std'])}" if b["valid_chrf_std"] is not None
                                                  else "")
                 + f", test chrF {_f(b['test_chrf_mean'])}" + (f" ± {_f(b['test_chrf_std'])}" if b["test_chrf_std"]
                                                                is not None else "")
                 + f" over {b['n_seeds']} training seed(s) ("
                 + "; ".join(f"seed {k}: {_f(v['valid_chrf'])}/{_f(v['test_chrf'])}" for k, v in b["seeds"].items())
                 + "). It was picked as the best seed-0 result, so its seed-0 value is optimistic; the other seeds "
                   "are the unbiased estimate.")
    if fl:
        L += ["", "## Floors (what does not translate)", ""]
        L.append(f"From `{Path(fl['file']).name}`: valid chrF shuffled references {_f(fl['valid'].get('shuffled'))}, "
                 f"copied source {_f(fl['valid'].get('copy'))}, most frequent training sentence "
                 f"{_f(fl['valid'].get('constant'))}; test {_f(fl['test'].get('shuffled'))} / "
                 f"{_f(fl['test'].get('copy'))} / {_f(fl['test'].get('constant'))}. Measured valid chrF of the found "
                 "architectures: " + ", ".join(f"{r['mode']}/{r['seed']} {_f(r['measured_valid_chrf'])}"
                                               for r in s["runs"]) + ".")
        verdicts = [f"- Measured {split} chrF {v}." for split, col in (("valid", "measured_valid_chrf"),
                                                                       ("test", "measured_test_chrf"))
                    for v in [floor_verdict(fl[split], s["runs"], col)] if v]
        L += [""] + verdicts if verdicts else []
    led = s["ledger"]
    st = led["stage_seconds"]
    L += ["", "## Ledger (seconds: wall / CPU)", ""]
    rows = [["constraint (FLOPs quantile)", _f(st["constraint"]["wall"], 1), _f(st["constraint"]["cpu"], 1)],
            ["teacher selection (leaderboard of candidates)", _f(st["teacher_selection"]["wall"], 1),
             _f(st["teacher_selection"]["cpu"], 1)]]
    if st["distillation"]:
        rows.append(["teacher fit + labels + distillation (once)", _f(st["distillation"]["wall"], 1),
                     _f(st["distillation"]["cpu"], 1)])
        a = led["amortised"]["distillation_per_hybrid_run"]
        if a:
            rows.append([f"  amortised per hybrid run ({led['amortised']['hybrid_runs']})", _f(a["wall"], 1),
                         _f(a["cpu"], 1)])
    for m, v in st["searches"].items():
        rows.append([f"searches {m} (all seeds, uncached; as run {_f(v['wall_as_run'], 1)})", _f(v["wall"], 1),
                     _f(v["cpu"], 1)])
    rows.append(["supernet training (checkpoint header; one-off, shared by every mode, not in search_seconds)",
                 _f(led.get("checkpoint_train_seconds"), 1), "–"])
    rows.append(["training found architectures (this folder's invocations)", _f(st["training"]["wall"], 1),
                 _f(st["training"]["cpu"], 1)])
    L.append(tabulate(rows, headers=["stage", "wall s", "CPU s"], tablefmt="github"))
    tc = led["training_cost"]
    L.append("")
    L.append(f"Training cost of the found architectures (from their records): {tc['records']} runs of "
             f"{tc['architectures']} architectures, {_f(tc['wall_seconds'], 0)} s wall ({_f(tc['train_seconds'], 0)} s "
             f"in training steps), {tc['epochs']} epochs. Constraint rejections per run are in `summary.json` "
             "(`ledger.rejected`).")
    if has_png:
        L += ["", "## Measured chrF vs the constraint", "", "![pareto](pareto.png)"]
    sn_cmd = s["checkpoint"].get("command")
    sn_cmd = " ".join(sn_cmd) if isinstance(sn_cmd, list) else sn_cmd
    L += ["", "## Reproduce", "", "```bash"]
    if sn_cmd:
        L.append(f"# the supernet (its checkpoint header's command)\n{sn_cmd}")
    L += ["# this pipeline (a rerun reuses every finished stage)", s["provenance"].get("command") or "", "```", "",
          f"git commit {s['provenance'].get('git_commit')}, suite sha256 {s['provenance'].get('suite_sha256', '')[:12]}…, "
          f"torch {s['provenance'].get('torch')}. Rerunning the same command reuses every finished stage."]
    return "\n".join(L) + "\n"


def write_outputs(pipe, cons, teacher, dist, runs, ck, ck_sha, diag=None) -> None:
    from .hsnas import _dump

    summary = build_summary(pipe, cons, teacher, dist, runs, ck, ck_sha, diag)
    has_png = pareto_png(pipe.out / "pareto.png", summary, pipe)
    _dump(pipe.out / "summary.json", summary)
    (pipe.out / "report.md").write_text(markdown(summary, has_png))
