"""Benchmark: every zero-cost proxy on every labelled architecture of a task, cold (the cache is not read).

    python -m bench zc-bench suites/wmt14.yaml --task wmt14-en-de [--batch-size 32 --length 12] [--json out.json]

Per architecture: one model build, one shared loss pass (forward + backward, with grasp's graph), then
each proxy's own work.  Reports medians over architectures, the standalone estimate per proxy (build +
the pass it needs + its own work), and the total; results are written to the cache, so a following
``bench run`` with the same options is free.
"""
from __future__ import annotations

import json
import platform
import sys
import time

import numpy as np


def add_arguments(p):
    p.add_argument("suite")
    p.add_argument("--task", required=True)
    p.add_argument("--models", action="store_true",
                   help="only time building and a forward pass (batch 1, 30+30 tokens) of the space's extremes")
    p.add_argument("--batch", default="bpe", choices=["bpe", "random"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--length", type=int, default=12)
    p.add_argument("--limit", type=int, help="only the first N architectures")
    p.add_argument("--json", help="write the per-architecture timings here")


def main(args) -> int:
    import torch
    from tqdm import tqdm

    from bench.cache import Cache
    from bench.suite import load_suite

    from .batch import make_batch
    from .proxies import LOSS_BASED, PROXIES, ProxyConfig, cache_key, score_arch

    task = load_suite(args.suite).task(args.task)
    if args.models:
        return model_timing(task)
    batch = make_batch(task, args.batch, args.batch_size, args.length)
    cfg = ProxyConfig()
    cache = Cache(namespace="zero-cost")
    archs = [r.arch for r in task.records][: args.limit]
    rows = []
    t_all = time.perf_counter()
    for arch in tqdm(archs, desc=f"zc-bench {task.name}", unit="arch", file=sys.stderr):
        t0 = time.perf_counter()
        res = score_arch(arch, task.vocab_size, batch, PROXIES, cfg, task.space.qkv_dim)
        total = time.perf_counter() - t0
        timing = res.pop("_timing")
        cache.put_many({cache_key(task, arch, n, batch, cfg): dict(r, timing=timing) for n, r in res.items()})
        rows.append({"arch": arch.key(), "total_s": total, **{f"{k}_s": v for k, v in timing.items()},
                     **{f"{n}_s": res[n]["seconds"] for n in PROXIES}})
    wall = time.perf_counter() - t_all
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0] if k.endswith("_s")}
    print(f"task {task.name}: {len(rows)} architectures, all {len(PROXIES)} proxies, batch {args.batch} "
          f"{args.batch_size}x{args.length}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{platform.processor() or platform.machine()}")
    print(f"wall {wall:.1f} s; median per architecture {med['total_s']:.2f} s "
          f"(build {med['build_s']:.2f} s, shared loss pass {med['loss_pass_s']:.2f} s)")
    print("| proxy | median own s/arch | standalone estimate s/arch |")
    print("|---|---|---|")
    for n in PROXIES:
        alone = med["build_s"] + (med["loss_pass_s"] if n in LOSS_BASED or n == "nwot" else 0.0) + med[f"{n}_s"]
        print(f"| {n} | {med[f'{n}_s']:.3f} | {alone:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"task": task.name, "batch": batch.identity, "wall_s": wall, "median": med, "rows": rows}, fh,
                      indent=1)
    return 0


def extremes(space):
    """The largest and smallest architectures of a space (every dimension at its max / min choice)."""
    from bench.space import Arch

    out = []
    for pick in (max, min):
        c = {f: pick(v) for f, v in space.choices.items()}
        ne, nd = c["encoder_layer_num"], c["decoder_layer_num"]
        out.append(Arch(c["encoder_embed_dim"], ne, (c["encoder_ffn_embed_dim"],) * ne,
                        (c["encoder_self_attention_heads"],) * ne, c["decoder_embed_dim"], nd,
                        (c["decoder_ffn_embed_dim"],) * nd, (c["decoder_self_attention_heads"],) * nd,
                        (c["decoder_ende_attention_heads"],) * nd, (c["decoder_arbitrary_ende_attn"],) * nd))
    return out


def model_timing(task, repeats: int = 3) -> int:
    """Build time and teacher-forced forward time (batch 1, 30 source + 30 target tokens, no grad), medians."""
    import torch

    from . import build_model

    print(f"task {task.name} (V={task.vocab_size}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| architecture | params (HAT count) | build s | forward s (1x30+30) |")
    print("|---|---|---|---|")
    src = torch.tensor([[2] + [7] * 29])
    prev = torch.tensor([[7] * 29 + [2]])
    for arch in extremes(task.space):
        builds, fwds = [], []
        for r in range(repeats):
            t0 = time.perf_counter()
            model = build_model(arch, task.vocab_size, task.space.qkv_dim, seed=r).eval()
            builds.append(time.perf_counter() - t0)
            with torch.no_grad():
                model(src, prev)  # warm-up
                t0 = time.perf_counter()
                model(src, prev)
                fwds.append(time.perf_counter() - t0)
        n = model.num_parameters()
        print(f"| {arch} | {(n['without_embedding'] + n['embedding']) / 1e6:.1f}M | {np.median(builds):.2f} | "
              f"{np.median(fwds):.3f} |")
    return 0
