"""Trainer throughput against a minimal plain-PyTorch loop (``bench measure ... --throughput``).

The training loop is where the project's compute goes, so its overhead is measured, not assumed: the
same model (same seed), the same batches in the same order, the same threads, in the same process;
the trainer's time includes everything ``train()`` does for those steps (building the batches, the
schedule, the final dev evaluation on a 1-batch dev set), the minimal loop gets its batches for free.
Runs alternate (trainer, minimal, trainer, minimal, ...) so a neighbour's load hits both alike.
"""
from __future__ import annotations

import dataclasses
import random
import statistics
import subprocess
import sys
import time

from .tokenizer import PAD
from .train import batches, collate, train


def _model(prep, arch, seed, torch):
    from ..model.subtransformer import build_model

    torch.manual_seed(seed)
    r = prep.recipe
    return build_model(arch, len(prep.vocab), qkv_dim=prep.space.qkv_dim, dropout=r.dropout,
                       attention_dropout=r.attention_dropout, pad_idx=PAD, max_positions=r.max_positions, seed=seed)


def _sequence(prep, recipe, steps, seed, torch):
    """The batches ``train()`` visits in its first ``steps`` steps (its epoch shuffles, replayed)."""
    groups = batches(prep.train_pairs, recipe.batch_tokens)
    rng, seq = random.Random(seed), []
    order = list(range(len(groups)))
    while len(seq) < steps:
        rng.shuffle(order)
        seq += order
    return [collate(prep.train_pairs, groups[b], torch, "cpu") for b in seq[:steps]]


def minimal_loop(model, seq, recipe, torch) -> None:
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=recipe.betas)
    model.train()
    for src, prev, gold in seq:
        logits = model(src, prev)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), gold.reshape(-1), ignore_index=PAD,
                               label_smoothing=recipe.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)
        opt.step()


def compare(prep, arch, steps: int = 30, repeats: int = 3, batch_tokens: int | None = None, seed: int = 0) -> dict:
    """Tokens/s (target tokens, no padding) of ``train()`` and of the minimal loop on the same batches."""
    import torch

    recipe = dataclasses.replace(prep.recipe, max_steps=steps, max_epochs=10**6, eval_every=0, patience=10**6,
                                 **({"batch_tokens": batch_tokens} if batch_tokens else {}))
    seq = _sequence(prep, recipe, steps, seed, torch)
    tokens = sum(int((g != PAD).sum()) for _, _, g in seq)
    dev = prep.dev_pairs[:8]
    t_train, t_min = [], []
    for _ in range(repeats):
        m = _model(prep, arch, seed, torch)
        t0 = time.perf_counter()
        train(m, prep.train_pairs, dev, recipe, seed, progress=False)
        t_train.append(time.perf_counter() - t0)
        m = _model(prep, arch, seed, torch)
        t0 = time.perf_counter()
        minimal_loop(m, seq, recipe, torch)
        t_min.append(time.perf_counter() - t0)
    tr, mi = statistics.median(t_train), statistics.median(t_min)
    return {"threads": torch.get_num_threads(), "batch_tokens": recipe.batch_tokens, "steps": steps,
            "target_tokens": tokens, "trainer_tok_s": tokens / tr, "minimal_tok_s": tokens / mi, "ratio": mi / tr}


def parallel_workers(suite_path: str, task: str, workers: int, steps: int, batch_tokens: int) -> float:
    """Aggregate tokens/s of ``workers`` one-thread processes running the minimal loop at once."""
    code = ("import sys,time,torch; torch.set_num_threads(1)\n"
            "from bench.suite import load_suite; from bench.measure import prepare, sample_archs\n"
            "from bench.mt import throughput as T\n"
            f"p=prepare(load_suite({suite_path!r}).task({task!r})); a=sample_archs(p.space,1,p.sample_seed)[0]\n"
            f"import dataclasses; r=dataclasses.replace(p.recipe,batch_tokens={batch_tokens})\n"
            f"s=T._sequence(p,r,{steps},0,torch); n=sum(int((g!=1).sum()) for _,_,g in s)\n"
            "m=T._model(p,a,0,torch); t=time.perf_counter(); T.minimal_loop(m,s,r,torch)\n"
            "print(n/(time.perf_counter()-t))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(workers)]
    return sum(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def report(prep, arch, suite_path: str, task: str, steps: int, repeats: int, batch_sizes: list[int]) -> None:
    import torch

    lines = [(f"Throughput, task {task}, architecture {arch} ({steps} steps x {repeats} alternating repeats, "
              f"median; target tokens/s):"), "",
             "| threads | batch tokens | trainer tok/s | minimal loop tok/s | trainer / minimal |",
             "| --- | --- | --- | --- | --- |"]
    print("\n".join(lines), flush=True)  # rows appear as they are measured: a loaded machine makes this slow
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for bt in batch_sizes:
            r = compare(prep, arch, steps, repeats, bt)
            lines.append(f"| {r['threads']} | {r['batch_tokens']} | {r['trainer_tok_s']:.0f} | "
                         f"{r['minimal_tok_s']:.0f} | {r['ratio']:.2f} |")
            print(lines[-1], flush=True)
    torch.set_num_threads(1)
    par = parallel_workers(suite_path, task, 2, steps, batch_sizes[-1])
    lines += ["", f"2 worker processes x 1 thread, minimal loop, batch {batch_sizes[-1]}: {par:.0f} tok/s aggregate."]
    print(lines[-2] + "\n" + lines[-1], flush=True)
