"""The recipe pilot: a few architectures per task, one long run each, every budget scored from that run.

``python -m bench.mt.pilot suites/americasnlp.yaml --task bzd-es --set lr=0.002 ...`` trains the 6 pilot
architectures (smallest, largest, 4 stratified samples) once each with evaluations every epoch and a
generous patience, and after every epoch decodes the valid split with the best-dev-loss weights so far
(only when they changed).  Because the schedule does not depend on the epoch cap or the patience, the
result a run capped at E epochs, or stopped with patience p, would have given is read off this one run
exactly.  Lines go to ``<records dir>/pilot/<task>[-tag].jsonl`` (resumable); ``--report`` prints the
tables and writes the figures PILOT.md shows.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path

import yaml

BUDGETS = (1, 2, 4, 8, 16)


def pilot_archs(space, seed: int = 0):
    from ..measure import sample_archs
    from ..space import DECODER_LIST_FIELDS, ENCODER_LIST_FIELDS, Arch

    def extreme(pick):
        d = {f: pick(space.choices[f]) for f in ("encoder_embed_dim", "decoder_embed_dim", "encoder_layer_num",
                                                  "decoder_layer_num")}
        for f in ENCODER_LIST_FIELDS:
            d[f] = [pick(space.choices[f])] * d["encoder_layer_num"]
        for f in DECODER_LIST_FIELDS:
            d[f] = [pick(space.choices[f])] * d["decoder_layer_num"]
        if "decoder_arbitrary_ende_attn" in d:
            d["decoder_arbitrary_ende_attn"] = [-1] * d["decoder_layer_num"]
        return space.validate(Arch.from_dict(d))

    return [extreme(min), extreme(max)] + sample_archs(space, 4, seed + 1000)


def _overrides(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        out[k] = yaml.safe_load(v)
    return out


def run(args) -> int:
    import torch

    from ..measure import measure_config, prepare
    from ..model.subtransformer import build_model
    from ..suite import load_suite
    from .scoring import score
    from .train import Recipe, train

    torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    task = suite.task(args.task)
    over = _overrides(args.set)
    tok_over = over.pop("vocab_size", None)
    if tok_over is not None:
        task.cfg["measure"]["tokenizer"]["vocab_size"] = int(tok_over)
        task.vocab_size = int(tok_over)
    cfg = measure_config(task)
    base = dict(cfg.get("recipe") or {})
    base.update(over)
    base.update(max_epochs=args.epochs, patience=args.patience, max_steps=10**7)
    task.cfg["measure"]["recipe"] = base
    prep = prepare(task)
    recipe: Recipe = prep.recipe
    out = args.fig_dir / f"{task.name}{'-' + args.tag if args.tag else ''}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        done = {json.loads(x)["arch_key"] for x in out.read_text().splitlines() if x.strip()}
    valid = prep.corpus.splits["valid"]
    src_ids = prep.vocab.encode_batch(valid.src)
    only = {int(x) for x in args.only.split(",")} if args.only else None
    for i, arch in enumerate(pilot_archs(prep.space)[: args.n]):
        if arch.key() in done or (only is not None and i not in only):
            continue
        torch.manual_seed(0)
        model = build_model(arch, len(prep.vocab), qkv_dim=prep.space.qkv_dim, dropout=recipe.dropout,
                            attention_dropout=recipe.attention_dropout, pad_idx=1,
                            max_positions=recipe.max_positions, seed=0)
        per_epoch, cache = [], {}
        seen = {"best": None, "since": 0}

        def decode(m, best_step, cache=cache):
            from .train import greedy

            if best_step not in cache:  # the weights loaded are the best so far: decode them once
                t1 = time.perf_counter()
                hyps = [prep.vocab.decode(h) for h in greedy(m, src_ids, recipe)]
                s = score(hyps, valid.tgt)
                cache[best_step] = {"chrf": s["chrf"], "bleu": s["bleu"], "decode_s": time.perf_counter() - t1,
                                    "sample": hyps[:2]}
            return cache[best_step]

        def on_epoch(epoch, m, best_step, seen=seen, per_epoch=per_epoch, decode=decode):
            seen["since"] = 0 if best_step != seen["best"] else seen["since"] + 1
            seen["best"] = best_step
            # score the budgets, and the point where early stopping with half the pilot's patience stops
            if epoch in BUDGETS or seen["since"] == max(1, args.patience // 2):
                per_epoch.append({"epoch": epoch, "best_step": best_step, **decode(m, best_step)})

        t0 = time.perf_counter()
        log = train(model, prep.train_pairs, prep.dev_pairs, recipe, 0, progress=not args.no_progress,
                    desc=f"pilot {i}", on_epoch=on_epoch)
        if not per_epoch or per_epoch[-1]["epoch"] != log["epochs"]:
            per_epoch.append({"epoch": log["epochs"], "best_step": log["best_step"], **decode(model, log["best_step"])})
        rec = {"task": task.name, "tag": args.tag, "index": i, "arch": arch.to_dict(), "arch_key": arch.key(),
               "arch_str": str(arch).replace(" | ", " / "), "params": int(sum(p.numel() for p in model.parameters())),
               "recipe": recipe.to_dict(), "vocab_size": len(prep.vocab), "train_pairs": len(prep.train_pairs),
               "threads": torch.get_num_threads(), "steps_per_epoch": log["steps_per_epoch"],
               "stopped": log["stopped"], "best_dev_loss": log["best_dev_loss"], "best_epoch": log["best_epoch"],
               "evals": log["evals"], "per_epoch": per_epoch, "wall_seconds": time.perf_counter() - t0}
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        last = per_epoch[-1]
        print(f"[{i}] {arch}: best dev {log['best_dev_loss']:.3f} at epoch {log['best_epoch']}, chrF {last['chrf']:.2f}, "
              f"{log['epochs']} epochs, {rec['wall_seconds']:.0f}s ({log['steps_per_epoch']} steps/epoch)",
              file=sys.stderr, flush=True)
    return 0


# ---------------------------------------------------------------- analysis
def at_budget(rec: dict, epochs: int) -> dict:
    """valid_nll and chrF of a run capped at ``epochs`` (best weights within them)."""
    evals = [e for e in rec["evals"] if e.get("epoch", 0) <= epochs]
    pe = [p for p in rec["per_epoch"] if p["epoch"] <= epochs]
    last = rec["per_epoch"][-1]["epoch"]
    if not pe or (last < epochs and rec["stopped"] != "patience"):
        return {}
    if pe[-1]["epoch"] != min(epochs, last):
        return {}  # that epoch was not scored
    return {"nll": min(e["dev_loss"] for e in evals), "chrf": pe[-1]["chrf"], "bleu": pe[-1]["bleu"],
            "epoch": pe[-1]["epoch"]}


def at_patience(rec: dict, patience: int) -> dict:
    """What early stopping with ``patience`` (evaluations) would have returned, replayed from the curve."""
    best, bad, stop_epoch = math.inf, 0, None
    min_epochs = rec["recipe"].get("min_epochs", 0)
    for e in rec["evals"]:
        if e["dev_loss"] < best - 1e-4:
            best, bad = e["dev_loss"], 0
        else:
            bad += 1
        if bad >= patience and e["epoch"] >= min_epochs:
            stop_epoch = e["epoch"]
            break
    if stop_epoch is None:
        if rec["stopped"] != "patience" and bad < patience:
            return {}  # the run ended before this patience would have stopped it
        stop_epoch = rec["evals"][-1]["epoch"]
    r = at_budget(rec, stop_epoch)
    r["stop_epoch"] = stop_epoch
    return r


def kendall(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic) if len(a) > 2 else math.nan


def report(path: Path, floors: dict | None, fig_dir: Path, patience: int) -> str:
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    name = path.stem
    lines = [f"### {name}", ""]
    if floors:
        f = floors["valid"]
        lines.append(f"Valid floors: shuffled refs chrF {f['shuffled']['chrf']:.1f}, copy source "
                     f"{f['copy']['chrf']:.1f}, constant sentence {f['constant']['chrf']:.1f}.")
        lines.append("")
    r0 = recs[0]["recipe"]
    lines.append(f"Recipe: lr {r0['lr']}, warmup {r0['warmup']}, batch {r0['batch_tokens']} tokens, dropout "
                 f"{r0['dropout']}, label smoothing {r0['label_smoothing']}, max_len {r0['max_len']}, vocab "
                 f"{recs[0]['vocab_size']}, eval every epoch, patience {r0['patience']}.")
    lines += ["", "| arch | params | s/epoch | best epoch | best valid_nll | "
              + " | ".join(f"chrF@{b}" for b in BUDGETS) + f" | chrF@p{patience} | chrF@p{2 * patience} |",
              "| --- " * (7 + len(BUDGETS)) + "|"]
    for r in recs:
        ep = max(1, len(r["per_epoch"]))
        cells = []
        for b in BUDGETS:
            x = at_budget(r, b)
            cells.append(f"{x['chrf']:.1f}" if x else "-")
        p1, p2 = at_patience(r, patience), at_patience(r, 2 * patience)
        lines.append(f"| {r['arch_str'][:60]} | {r['params'] / 1e6:.2f}M | {r['wall_seconds'] / ep:.0f} | "
                     f"{r['best_epoch']} | {r['best_dev_loss']:.3f} | " + " | ".join(cells)
                     + f" | {p1.get('chrf', math.nan):.1f} | {p2.get('chrf', math.nan):.1f} |")
    lines.append("")
    taus = []
    for a, b in itertools.pairwise(BUDGETS):
        xa, xb = [at_budget(r, a) for r in recs], [at_budget(r, b) for r in recs]
        ok = [i for i in range(len(recs)) if xa[i] and xb[i]]
        if len(ok) > 2:
            taus.append(f"{a}->{b} ep: tau chrF {kendall([xa[i]['chrf'] for i in ok], [xb[i]['chrf'] for i in ok]):.2f}"
                        f", nll {kendall([xa[i]['nll'] for i in ok], [xb[i]['nll'] for i in ok]):.2f}")
    pa, pb = [at_patience(r, patience) for r in recs], [at_patience(r, 2 * patience) for r in recs]
    ok = [i for i in range(len(recs)) if pa[i] and pb[i]]
    if len(ok) > 2:
        taus.append(f"patience {patience} -> {2 * patience}: tau chrF "
                    f"{kendall([pa[i]['chrf'] for i in ok], [pb[i]['chrf'] for i in ok]):.2f}, nll "
                    f"{kendall([pa[i]['nll'] for i in ok], [pb[i]['nll'] for i in ok]):.2f} ({len(ok)} archs)")
    lines += ["Rank stability (Kendall tau over the pilot architectures): " + "; ".join(taus) + ".", ""]
    png = _figure(recs, floors, fig_dir / f"{name}.png")
    lines += [f"![{name}]({png.relative_to(fig_dir.parent).as_posix()})", ""]
    return "\n".join(lines)


def _figure(recs, floors, png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in recs:
        lab = f"{r['params'] / 1e6:.2f}M"
        a1.plot([p["epoch"] for p in r["per_epoch"]], [p["chrf"] for p in r["per_epoch"]], marker=".", label=lab)
        ev = r["evals"]
        a2.plot([e["epoch"] for e in ev], [e["dev_loss"] for e in ev], marker=".", label=lab)
    if floors:
        for k, ls in (("shuffled", "--"), ("copy", ":"), ("constant", "-.")):
            a1.axhline(floors["valid"][k]["chrf"], color="grey", ls=ls, lw=1, label=f"floor: {k}")
    a1.set_xlabel("epochs (best-dev-loss weights so far)")
    a1.set_ylabel("valid chrF")
    a2.set_xlabel("epoch")
    a2.set_ylabel("valid NLL (nats/token)")
    a1.legend(fontsize=6)
    a2.legend(fontsize=6)
    fig.suptitle(png.stem)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mt.pilot", description=__doc__.split("\n")[0])
    p.add_argument("suite")
    p.add_argument("--task", required=True)
    p.add_argument("--set", action="append", default=[], help="recipe override KEY=VALUE (vocab_size too)")
    p.add_argument("--tag", default="")
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--only", help="comma list of pilot-architecture indices to train (split a pilot over processes)")
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--report", nargs="*", type=Path, help="pilot JSONL files to summarise (Markdown to stdout)")
    p.add_argument("--fig-dir", type=Path, default=Path("measurements/americasnlp/pilot"),
                   help="where the pilot lines and figures go (default measurements/americasnlp/pilot)")
    p.add_argument("--report-patience", type=int, default=4)
    a = p.parse_args(argv)
    if a.report is not None:
        from ..suite import load_suite
        from .floors import read_floors

        suite = load_suite(a.suite)
        for path in a.report:
            task = json.loads(path.read_text().splitlines()[0])["task"]
            print(report(path, read_floors(suite.task(task)), a.fig_dir, a.report_patience))
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
