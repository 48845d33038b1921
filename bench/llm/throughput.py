"""How fast the LLM client scores the 8,500-architecture pool.

A local server (separate process, OpenAI wire format) answers every request after a fixed delay; llm-pp
scores the pool through the real AsyncOpenAI client and a fresh response cache at concurrency 1 and N.
Reported: throughput at each, their ratio (target >= 25x at N=32), and the harness's own overhead per call
(wall time per call at concurrency 1 minus the server's delay), plus a fully cached re-run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _score(task, archs, concurrency, port, cache_path):
    from predictors import registry
    from predictors.base import Context

    ctx = Context(task=task, target="valid_bleu", seed=task.seeds[0], options={"concurrency": concurrency})
    pred = registry.create(f"llm-pp[llm=openai-compatible:bench,base_url=http://127.0.0.1:{port}/v1,"
                           f"cache={cache_path},progress=false,backoff=0.05]", ctx)
    train, _ = task.split(ctx.seed)
    pred.fit([r.arch for r in train], [r.targets["valid_bleu"] for r in train])
    t0, c0 = time.perf_counter(), time.process_time()
    p = pred.predict(archs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, dict(pred.cost(), cpu_s=cpu), int((p == p).sum())


def run(args) -> dict:
    """``args``: suite, task, delay, concurrency, n, n1 (the flags of ``bench llm-bench``)."""
    from ..suite import load_suite

    task = load_suite(args.suite).task(args.task)
    pool = task.pool
    server = subprocess.Popen([sys.executable, "-m", "bench.llm.localserver", "--delay", str(args.delay)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory() as tmp:
            _score(task, pool[-5:], 1, port, Path(tmp) / "warm.sqlite")  # import the SDK, warm up the server
            n1, nN = min(args.n1, len(pool)), min(args.n, len(pool))
            w1, c1, ok1 = _score(task, pool[:n1], 1, port, Path(tmp) / "c1.sqlite")
            wN, cN, okN = _score(task, pool[:nN], args.concurrency, port, Path(tmp) / "cN.sqlite")
            wC, cC, _ = _score(task, pool[:nN], args.concurrency, port, Path(tmp) / "cN.sqlite")
    finally:
        server.terminate()
        server.wait(10)
    t1, tN = c1["calls"] / w1, cN["calls"] / wN
    return {"delay_s": args.delay, "concurrency": args.concurrency, "cpu_count": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "client_cpu_ms_per_call": round(1000 * cN["cpu_s"] / max(1, cN["calls"]), 3),
            "c1": {"archs": n1, "calls": c1["calls"], "answered": ok1, "wall_s": round(w1, 3),
                   "calls_per_s": round(t1, 2)},
            f"c{args.concurrency}": {"archs": nN, "calls": cN["calls"], "answered": okN, "wall_s": round(wN, 3),
                                      "calls_per_s": round(tN, 2)},
            "speedup": round(tN / t1, 2),
            "overhead_ms_per_call_c1": round(1000 * (w1 / c1["calls"] - args.delay), 3),
            "wall_ms_per_call_at_concurrency": round(1000 * wN / cN["calls"], 3),
            "cached_rerun": {"archs": nN, "calls": cC["calls"], "cache_hits": cC["cache_hits"],
                             "us_per_arch": round(1e6 * wC / nN, 1)}}
