"""Zero-cost proxies on a standalone SubTransformer, applied to an encoder-decoder deliberately.

Decisions (../shared/docs/anchors.md §2.4):

- **Tensors.**  Saliencies walk *named parameters*, not module types, so nothing is dropped because
  it is not an ``nn.Linear``.  ``tensors=weights`` (default) scores every 2-D weight: the packed
  self-attention ``in_proj_weight`` [3Q, d] as one tensor, the cross-attention ``q/k/v_proj_weight``,
  ``out_proj``, ``fc1``, ``fc2`` and the tied embedding table (counted once; its gradient sums the
  encoder-input, decoder-input and output-projection uses).  Biases and LayerNorm are left out, as the
  originals score only Conv/Linear weights.  ``all`` adds them; ``no-embedding`` drops the table.
- **Loss.**  Label-smoothed cross-entropy (eps 0.1, HAT's criterion, PyTorch's form (1-eps)·NLL +
  eps·mean(-log p)), token mean over (B·T, V) with ``ignore_index`` = pad, on a real batch
  (``bench.model.batch``).  Dropout is 0, so train/eval mode does not matter.
- **fisher**: every linear-map output (q, k, v, out_proj, fc1, fc2 and the logits) is batch-first
  [B, T, F]; per output feature (channel) c, F_c = 0.5 · mean_b (Σ_t act·grad)².  Features sit on the last
  axis (the references' channel axis is 1 for Conv2d; T plays the spatial axes' part).  The score is the
  references' Σ_c fan_in · F_c (zero-cost-nas and NASLib broadcast each channel's value over its weight
  row, of fan_in entries, before summing); ``fan_in=false`` gives the unweighted Σ_c F_c.
- **nwot**: forward hooks on the FFN ``fc1`` outputs (ReLU is functional), binarised > 0 per sentence
  over all [T, F] positions; K = Σ_layers c cᵀ + (1-c)(1-c)ᵀ; score = log|det K|.
- **jacov**: per sentence, the gradient of the sum of the logits with respect to the encoder and decoder
  *embedding outputs*; correlation across sentences; -Σ log(v+k) + 1/(v+k), k = 1e-5 (eigvalsh: the
  matrix is symmetric).  The sum of the final decoder states themselves cannot be used: after the last
  post-LayerNorm (γ=1, β=0 at init) they sum to exactly 0 per position, so that Jacobian is rounding
  noise.  The sum of logits is the states projected on the column sum of the tied table (computed
  that way, without the [B, T, V] logits), a random direction at init; the correlation is scale-free,
  so the vocabulary size does not dominate it.
- **synflow**: the whole pass in float64 (attention softmax included), |weights|, an all-ones input of
  shape [1, L, E] / [1, L, D] at the embedding outputs (the table still enters through the tied output
  projection), R = Σ logits, Σ|w ⊙ ∂R/∂w|.  ``disable_layernorm`` (default true) replaces LayerNorm by the
  identity: zero-cost-nas registers ``synflow`` with normalisation layers removed (``bn=False``);
  ``disable_layernorm=false`` keeps them, the analogue of its ``synflow_bn``.  Its natural log is
  stored: without LayerNorm the pass runs on the input 2^-400 and adds 400·log 2, exact by the network's
  homogeneity (``synflow_log``), since R reaches ~1e200 at input 1 and q·kᵀ overflows float64.
- **grasp**: g = ∇L (no graph), Hg = ∇(g · ∇L) with a graph, score Σ -w ⊙ Hg (zero-cost-nas' sign: higher
  is better); **grad_norm** Σ per-tensor ‖∇L‖₂; **snip** Σ|w ⊙ ∇L|; **plain** Σ w ⊙ ∇L; **l2_norm** Σ‖w‖₂.

Non-finite scores are returned as they are (nan/inf) and counted by the callers, never replaced.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.cache import Cache, make_key

from .batch import PAD, Batch
from .subtransformer import SubTransformer, Tap, build_model, parameter_groups

VERSION = "1"
# Bumped per proxy when its definition changes (old cache entries are then ignored).
PROXY_VERSIONS = {"jacov": "2", "fisher": "2", "synflow": "2"}
PROXIES = ("grad_norm", "snip", "synflow", "grasp", "fisher", "jacov", "nwot", "l2_norm", "plain")
HIGHER_IS_BETTER = dict.fromkeys(PROXIES, True)  # as the proxies are used in zero-cost-nas / NASLib
LOSS_BASED = ("grad_norm", "snip", "grasp", "fisher", "plain")
TENSOR_SETS = ("weights", "all", "no-embedding")
JACOV_K = 1e-5
SYNFLOW_LOG2_SCALE = 400  # synflow's input is 2^-400 (exact by homogeneity; see synflow_log)


@dataclass(frozen=True)
class ProxyConfig:
    tensors: str = "weights"
    label_smoothing: float = 0.1
    init_seed: int = 0
    disable_layernorm: bool = True  # synflow only (the reference's synflow; false = its synflow_bn)
    fan_in: bool = True  # fisher only (the reference's fan-in broadcast; false = unweighted channel sum)

    def __post_init__(self):
        if self.tensors not in TENSOR_SETS:
            raise ValueError(f"proxy option tensors={self.tensors!r} is not allowed; allowed values: {list(TENSOR_SETS)}")


def scored_parameters(model: SubTransformer, tensors: str = "weights") -> list[tuple[str, nn.Parameter]]:
    kinds = parameter_groups(model)
    out = []
    for name, p in model.named_parameters():
        if tensors == "all" or (p.dim() == 2 and not (tensors == "no-embedding" and kinds[name] == "embedding")):
            out.append((name, p))
    return out


def linear_maps(model: SubTransformer, tensors: str = "weights") -> list[tuple[str, nn.Module]]:
    """Modules whose output is a linear map of a scored weight: nn.Linear and the Tap markers."""
    out = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, Tap)):
            if name == "output_tap" and tensors == "no-embedding":
                continue
            out.append((name, m))
    return out


def pattern(name: str) -> str:
    """``decoder.layers.3.fc1.weight`` -> ``decoder.layers.{i}.fc1.weight``."""
    return re.sub(r"\.layers\.\d+\.", ".layers.{i}.", name)


def _loss(model, src, prev, tgt, eps):
    logits = model(src, prev)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=PAD,
                           label_smoothing=eps)


def fan_in(model: nn.Module, name: str, module: nn.Module) -> int:
    """Input width of the linear map whose output ``module`` produces (a weight row's length)."""
    if isinstance(module, nn.Linear):
        return module.in_features
    if name == "output_tap":
        return model.dec_dim
    parent_name, tap = name.rsplit(".", 1)
    att = model.get_submodule(parent_name)
    i = ("q_tap", "k_tap", "v_tap").index(tap)
    w = (att.q_proj_weight, att.k_proj_weight, att.v_proj_weight)[i] if att.cross else att.in_proj_weight
    return int(w.shape[1])


def _hook_fisher(maps, acc):
    """Per-channel fisher F_c of each map's output into ``acc[name]`` (a float64 vector over the last axis)."""
    def make(name):
        def fwd(_m, _inp, out):
            act = out.detach()

            def bwd(grad):
                g = act.double() * grad.detach().double()
                if g.dim() > 2:  # [B, ..., F]: sum the positions, keep batch and features
                    g = g.sum(dim=tuple(range(1, g.dim() - 1)))
                acc[name] = 0.5 * g.pow(2).mean(0)
            out.register_hook(bwd)
        return fwd
    return [m.register_forward_hook(make(n)) for n, m in maps]


def fisher_score(model: nn.Module, maps, acc: dict, weighted: bool = True) -> float:
    """Σ over maps of Σ_c w_c F_c, w_c = fan_in (the references) or 1."""
    return sum(float(acc[n].sum()) * (fan_in(model, n, m) if weighted else 1) for n, m in maps if n in acc)


def _hook_nwot(model, codes):
    def fwd(_m, _inp, out):
        codes.append((out.detach() > 0).flatten(1).double())
    return [layer.fc1.register_forward_hook(fwd)
            for stack in (model.encoder.layers, model.decoder.layers) for layer in stack]


def nwot_score(codes: list) -> float:
    b = codes[0].shape[0]
    k = torch.zeros(b, b, dtype=torch.float64)
    for c in codes:
        k += c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(k)[1])


def jacov_score(jac: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        corr = np.corrcoef(jac)
    if not np.isfinite(corr).all():
        return float("nan")
    try:
        v = np.linalg.eigvalsh(corr)
    except np.linalg.LinAlgError:
        return float("nan")
    with np.errstate(all="ignore"):
        return float(-np.sum(np.log(v + JACOV_K) + 1.0 / (v + JACOV_K)))


def _disable_layernorm(model: nn.Module) -> None:
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.LayerNorm):
                setattr(parent, child_name, nn.Identity())


def synflow_log(model: SubTransformer, pnames: set, length: int, disable_layernorm: bool,
                log2_scale: int | None = None) -> tuple[float, list[str]]:
    """Natural log of synflow, Σ|w ⊙ ∂R/∂w| with |w| and R = Σ logits of an all-ones input, in float64.

    Without LayerNorm the |w| network is positively homogeneous of degree 1 in its input: biases are 0 at
    init, ReLU of positive values is linear, and every position is identical, so each softmax is uniform
    whatever its scale.  The score therefore equals 2^k · (score of the input 2^-k), and the pass runs on
    the input 2^-k (k = ``SYNFLOW_LOG2_SCALE``): real-size WMT models reach R ~ 1e200 at input 1, past
    float64's range inside q·kᵀ.  LayerNorm-kept models are not homogeneous (and stay bounded): k = 0.
    Modifies ``model`` (LayerNorm removed, float64, |w|)."""
    if log2_scale is None:
        log2_scale = SYNFLOW_LOG2_SCALE if disable_layernorm else 0
    if disable_layernorm:
        _disable_layernorm(model)
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    x = torch.full((1, length, model.enc_dim), 2.0 ** -log2_scale, dtype=torch.float64)
    y = torch.full((1, length, model.dec_dim), 2.0 ** -log2_scale, dtype=torch.float64)
    r = model.decode_embedded(y, model.encode_embedded(x)).sum()
    named = [(n, p) for n, p in model.named_parameters() if n in pnames]
    sg = torch.autograd.grad(r, [p for _, p in named], allow_unused=True)
    with torch.no_grad():
        s = sum(float((w * g).abs_().sum()) for (_, w), g in zip(named, sg) if g is not None)
    if not math.isfinite(s) or s < 0:
        return float("nan"), [n for n, _ in named]
    return (math.log(s) + log2_scale * math.log(2) if s > 0 else float("-inf")), [n for n, _ in named]


def score_arch(arch, vocab_size: int, batch: Batch, names, cfg: ProxyConfig = ProxyConfig(),
               qkv_dim: int = 512) -> dict:
    """Every requested proxy of one architecture from one freshly built model (seeded by ``cfg.init_seed``).

    Returns ``{name: {"score", "tensors", "seconds"}, "_timing": {...}}``; ``seconds`` is the proxy's own
    work; the build and the shared loss forward/backward are in ``_timing``.
    """
    names = list(dict.fromkeys(names))
    bad = [n for n in names if n not in PROXIES]
    if bad:
        raise ValueError(f"unknown proxies {bad}; allowed values: {list(PROXIES)}")
    timing: dict = {}
    t0 = time.perf_counter()
    model = build_model(arch, vocab_size, qkv_dim=qkv_dim, seed=cfg.init_seed).train()  # dropout is 0
    timing["build"] = time.perf_counter() - t0
    src, prev, tgt = batch.tensors()
    params = scored_parameters(model, cfg.tensors)
    pnames = [n for n, _ in params]
    ws = [p for _, p in params]
    out: dict = {}

    def done(name, score, tensors, t):
        out[name] = {"score": float(score), "tensors": tensors, "seconds": time.perf_counter() - t}

    # -- one shared teacher-forced pass: the loss gradient, fisher and nwot hooks ------------------
    need_grad = any(n in LOSS_BASED for n in names)
    fisher_acc: dict = {}
    codes: list = []
    if need_grad or "nwot" in names:
        t = time.perf_counter()
        maps = linear_maps(model, cfg.tensors)
        hooks = _hook_fisher(maps, fisher_acc) if "fisher" in names else []
        hooks += _hook_nwot(model, codes) if "nwot" in names else []
        if need_grad:  # with grasp, keep the graph: g·∇L is differentiated again (one pass, not two)
            loss = _loss(model, src, prev, tgt, cfg.label_smoothing)
            graph = torch.autograd.grad(loss, ws, allow_unused=True, create_graph="grasp" in names)
            graph = [torch.zeros_like(w) if g is None else g for w, g in zip(ws, graph)]
            grads = [g.detach() for g in graph]
        else:
            with torch.no_grad():
                model(src, prev)
        for h in hooks:
            h.remove()
        timing["loss_pass" if need_grad else "forward"] = time.perf_counter() - t
        if "fisher" in names:
            t = time.perf_counter()
            done("fisher", fisher_score(model, maps, fisher_acc, cfg.fan_in), [n for n, _ in maps], t)
        if "nwot" in names:
            t = time.perf_counter()
            done("nwot", nwot_score(codes), [f"{s}.layers.{i}.fc1 (output > 0)" for s in ("encoder", "decoder")
                                             for i in range(len(getattr(model, s).layers))], t)
    with torch.no_grad():
        if "grad_norm" in names:
            t = time.perf_counter()
            done("grad_norm", sum(float(torch.linalg.vector_norm(g, dtype=torch.float64)) for g in grads), pnames, t)
        if "snip" in names:
            t = time.perf_counter()
            done("snip", sum(float((w * g).abs_().sum(dtype=torch.float64)) for w, g in zip(ws, grads)), pnames, t)
        if "plain" in names:
            t = time.perf_counter()
            done("plain", sum(float((w * g).sum(dtype=torch.float64)) for w, g in zip(ws, grads)), pnames, t)
        if "l2_norm" in names:
            t = time.perf_counter()
            done("l2_norm", sum(float(torch.linalg.vector_norm(w, dtype=torch.float64)) for w in ws), pnames, t)
    if "grasp" in names:
        t = time.perf_counter()
        z = sum((g * f).sum() for g, f in zip(grads, graph))
        hg = torch.autograd.grad(z, ws, allow_unused=True)
        with torch.no_grad():
            score = sum(float((w * h).sum(dtype=torch.float64)) for w, h in zip(ws, hg) if h is not None)
        done("grasp", -score, pnames, t)
        del graph, z, hg
    if "jacov" in names:
        t = time.perf_counter()
        x = model.embed_source(src).detach().requires_grad_(True)
        y = model.embed_target(prev).detach().requires_grad_(True)
        feats = model.decode_embedded(y, model.encode_embedded(x), features_only=True)
        # sum of logits = states . (column sum of the tied table); the plain sum of post-LN states is 0
        colsum = model.embed_tokens.weight[:, :model.dec_dim].detach().sum(0)
        gx, gy = torch.autograd.grad((feats @ colsum).sum(), [x, y])
        jac = torch.cat([gx.flatten(1), gy.flatten(1)], dim=1).double().numpy()
        done("jacov", jacov_score(jac), ["input: encoder and decoder embedding outputs",
                                         "output: sum of logits (final decoder states through the tied projection)"],
             t)
    if "synflow" in names:  # last: it overwrites the weights
        t = time.perf_counter()
        score, used = synflow_log(model, set(pnames), src.shape[1], cfg.disable_layernorm)
        done("synflow", score, used, t)
    out["_timing"] = timing
    return out


def cache_key(task, arch, name: str, batch: Batch, cfg: ProxyConfig) -> str:
    """Everything that determines a score: proxy and its variant, architecture, task vocabulary, batch
    content, init seed, code version and torch version."""
    parts = ["zero-cost", VERSION, name, arch.key(), task.vocab_size, task.space.qkv_dim, batch.identity,
             cfg.tensors, cfg.label_smoothing, cfg.init_seed, cfg.disable_layernorm if name == "synflow" else None,
             torch.__version__]
    if name == "fisher":
        parts.append(("fan_in", cfg.fan_in))
    if name in PROXY_VERSIONS:  # only a bumped proxy changes its keys; the others stay valid
        parts.append(PROXY_VERSIONS[name])
    return make_key(*parts)


def _score_task(batch: Batch, arch, vocab_size: int, names, cfg: ProxyConfig, qkv_dim: int) -> dict:
    return score_arch(arch, vocab_size, batch, names, cfg, qkv_dim)


def score_many(task, archs, names, batch: Batch, cfg: ProxyConfig = ProxyConfig(), share: bool = True,
               progress: bool = True, cache: Cache | None = None) -> tuple[list[dict], dict]:
    """Scores of ``names`` for every architecture, from the cache or computed.

    With ``share`` a missing architecture gets *every* proxy computed from one model build and one
    loss pass (the marginal cost of the others is small) so that the next proxy of a ``bench run`` is a
    cache hit; values do not depend on ``share``.  Returns (one {name: result} per arch, stats).
    """
    cache = cache if cache is not None else Cache(namespace="zero-cost")  # an empty Cache is falsy
    names = list(names)
    want = list(PROXIES) if share else names
    keys = [{n: cache_key(task, a, n, batch, cfg) for n in want} for a in archs]
    found = cache.get_many([k for ks in keys for k in ks.values()])
    todo = [i for i, ks in enumerate(keys) if any(ks[n] not in found for n in names)]
    stats = {"archs": len(archs), "computed": len(todo), "cached": len(archs) - len(todo), "compute_s": 0.0}
    t0 = time.perf_counter()
    # One task per architecture on the current executor (bench.executors: in process unless a sweep asked for
    # Ray); the results come back here and only this process writes the cache.
    from bench import executors

    tasks = [executors.Task(f"arch {i}", (archs[i], task.vocab_size, [n for n in want if keys[i][n] not in found],
                                          cfg, task.space.qkv_dim)) for i in todo]
    for o, _ in executors.run_tasks(executors.current(), _score_task, batch, tasks, "zero-cost proxies",
                                    progress and bool(todo)):
        if o.error:
            raise RuntimeError(f"zero-cost proxies of {o.task.args[0]}: {o.error}")
        i = int(o.task.label.split()[1])
        res = o.value
        timing = res.pop("_timing")
        items = {keys[i][n]: dict(r, timing=timing) for n, r in res.items()}
        cache.put_many(items)
        found.update(items)
    stats["compute_s"] = time.perf_counter() - t0
    return [{n: found[keys[i][n]] for n in names} for i in range(len(archs))], stats
