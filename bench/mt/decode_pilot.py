"""Decoding pilot: is the records' chrF held down by greedy decoding or by the final weights?

``python -m bench.mt.decode_pilot suites/americasnlp.yaml --task bzd-es --n 6`` retrains ``n`` of the task's
measured architectures (seed 0, spread over the records' valid chrF) exactly as ``bench measure`` did, keeps the
last ``--avg`` best-dev-loss checkpoints on the way, and decodes valid and test four ways: greedy with the best
weights (what the record holds: the retraining is checked against it), beam search (``--beam``, length penalty
``--lenpen``), and both again with the mean of those checkpoints. Lines go to
``<fig-dir>/decoding-<task>.jsonl`` (resumable); ``--report`` prints the Markdown PILOT.md shows.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from collections import deque
from pathlib import Path

VARIANTS = ("greedy", "beam", "greedy+avg", "beam+avg")


def spread_pick(records: list[dict], n: int) -> list[dict]:
    """``n`` seed-0 records at evenly spaced ranks of valid chrF (lowest and highest included)."""
    ok = sorted((r for r in records if r.get("status") == "ok" and r.get("seed", 0) == 0),
                key=lambda r: (r["valid_chrf"], r["arch_key"]))
    if n >= len(ok):
        return ok
    return [ok[round(i * (len(ok) - 1) / max(n - 1, 1))] for i in range(n)]


def run(args) -> int:
    import torch

    from ..measure import output_path, prepare, read_records
    from ..model.subtransformer import build_model
    from ..space import Arch
    from ..suite import load_suite
    from .beam import average_states, beam_search
    from .scoring import score
    from .train import dev_loss, greedy, train

    torch.set_num_threads(args.threads)
    task = load_suite(args.suite).task(args.task)
    prep = prepare(task)
    r = prep.recipe
    records_path = output_path(task)
    picked = spread_pick(read_records(records_path), args.n)
    out = args.fig_dir / f"decoding-{task.name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    old = [json.loads(x) for x in out.read_text().splitlines() if x.strip()] if out.exists() else []
    for x in old:  # one file, one setting: a resumed run must not mix decodings in one table
        for key, want in (("beam", args.beam), ("lenpen", args.lenpen), ("avg_of", args.avg)):
            if x.get(key) != want:
                raise SystemExit(f"{out}: its lines were decoded with {key} = {x.get(key)!r}, not {want!r}; "
                                 f"rerun with that setting, or write elsewhere with --fig-dir")
    done = {x["arch_key"] for x in old}
    splits = {s: prep.corpus.splits[s] for s in ("valid", "test")}
    src_ids = {s: prep.vocab.encode_batch(sp.src) for s, sp in splits.items()}
    for k, rec in enumerate(picked):
        if rec["arch_key"] in done:
            continue
        arch = prep.space.validate(Arch.from_dict(rec["arch"]))
        seed = rec.get("seed", 0)
        torch.manual_seed(seed)  # as bench.mt.record.measure_one, so the greedy decode reproduces the record
        model = build_model(arch, len(prep.vocab), qkv_dim=prep.space.qkv_dim, dropout=r.dropout,
                            attention_dropout=r.attention_dropout, pad_idx=1, max_positions=r.max_positions, seed=seed)
        kept: deque = deque(maxlen=args.avg)
        last = {"best": None}

        def on_epoch(epoch, m, best_step, kept=kept, last=last):
            if best_step != last["best"]:  # a new best: keep its weights for averaging
                kept.append(copy.deepcopy(m.state_dict()))
                last["best"] = best_step

        t0 = time.perf_counter()
        log = train(model, prep.train_pairs, prep.dev_pairs, r, seed, progress=not args.no_progress,
                    desc=f"decode pilot {k}", on_epoch=on_epoch)
        train_s = time.perf_counter() - t0
        if log["best_step"] != last["best"]:  # a best found by the evaluation after the last epoch
            kept.append(copy.deepcopy(model.state_dict()))
        best_state = copy.deepcopy(model.state_dict())
        avg_state = average_states(list(kept))
        model.load_state_dict(avg_state)
        avg_nll = dev_loss(model, prep.dev_pairs, r, torch, "cpu")
        line = {"task": task.name, "arch_key": rec["arch_key"], "arch": rec["arch"], "params": rec["params"],
                "seed": seed, "record": {f: rec[f] for f in ("valid_chrf", "test_chrf", "valid_bleu", "test_bleu",
                                                             "valid_nll", "code_sha256", "recipe_sha256")},
                "records_file": records_path.as_posix(), "beam": args.beam, "lenpen": args.lenpen,
                "avg_of": args.avg, "averaged": len(kept), "best_dev_loss": log["best_dev_loss"], "avg_dev_loss": avg_nll,
                "epochs": log["epochs"], "stopped": log["stopped"], "train_seconds": train_s,
                "threads": torch.get_num_threads(), "torch": torch.__version__, "variants": {}}
        for variant in VARIANTS:
            model.load_state_dict(avg_state if variant.endswith("+avg") else best_state)
            model.eval()
            res = {}
            for s, sp in splits.items():
                t1 = time.perf_counter()
                ids = (beam_search(model, src_ids[s], r, beam=args.beam, lenpen=args.lenpen)
                       if variant.startswith("beam") else greedy(model, src_ids[s], r))
                hyps = [prep.vocab.decode(h) for h in ids]
                sc = score(hyps, sp.tgt)
                res[s] = {"chrf": sc["chrf"], "bleu": sc["bleu"], "seconds": time.perf_counter() - t1,
                          "sample": hyps[:2]}
            line["variants"][variant] = res
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        v = line["variants"]
        for s in ("valid", "test"):
            if v["greedy"][s]["chrf"] != rec[f"{s}_chrf"]:
                print(f"[{k}] WARNING: the retraining's greedy {s} chrF {v['greedy'][s]['chrf']:.4f} is not the record's "
                      f"{rec[f'{s}_chrf']:.4f}: read the variants against greedy, not the record", file=sys.stderr)
        print(f"[{k}] {arch}: valid chrF record {rec['valid_chrf']:.2f}, "
              + ", ".join(f"{name} {v[name]['valid']['chrf']:.2f}" for name in VARIANTS)
              + f"; dev NLL best {log['best_dev_loss']:.3f}, avg of {len(kept)} {avg_nll:.3f}; {train_s:.0f}s",
              file=sys.stderr, flush=True)
    return 0


def report(path: Path, floors: dict | None) -> str:
    """Per architecture and on average: chrF of each decoding against the record and floor (a)."""
    import numpy as np
    from scipy.stats import wilcoxon

    from ..metrics import kendall  # the leaderboard's tau-b

    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not rows:
        return f"{path}: no lines yet"
    rows.sort(key=lambda x: x["record"]["valid_chrf"])
    first = rows[0]
    fa = {s: ((floors or {}).get(s) or {}).get("shuffled", {}).get("chrf") for s in ("valid", "test")}
    lines = [f"### {first['task']}: {len(rows)} architectures, beam {first['beam']} (length penalty "
             f"{first['lenpen']}), mean of the last {max(x['averaged'] for x in rows)} best-dev-loss checkpoints",
             "", "valid / test chrF; *record* is the measured record, *greedy* its retraining decoded the same way.",
             "", "| params | record | greedy | beam | greedy+avg | beam+avg | dev NLL best / avg |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for x in rows:
        v = x["variants"]
        cells = [f"{x['record']['valid_chrf']:.2f} / {x['record']['test_chrf']:.2f}"]
        cells += [f"{v[n]['valid']['chrf']:.2f} / {v[n]['test']['chrf']:.2f}" for n in VARIANTS]
        lines.append(f"| {x['params'] / 1e6:.2f}M | " + " | ".join(cells)
                     + f" | {x['best_dev_loss']:.3f} / {x['avg_dev_loss']:.3f} |")
    lines += ["", "| split | variant | mean chrF | mean change vs greedy | better / worse | Wilcoxon p | Kendall τ with "
                  "greedy | above floor (a) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in ("valid", "test"):
        g = [x["variants"]["greedy"][s]["chrf"] for x in rows]
        for n in VARIANTS:
            c = [x["variants"][n][s]["chrf"] for x in rows]
            d = [b - a for a, b in zip(g, c)]
            p = "-"
            if n != "greedy" and any(d) and len(d) > 1:
                p = f"{wilcoxon(c, g).pvalue:.2f}"
            tau = f"{kendall(np.asarray(g), np.asarray(c)):+.2f}" if n != "greedy" and len(rows) > 2 else "-"
            above = f"{sum(v > fa[s] for v in c)} of {len(c)}" if fa[s] is not None else "-"
            lines.append(f"| {s} | {n} | {statistics.fmean(c):.2f} | "
                         f"{statistics.fmean(d):+.2f} | {sum(v > 0 for v in d)} / {sum(v < 0 for v in d)} | {p} | "
                         f"{tau} | {above} |")
    rep = [abs(x["variants"]["greedy"]["valid"]["chrf"] - x["record"]["valid_chrf"]) for x in rows]
    lines += ["", f"Retraining reproduces the records: largest |greedy - record| valid chrF {max(rep):.3g}"
                  + ("" if max(rep) < 1e-6 else " (not bit-identical: read the variants against *greedy*)") + "."]
    nll = [x["avg_dev_loss"] - x["best_dev_loss"] for x in rows]
    lines.append(f"Averaging changes the dev NLL by {statistics.fmean(nll):+.3f} nats on average "
                 f"({min(nll):+.3f} to {max(nll):+.3f}).")
    if any(math.isnan(v) for v in nll):
        lines.append("Some averaged dev NLLs are NaN.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mt.decode_pilot", description=__doc__.split("\n")[0])
    p.add_argument("suite")
    p.add_argument("--task", help="the task to retrain (required unless --report)")
    p.add_argument("--n", type=int, default=6, help="measured architectures to retrain (spread over valid chrF)")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--lenpen", type=float, default=1.0)
    p.add_argument("--avg", type=int, default=5, help="best-dev-loss checkpoints to average")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--fig-dir", type=Path, default=Path("measurements/americasnlp/pilot"))
    p.add_argument("--report", nargs="*", type=Path, help="decoding-pilot JSONL files to summarise")
    a = p.parse_args(argv)
    if a.report is not None:
        from ..suite import load_suite
        from .floors import read_floors

        suite = load_suite(a.suite)
        parts = []
        for path in a.report:
            task = json.loads(path.read_text().splitlines()[0])["task"]
            parts.append(report(path, read_floors(suite.task(task))))
        print("\n\n".join(parts))
        return 0
    if not a.task:
        p.error("--task is required (or --report FILES)")
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
