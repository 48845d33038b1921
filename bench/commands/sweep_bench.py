"""``python -m bench sweep-bench``: does a sweep scale with workers, and what does Ray cost to start?

Measures `bench measure`'s tasks (4 tiny architectures, one thread each) on a fresh local Ray with 1 CPU and with
2 CPUs (wall ratio 2 vs 1; the issue's target is <= 0.6 on an idle 2-core machine), the same with the ``local``
executor's processes side by side, and Ray's start-up overhead (``ray.init``, the first no-op task on a cold
worker, ``ray.shutdown``).  The machine's load average is printed with the numbers: on a shared machine the ratio
measures the contention too.  Writes ``reports/sweep/benchmark.md`` unless ``--no-write``.
"""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from .. import executors
from ..measure import measure_task, prepare, sample_archs
from ..outdir import out_file
from ..suite import load_suite
from . import _args

HELP = "benchmark: sweep wall time with 2 workers vs 1 (local, Ray); Ray start-up"

SRC = ["ye' shkèxnã bua'ë", "ye' dör bikâkala", "ìs a' shkèxnã", "ye' tö i ñã", "be' shkèxnã", "ie' dör bua'ë",
       "sa' tö i ñã", "ìs be' dör"]
TGT = ["yo amanecí muy bien", "yo soy maestro", "cómo amanecieron", "yo lo comí", "tú amaneciste",
       "él es bueno", "nosotros lo comimos", "cómo eres"]
SUITE = """
name: sweep-bench
predictors: [params]
tasks:
  - name: tiny
    search_space:
      encoder_embed_dim: [32, 64]
      decoder_embed_dim: [32, 64]
      encoder_ffn_embed_dim: [64, 128]
      decoder_ffn_embed_dim: [64, 128]
      encoder_layer_num: [1, 2]
      decoder_layer_num: [1, 2]
      encoder_self_attention_heads: [2]
      decoder_self_attention_heads: [2]
      decoder_ende_attention_heads: [2]
      decoder_arbitrary_ende_attn: [-1, 1]
      qkv_dim: 32
    source: {kind: records, file: {path: tiny.jsonl}, targets: {chrf: {column: valid_chrf}}, train_size: 2}
    measure:
      corpus:
        src_lang: bzd
        tgt_lang: es
        train: {src: {path: train.src}, tgt: {path: train.tgt}}
        valid: {src: {path: train.src}, tgt: {path: train.tgt}, lines: [0, 4]}
        test: {src: {path: train.src}, tgt: {path: train.tgt}, lines: [4, 8]}
      tokenizer: {kind: bpe, vocab_size: 60}
      recipe: {max_steps: STEPS, max_epochs: 100000, batch_tokens: 64, warmup: 2, eval_every: 50,
               patience: 1000, decode_max_len_b: 3}
"""


def add_arguments(p):
    p.add_argument("--archs", type=int, default=4, help="tiny architectures per sweep (default 4)")
    p.add_argument("--steps", type=int, default=300, help="training steps per architecture (default 300)")
    p.add_argument("--repeats", type=int, default=1, help="sweeps per configuration; the median is kept")
    _args.out(p, "folder for benchmark.md (default reports/sweep/); a path ending in .md names the file")
    _args.no_write(p)


def _sweep(executor, prep, archs) -> float:
    tasks = [executors.Task(f"[{i}]", (a.to_dict(), 0, i, "cpu", False)) for i, a in enumerate(archs)]
    t0 = time.perf_counter()
    for o, _ in executors.run_tasks(executor, measure_task, prep, tasks, "sweep", progress=False):
        if o.error or o.value["status"] != "ok":
            raise RuntimeError(f"sweep-bench: task {o.task.label} failed: {o.error or o.value.get('error')}")
    return time.perf_counter() - t0


def _pid() -> int:
    return os.getpid()


def _ray_startup(num_cpus: int) -> dict:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="warning")
    t1 = time.perf_counter()
    ray.get(ray.remote(num_cpus=1)(_pid).remote())
    t2 = time.perf_counter()
    ray.shutdown()
    return {"init": t1 - t0, "first_task": t2 - t1, "shutdown": time.perf_counter() - t2}


def main(args) -> int:
    import statistics

    import ray

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "train.src").write_text("\n".join(SRC) + "\n")
        (d / "train.tgt").write_text("\n".join(TGT) + "\n")
        (d / "suite.yaml").write_text(SUITE.replace("STEPS", str(args.steps)))
        task = load_suite(d / "suite.yaml").task("tiny")
        prep = prepare(task)
    archs = sample_archs(task.space, args.archs, 0)
    load0 = os.getloadavg()
    rows, walls = [], {}
    for name, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
        times, startup = [], []
        for _ in range(args.repeats):
            if name == "local":
                times.append(_sweep(executors.LocalExecutor(workers, threads=1), prep, archs))
            else:  # a fresh Ray with `workers` CPUs: tasks ask for 1 CPU each, so at most `workers` run at once
                t0 = time.perf_counter()
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=True,
                         logging_level="warning")
                startup.append(time.perf_counter() - t0)
                try:
                    times.append(_sweep(executors.RayExecutor(None, threads=1), prep, archs))
                finally:
                    ray.shutdown()
        walls[(name, workers)] = statistics.median(times)
        print(f"{name} x{workers}: {walls[(name, workers)]:.1f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        rows.append([name, workers, f"{walls[(name, workers)]:.1f}",
                     f"{statistics.median(startup):.1f}" if startup else "-"])
    boot = [_ray_startup(2) for _ in range(max(1, args.repeats))]
    boot_med = {k: statistics.median(b[k] for b in boot) for k in boot[0]}
    load1 = os.getloadavg()
    ratios = {n: walls[(n, 2)] / walls[(n, 1)] for n in ("local", "ray")}
    text = "\n".join([
        "# Sweep benchmark: 2 workers vs 1 (`python -m bench sweep-bench`)",
        "",
        (f"{args.archs} tiny architectures (`bench measure` tasks, 1 torch thread each, {args.steps} steps), "
        f"median of {args.repeats}; host {platform.node()}, {os.cpu_count()} CPU(s), "
        f"load average {load0[0]:.1f} before / {load1[0]:.1f} after (1-min; the machine is shared: the ratio "
        "includes the contention, the target <= 0.6 is for an idle 2-core machine)."),
        "",
        tabulate(rows, headers=["executor", "workers", "sweep wall s", "ray.init s"], tablefmt="github"),
        "",
        f"- wall ratio 2 workers / 1: local {ratios['local']:.2f}, ray {ratios['ray']:.2f} (target <= 0.6)",
        (f"- Ray start-up (num_cpus=2, median of {len(boot)}): ray.init {boot_med['init']:.1f} s, first no-op task "
        f"on a cold worker {boot_med['first_task']:.1f} s, ray.shutdown {boot_med['shutdown']:.1f} s"),
        f"- ray {ray.__version__}, python {platform.python_version()}",
        "",
    ])
    print(text)
    if not args.no_write:
        out = out_file(args.out, Path("reports/sweep/benchmark.md"), "benchmark.md", (".md",))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    return 0
