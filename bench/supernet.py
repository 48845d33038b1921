"""``python -m bench supernet train``: train a weight-sharing supernet on a task with its ``measure:`` recipe.

The data, tokenizer, optimiser (Adam, warm-up + inverse-sqrt), label-smoothed loss, token-budget batches,
gradient clipping and early stopping are ``bench measure``'s (``bench.measure.prepare``, ``bench.mt.train``);
what changes is the model: each step samples SubTransformers of the task's space from one
:class:`~bench.model.supernet.SuperTransformer` — ``sandwich`` (largest + smallest + 2 uniform; the
losses averaged, i.e. gradients accumulated and normalised as fairseq does) or ``uniform`` (HAT: one per
step) — and early stopping watches the dev loss of the largest SubTransformer.

``DIR/checkpoint.pt`` (the whole training state) is rewritten atomically at every evaluation, so a killed
run resumes from its last evaluation when the same command is rerun; ``DIR/supernet.pt`` is written at
the end: a JSON header (kind, space, recipe, hashes, steps, train time, dev-loss curve) and the
best-dev-loss weights.  File layout: ``MAGIC``, the header's length (8 bytes, little endian), the header
(UTF-8 JSON), then a ``torch.save`` payload.
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import random
import struct
import sys
import time
from dataclasses import replace
from pathlib import Path

from .suite import SuiteError, load_suite

MAGIC = b"BENCHSN1"
SCHEMA = "bench.supernet/1"
SAMPLINGS = ("sandwich", "uniform")
SANDWICH_RANDOM = 2  # random subnets per sandwich step, besides the largest and the smallest
CODE_FILES = ("model/supernet.py", "model/subtransformer.py", "supernet.py", "mt/train.py", "mt/tokenizer.py",
              "mt/corpus.py")
ROOT = Path(__file__).resolve().parent


def _code_sha256() -> str:
    h = hashlib.sha256()
    for rel in CODE_FILES:
        h.update(rel.encode() + b"\0" + (ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()


# The code that decides a supernet's weights, hashed when this process loaded it (not when a long run ends).
CODE_SHA256 = _code_sha256()


# ---------------------------------------------------------------- the checkpoint file
def write_checkpoint(path: Path, header: dict, payload: dict) -> None:
    """Atomically: header + torch payload in a temporary file, then rename."""
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    head = json.dumps(header, sort_keys=True).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(MAGIC + struct.pack("<Q", len(head)) + head + buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_header(path: Path) -> dict:
    """The JSON header alone (no torch needed)."""
    with open(path, "rb") as fh:
        if fh.read(len(MAGIC)) != MAGIC:
            raise SuiteError(f"{path}: not a bench supernet checkpoint (no {MAGIC.decode()} header)")
        (n,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(n).decode())


def read_checkpoint(path: Path, map_location="cpu") -> tuple[dict, dict]:
    import torch

    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise SuiteError(f"{path}: not a bench supernet checkpoint (no {MAGIC.decode()} header)")
    (n,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16:16 + n].decode())
    payload = torch.load(io.BytesIO(data[16 + n:]), map_location=map_location, weights_only=True)
    return header, payload


def load_supernet(path: Path, device="cpu"):
    """(SuperTransformer with the checkpoint's weights, in eval mode; its header)."""
    from .model.supernet import SuperTransformer

    header, payload = read_checkpoint(path)
    model = SuperTransformer.from_config(header["supernet"])
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), header


# ---------------------------------------------------------------- where checkpoints live
def default_dir(suite, task: str, kind: str) -> Path:
    """The cache location `supernet train` writes to by default (and the predictor reads)."""
    from . import data

    return data.cache_dir() / "supernets" / suite.name / task / kind


def committed_dir(suite, task: str, kind: str) -> Path:
    """Where a committed checkpoint of the suite lives: ``measurements/supernets/<suite>/<task>/<kind>/``
    beside the suite's folder."""
    return (suite.path.parent.parent / "measurements" / "supernets" / suite.name / task / kind).resolve()


def find_checkpoint(suite, task: str, kind: str) -> Path | None:
    for d in (committed_dir(suite, task, kind), default_dir(suite, task, kind)):
        if (d / "supernet.pt").exists():
            return d / "supernet.pt"
    return None


def train_command(suite, task: str, kind: str) -> str:
    return f"python -m bench supernet train {suite.path} --task {task} --kind {kind}"


# ---------------------------------------------------------------- training
def _setup(prep, kind, sampling, experts, router_hidden, seed) -> dict:
    """What must match for a checkpoint to be resumed (max_steps may grow)."""
    r = prep.recipe.to_dict()
    r.pop("max_steps")
    return {"task": prep.task_name, "kind": kind, "sampling": sampling, "experts": experts,
            "router_hidden": router_hidden, "seed": seed, "recipe_but_max_steps": r,
            "tokenizer_sha256": prep.vocab.sha256, "data_sha256": prep.data_sha256,
            "space": prep.space.to_config()}


def train_supernet(prep, out_dir: Path, kind: str = "hat", sampling: str = "sandwich", steps: int | None = None,
                   experts: int = 2, router_hidden: int = 64, seed: int = 0, device: str = "cpu",
                   progress: bool = True, command: str = "", suite_sha256: str = "") -> dict:
    """Train (or resume, or find finished) the supernet of ``prep``'s task; returns the final header."""
    import torch
    import torch.nn.functional as F

    from .model.supernet import SuperTransformer, sample_arch
    from .mt.tokenizer import PAD
    from .mt.train import batches, collate, dev_loss, lr_at

    if sampling not in SAMPLINGS:
        raise SuiteError(f"--sampling: {sampling!r} is not allowed; allowed values: {list(SAMPLINGS)}")
    recipe = prep.recipe if steps is None else replace(prep.recipe, max_steps=int(steps))
    setup = _setup(prep, kind, sampling, experts, router_hidden, seed)
    final, ckpt = out_dir / "supernet.pt", out_dir / "checkpoint.pt"
    if final.exists():
        head = read_header(final)
        if head.get("setup") == setup and (head["stopped"] != "max_steps" or head["steps"] >= recipe.max_steps):
            print(f"{final}: already trained ({head['steps']} steps, stopped: {head['stopped']}); nothing to do",
                  file=sys.stderr)
            return head

    model = SuperTransformer(prep.space, len(prep.vocab), kind, experts, router_hidden, recipe.dropout,
                             recipe.attention_dropout, 1, recipe.max_positions, seed=seed).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    st = {"step": 0, "epoch": 0, "pos": 0, "order": [], "evals": [], "best": math.inf, "best_step": 0,
          "bad_evals": 0, "train_seconds": 0.0, "window": [], "stopped": None}
    best_state = None
    rng, arch_rng = random.Random(seed), random.Random(seed + 1)
    torch.manual_seed(seed)  # dropout; a resumed run restores the generator's state instead
    if ckpt.exists():
        head, payload = read_checkpoint(ckpt, map_location=device)
        if head.get("setup") != setup:
            diff = sorted(k for k in setup if head.get("setup", {}).get(k) != setup[k])
            raise SuiteError(f"{ckpt}: holds a supernet trained with other settings ({', '.join(diff)}); "
                             f"use another --out or delete it")
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["opt"])
        best_state = payload["best"]
        st = head["state"]
        rng.setstate(_tuple(head["rng"]))
        arch_rng.setstate(_tuple(head["arch_rng"]))
        torch.set_rng_state(payload["torch_rng"])
        if payload.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(payload["cuda_rng"])
        st["stopped"] = None
        print(f"{ckpt}: resuming at step {st['step']} (best largest-subnet dev loss {st['best']:.4f})",
              file=sys.stderr)

    def save_state():
        head = {"schema": SCHEMA + "-state", "setup": setup, "state": st, "rng": rng.getstate(),
                "arch_rng": arch_rng.getstate()}
        write_checkpoint(ckpt, head, {"model": model.state_dict(), "opt": opt.state_dict(), "best": best_state,
                                      "torch_rng": torch.get_rng_state(),
                                      "cuda_rng": torch.cuda.get_rng_state_all() if str(device).startswith("cuda")
                                      else None})

    n_batches = len(batches(prep.train_pairs, recipe.batch_tokens))
    total = min(recipe.max_steps, recipe.max_epochs * n_batches)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=min(st["step"], total), desc=f"supernet {kind} {prep.task_name}",
                   unit="step", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    largest, smallest = model.largest, model.smallest
    dev = model.view(largest)
    dev_small = model.view(smallest)

    def evaluate() -> bool:
        nonlocal best_state
        loss = dev_loss(dev, prep.dev_pairs, recipe, torch, device)
        small = dev_loss(dev_small, prep.dev_pairs, recipe, torch, device)
        w = st["window"]
        st["evals"].append({"step": st["step"], "epoch": st["epoch"], "dev_loss_largest": round(loss, 5),
                            "dev_loss_smallest": round(small, 5),
                            "train_loss": round(sum(w) / len(w), 5) if w else None})
        if loss < st["best"] - 1e-4:
            st["best"], st["best_step"], st["bad_evals"] = loss, st["step"], 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            st["bad_evals"] += 1
        if bar:
            bar.set_postfix(dev=f"{loss:.3f}", small=f"{small:.3f}", best=f"{st['best']:.3f}", ep=st["epoch"])
        return st["bad_evals"] >= recipe.patience and st["epoch"] >= recipe.min_epochs  # as bench.mt.train

    model.train()
    t0 = time.perf_counter() - st["train_seconds"]
    c0 = time.process_time() - st.setdefault("train_cpu_seconds", 0.0)
    while st["stopped"] is None:
        if st["pos"] >= len(st["order"]):
            if st["epoch"] >= recipe.max_epochs:
                st["stopped"] = "max_epochs"
                break
            st["epoch"] += 1
            st["order"], st["pos"] = batches(prep.train_pairs, recipe.batch_tokens, rng), 0
        if st["step"] >= recipe.max_steps:
            st["stopped"] = "max_steps"
            break
        idx = st["order"][st["pos"]]
        st["pos"] += 1
        st["step"] += 1
        for g in opt.param_groups:
            g["lr"] = lr_at(st["step"], recipe)
        src, prev, gold = collate(prep.train_pairs, idx, torch, device)
        if sampling == "uniform":
            archs = [sample_arch(prep.space, arch_rng)]
        else:
            archs = [largest, smallest] + [sample_arch(prep.space, arch_rng) for _ in range(SANDWICH_RANDOM)]
        opt.zero_grad(set_to_none=True)
        value = 0.0
        for arch in archs:
            logits = model(arch, src, prev)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), gold.reshape(-1), ignore_index=PAD,
                                   label_smoothing=recipe.label_smoothing) / len(archs)
            loss.backward()
            value += loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"supernet training loss is {value} at step {st['step']}")
        if recipe.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)
        opt.step()
        st["window"] = (st["window"] + [value])[-50:]
        if bar:
            bar.update(1)
        at_eval = (recipe.eval_every and st["step"] % recipe.eval_every == 0) or \
            (not recipe.eval_every and st["pos"] >= len(st["order"]))
        if at_eval:
            stop = evaluate()
            st["train_seconds"], st["train_cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
            save_state()
            if stop:
                st["stopped"] = "patience"
    if not st["evals"] or st["evals"][-1]["step"] != st["step"]:
        evaluate()
    st["train_seconds"], st["train_cpu_seconds"] = time.perf_counter() - t0, time.process_time() - c0
    save_state()
    if bar:
        bar.close()
    header = {
        "schema": SCHEMA, "setup": setup, "supernet": model.config(), "kind": kind, "sampling": sampling,
        "sandwich_random": SANDWICH_RANDOM if sampling == "sandwich" else None, "task": prep.task_name,
        "space": prep.space.to_config(), "recipe": recipe.to_dict(), "recipe_sha256": recipe.sha256,
        "tokenizer_sha256": prep.vocab.sha256, "data_sha256": prep.data_sha256, "suite_sha256": suite_sha256,
        "code_sha256": CODE_SHA256, "git_commit": prep.git_commit, "torch": torch.__version__,
        "python": platform.python_version(), "device": device, "threads": torch.get_num_threads(), "seed": seed,
        "steps": st["step"], "epochs": st["epoch"], "stopped": st["stopped"], "best_step": st["best_step"],
        "best_dev_loss_largest": st["best"], "train_seconds": round(st["train_seconds"], 2),
        "train_cpu_seconds": round(st["train_cpu_seconds"], 2), "evals": st["evals"],
        "params": int(sum(p.numel() for p in model.parameters())), "command": command,
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    weights = best_state if best_state is not None else model.state_dict()
    write_checkpoint(final, header, {"model": weights})
    return header


def _tuple(state):
    """random.Random state from its JSON form (lists back to tuples)."""
    return tuple(tuple(x) if isinstance(x, list) else x for x in state)


# ---------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="supernet_command", required=True)
    t = sub.add_parser("train", help="train a supernet on a task's corpus with its measure recipe (resumable)")
    t.add_argument("suite", help="suite YAML whose task has a `measure:` block, e.g. suites/americasnlp.yaml")
    t.add_argument("--task", required=True)
    t.add_argument("--kind", default="hat", help="hat, layer-mos or neuron-mos (default hat)")
    t.add_argument("--sampling", default="sandwich", help="sandwich (largest + smallest + 2 random per step, "
                                                         "default) or uniform (HAT: one random per step)")
    t.add_argument("--steps", type=int, help="training steps (default: the recipe's max_steps)")
    t.add_argument("--experts", type=int, default=2, help="MoS experts per FFN layer, m (default 2)")
    t.add_argument("--router-hidden", type=int, default=64, help="MoS router hidden size, h (default 64)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, help="output folder (default: the cache, where the predictor looks)")
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--no-progress", action="store_true")
    b = sub.add_parser("bench", help="benchmark: supernet score=loss cost per architecture vs training from scratch")
    from .supernet_bench import add_arguments as add_bench
    add_bench(b)


def main(args) -> int:
    if args.supernet_command == "bench":
        from .supernet_bench import main as bench_main
        return bench_main(args)
    import torch

    from .measure import prepare
    from .model.supernet import KINDS

    if args.kind not in KINDS:
        raise SuiteError(f"--kind: {args.kind!r} is not allowed; allowed values: {list(KINDS)}")
    if args.sampling not in SAMPLINGS:
        raise SuiteError(f"--sampling: {args.sampling!r} is not allowed; allowed values: {list(SAMPLINGS)}")
    for flag, v in (("--steps", args.steps), ("--experts", args.experts), ("--router-hidden", args.router_hidden),
                    ("--threads", args.threads)):
        if v is not None and v < 1:
            raise SuiteError(f"{flag}: must be >= 1, got {v}")
    suite = load_suite(args.suite)
    task = suite.task(args.task)
    torch.set_num_threads(args.threads)
    prep = prepare(task)
    out = args.out or default_dir(suite, task.name, args.kind)
    experts = 1 if args.kind == "hat" else args.experts
    head = train_supernet(prep, out, args.kind, args.sampling, args.steps, experts, args.router_hidden, args.seed,
                          args.device, not args.no_progress, command="python -m bench " + " ".join(sys.argv[1:]),
                          suite_sha256=suite.sha256)
    curve = ", ".join(f"{e['step']}: {e['dev_loss_largest']:.3f}/{e['dev_loss_smallest']:.3f}"
                      for e in head["evals"])
    print(f"{out / 'supernet.pt'}: {head['kind']} ({head['sampling']}), {head['steps']} steps, stopped: "
          f"{head['stopped']}, {head['train_seconds']:.0f}s; dev loss largest/smallest by step: {curve}")
    return 0
