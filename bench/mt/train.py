"""Train one SubTransformer from scratch on a parallel corpus, then decode and score it.

The recipe is the suite's: Adam with linear warm-up then inverse-sqrt decay, label-smoothed
cross-entropy, token-budget batches, early stopping on dev loss (per-token NLL, no smoothing),
the best-dev-loss weights restored before greedy decoding.  Everything is seeded; with one
thread the same (arch, seed, recipe, corpus) gives the same record.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .scoring import score
from .tokenizer import BOS, EOS, PAD

# The source files that decide a measurement record (training, model, tokenizer, corpus, scoring, costs,
# the per-architecture driver).  Hashed once, when this module is imported, so a long run's records carry
# the hash of the code that process runs, whatever is edited in the checkout meanwhile.
_ROOT = Path(__file__).resolve().parent.parent
CODE_FILES = ("mt/train.py", "mt/record.py", "mt/tokenizer.py", "mt/corpus.py", "mt/scoring.py",
              "model/subtransformer.py", "costs.py")


def _code_sha256() -> str:
    h = hashlib.sha256()
    for rel in CODE_FILES:
        h.update(rel.encode() + b"\0" + (_ROOT / rel).read_bytes() + b"\0")
    return h.hexdigest()


CODE_SHA256 = _code_sha256()


class RecipeError(ValueError):
    """A recipe key or value the trainer does not accept."""


@dataclass(frozen=True)
class Recipe:
    max_epochs: int = 30
    max_steps: int = 2000
    max_seconds: float = 0.0  # 0: no wall-clock cap (a cap makes results depend on machine load)
    batch_tokens: int = 2048  # per batch, max(src, tgt) length x sentences
    eval_batch_tokens: int = 4096  # dev-loss batches (no gradients: larger is cheaper)
    lr: float = 1e-3
    warmup: int = 200
    betas: tuple = (0.9, 0.98)
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    dropout: float = 0.1
    attention_dropout: float = 0.0
    patience: int = 3  # evaluations without a dev-loss improvement before stopping
    min_epochs: int = 0  # never stop on patience before this many epochs (early plateaus are not minima)
    eval_every: int = 0  # steps between dev evaluations; 0: once per epoch
    max_len: int = 128  # training pairs are truncated to this many tokens per side
    max_positions: int = 1024
    decode_max_len_a: float = 1.5  # hypothesis length <= a * source length + b
    decode_max_len_b: int = 10
    decode_batch: int = 64
    beam: int = 1  # greedy; the only decoder implemented

    @classmethod
    def from_config(cls, cfg: dict | None, where: str = "measure.recipe") -> Recipe:
        cfg = dict(cfg or {})
        names = {f.name: f for f in fields(cls)}
        bad = [k for k in cfg if k not in names]
        if bad:
            raise RecipeError(f"{where}: unknown keys {bad}; allowed keys: {sorted(names)}")
        kw = {}
        for k, v in cfg.items():
            default = names[k].default
            if isinstance(default, tuple):
                v = tuple(float(x) for x in v)
            elif isinstance(default, int) and not isinstance(default, bool):
                if not isinstance(v, int):
                    raise RecipeError(f"{where}.{k}: must be an integer, got {v!r}")
            elif isinstance(default, float):
                if not isinstance(v, (int, float)):
                    raise RecipeError(f"{where}.{k}: must be a number, got {v!r}")
                v = float(v)
            kw[k] = v
        r = cls(**kw)
        if r.beam != 1:
            raise RecipeError(f"{where}.beam: {r.beam} is not allowed; allowed values: [1] (greedy decoding)")
        for k in ("max_epochs", "max_steps", "batch_tokens", "eval_batch_tokens", "patience", "max_len", "decode_batch"):
            if getattr(r, k) < 1:
                raise RecipeError(f"{where}.{k}: must be >= 1, got {getattr(r, k)}")
        return r

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- batching
def make_pairs(src_ids: list[list[int]], tgt_ids: list[list[int]], max_len: int) -> list[tuple]:
    """(source + </s>, target + </s>) pairs; pairs with an empty side are dropped (they teach nothing)."""
    out = []
    for s, t in zip(src_ids, tgt_ids):
        if s and t:
            out.append((s[: max_len - 1] + [EOS], t[: max_len - 1] + [EOS]))
    return out


def batches(pairs: list[tuple], batch_tokens: int, rng: random.Random | None = None) -> list[list[int]]:
    """Index batches of similar length, each at most ``batch_tokens`` (padded) tokens; shuffled when rng given."""
    order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][0]), len(pairs[i][1]), i))
    out, cur, width = [], [], 0
    for i in order:
        w = max(width, len(pairs[i][0]), len(pairs[i][1]))
        if cur and w * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur, w = [], max(len(pairs[i][0]), len(pairs[i][1]))
        cur.append(i)
        width = w
    if cur:
        out.append(cur)
    if rng is not None:
        rng.shuffle(out)
    return out


def collate(pairs: list[tuple], idx: list[int], torch, device):
    """Right-padded source, decoder input (</s> + target, fairseq's convention) and gold target."""
    src = [pairs[i][0] for i in idx]
    tgt = [pairs[i][1] for i in idx]
    S, T = max(map(len, src)), max(map(len, tgt))
    src_t = torch.tensor([s + [PAD] * (S - len(s)) for s in src], dtype=torch.long)
    gold_t = torch.tensor([t + [PAD] * (T - len(t)) for t in tgt], dtype=torch.long)
    prev_t = torch.tensor([[EOS] + t[:-1] + [PAD] * (T - len(t)) for t in tgt], dtype=torch.long)
    return src_t.to(device), prev_t.to(device), gold_t.to(device)


def collated(pairs: list[tuple], batch_tokens: int, torch, device) -> list[tuple]:
    """Every length-bucketed batch as tensors, built once: an epoch only reorders them."""
    return [collate(pairs, idx, torch, device) for idx in batches(pairs, batch_tokens)]


# ---------------------------------------------------------------- training
def lr_at(step: int, recipe: Recipe) -> float:
    """Linear warm-up to ``lr``, then inverse-sqrt decay (the Transformer/HAT schedule)."""
    step = max(step, 1)
    if recipe.warmup <= 0:
        return recipe.lr
    return recipe.lr * min(step / recipe.warmup, math.sqrt(recipe.warmup / step))


def dev_loss(model, pairs_or_batches, recipe, torch, device) -> float:
    """Per-token NLL (nats) on the dev pairs, without label smoothing: the early-stopping criterion."""
    data = pairs_or_batches
    if data and not isinstance(data[0][0], torch.Tensor):
        data = collated(data, recipe.eval_batch_tokens, torch, device)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for src, prev, gold in data:
            logits = model(src, prev)
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(),
                                                       gold.reshape(-1), ignore_index=PAD, reduction="sum").item()
            count += int((gold != PAD).sum())
    model.train(was_training)
    return total / max(count, 1)


def train(model, train_pairs, dev_pairs, recipe: Recipe, seed: int, device="cpu", progress=True,
          desc: str = "train", on_epoch=None) -> dict:
    """Train in place; restores the best-dev-loss weights.  Returns the training log summary.

    ``on_epoch(epoch, model, best_step)``, if given, runs after each epoch with the best-dev-loss weights so far
    loaded (what a run capped at that many epochs would return: the schedule does not depend on the cap);
    the training weights are put back afterwards.  The pilot uses it to score many budgets in one run.
    """
    import torch
    import torch.nn.functional as F

    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    params = [p for p in model.parameters() if p.requires_grad]
    rng = random.Random(seed)
    train_batches = collated(train_pairs, recipe.batch_tokens, torch, device)
    dev_batches = collated(dev_pairs, recipe.eval_batch_tokens, torch, device)
    steps_per_epoch = len(train_batches)
    total_steps = min(recipe.max_steps, recipe.max_epochs * steps_per_epoch)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, desc=desc, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True,
                   mininterval=1.0)
    best, best_state, best_step, bad_evals = math.inf, None, 0, 0
    step, epoch, stopped, last_loss = 0, 0, "max_epochs", math.nan
    evals = []
    t0 = time.perf_counter()
    window: deque = deque(maxlen=50)

    def evaluate() -> bool:
        nonlocal best, best_state, best_step, bad_evals
        loss = dev_loss(model, dev_batches, recipe, torch, device)
        evals.append({"step": step, "epoch": epoch, "dev_loss": round(loss, 5), "train_loss": round(last_loss, 5)})
        if loss < best - 1e-4:
            best, best_step, bad_evals = loss, step, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_evals += 1
        if bar:
            bar.set_postfix(dev=f"{loss:.3f}", best=f"{best:.3f}", ep=epoch)
        return bad_evals >= recipe.patience and epoch >= recipe.min_epochs

    done = False
    order = list(range(steps_per_epoch))
    while not done and epoch < recipe.max_epochs:
        epoch += 1
        rng.shuffle(order)
        for b in order:
            src, prev, gold = train_batches[b]
            step += 1
            for g in opt.param_groups:
                g["lr"] = lr_at(step, recipe)
            logits = model(src, prev)
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), gold.reshape(-1),
                                   ignore_index=PAD, label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, recipe.clip_norm, foreach=True)
            opt.step()
            window.append(loss.detach())
            if bar:
                bar.update(1)
            if recipe.eval_every and step % recipe.eval_every == 0:
                last_loss = _window_mean(window, step)
                if evaluate():
                    stopped, done = "patience", True
                    break
            if step >= recipe.max_steps:
                stopped, done = "max_steps", True
                break
            if recipe.max_seconds and time.perf_counter() - t0 > recipe.max_seconds:
                stopped, done = "max_seconds", True
                break
        last_loss = _window_mean(window, step)
        if not recipe.eval_every and not done and evaluate():
            stopped, done = "patience", True
        if on_epoch is not None:
            current = copy.deepcopy(model.state_dict())
            if best_state is not None:
                model.load_state_dict(best_state)
            model.eval()
            on_epoch(epoch, model, best_step)
            model.load_state_dict(current)
            model.train()
    last_loss = _window_mean(window, step)
    if not evals or evals[-1]["step"] != step:
        evaluate()
    if bar:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"steps": step, "epochs": epoch, "steps_per_epoch": steps_per_epoch, "stopped": stopped,
            "final_train_loss": last_loss, "best_dev_loss": best, "best_step": best_step,
            "best_epoch": next((e.get("epoch", 0) for e in evals if e["step"] == best_step), 0),
            "train_seconds": time.perf_counter() - t0, "evals": evals}


def _window_mean(window, step: int) -> float:
    """Mean of the last training losses; read only at evaluations (no per-step host sync or list copy)."""
    if not window:
        return math.nan
    value = float(sum(w.item() for w in window) / len(window))
    if not math.isfinite(value):
        raise FloatingPointError(f"training loss is {value} before step {step}")
    return value


# ---------------------------------------------------------------- decoding
def greedy(model, src_ids: list[list[int]], recipe: Recipe, device="cpu", incremental=True) -> list[list[int]]:
    """Greedy decoding in length-sorted batches; returns token ids per sentence (without </s>)."""
    import torch

    model.eval()
    out: list[list[int] | None] = [None] * len(src_ids)
    srcs = [s[: recipe.max_positions - 1] + [EOS] for s in src_ids]
    order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))
    with torch.inference_mode():
        for b in range(0, len(order), recipe.decode_batch):
            idx = order[b: b + recipe.decode_batch]
            S = max(len(srcs[i]) for i in idx)
            src = torch.full((len(idx), S), PAD, dtype=torch.long)
            for j, i in enumerate(idx):
                src[j, : len(srcs[i])] = torch.tensor(srcs[i])
            src = src.to(device)
            limits = torch.tensor([max(1, min(int(recipe.decode_max_len_a * len(srcs[i]) + recipe.decode_max_len_b),
                                              recipe.max_positions - 1)) for i in idx], device=device)
            prev = torch.full((len(idx), 1), EOS, dtype=torch.long, device=device)
            rows = torch.arange(len(idx), device=device)  # batch row -> position in idx, for live rows
            enc = model.encode(src) if incremental else None
            state: dict = {}
            t = 0
            while len(rows):
                if incremental:
                    logits = model.decode(prev, enc, state)[:, -1, :]
                else:
                    logits = model(src[rows], prev)[:, -1, :]
                logits[:, PAD] = -math.inf
                logits[:, BOS] = -math.inf
                nxt = logits.argmax(-1)
                t += 1
                nxt = torch.where(t >= limits[rows], torch.full_like(nxt, EOS), nxt)  # length cap -> stop
                prev = torch.cat([prev, nxt[:, None]], dim=1)
                done = nxt == EOS
                if bool(done.any()):
                    for j in done.nonzero().flatten().tolist():
                        ids = prev[j, 1:-1].tolist()
                        out[idx[int(rows[j])]] = ids
                    keep = (~done).nonzero().flatten()
                    rows, prev = rows[keep], prev[keep]
                    if incremental and len(rows):  # drop finished sentences from the batch and the caches
                        enc = model.reorder_encoder_out(enc, keep)
                        model.reorder_incremental_state(state, keep)
    return out  # type: ignore[return-value]


def translate_and_score(model, vocab, split, recipe: Recipe, device="cpu") -> dict:
    """Decode a split's sources, detokenise, and score against its references (empty refs skipped)."""
    t0 = time.perf_counter()
    hyp_ids = greedy(model, vocab.encode_batch(split.src), recipe, device)
    hyps = [vocab.decode(h) for h in hyp_ids]
    res = score(hyps, split.tgt)
    res["decode_seconds"] = time.perf_counter() - t0
    res["hyps"] = hyps
    return res
