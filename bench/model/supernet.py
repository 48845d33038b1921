"""Weight-sharing supernets over a search space: HAT's SuperTransformer and layer-/neuron-wise Mixture-of-Supernets.

One :class:`SuperTransformer` holds the weights of the space's largest architecture, laid out exactly as a
:class:`~bench.model.subtransformer.SubTransformer` of that architecture (``self.weights``).  A sampled
architecture runs the *same* SubTransformer code path with the leading slices of those tensors
(``torch.func.functional_call`` on a weightless skeleton of the sampled architecture), as HAT's
``set_sample_config`` does: ``weight[:out, :in]``, ``bias[:out]``, the first ``E``/``D`` embedding
columns, the first N layers; heads only re-split the fixed ``qkv_dim`` (no weights change).  Gradients
flow through the slices into the shared tensors.  :meth:`SuperTransformer.extract` copies the slices into
a standalone SubTransformer (inherited weights) for scoring with the ordinary training/decoding code.

Choices that follow HAT's supernet rather than a model trained on its own:
- the sinusoidal positions are computed at the super widths and sliced (HAT slices
  ``positions[..., :sample_embed_dim]``), so an extracted model is built with ``positions_dims``;
- encoder-decoder attention over the last 1-3 encoder layers reads the sampled encoder's real layers
  (the SubTransformer's rule); HAT's supernet would read its identity copies of the last layer when the
  sampled encoder is shallower than the super encoder.

Mixture-of-Supernets (Jawahar et al. 2024; written from the paper and the description in
docs/supernets.md, no code copied): only the FFN layers (``fc1``, ``fc2``) of every layer become mixtures
of ``experts`` weight sets; expert 0 is the shared ``fc1``/``fc2``.  The router input is the architecture's
10 HAT features divided by HAT's feature norm.  ``layer-mos``: one router per layer, Linear(10, h) -> ReLU
-> Linear(h, m) -> softmax, one mixture for both fc1 and fc2.  ``neuron-mos``: per layer one router per
FFN matrix, Linear(10, h) -> ReLU -> Linear(h, m * out_super), its output rows sliced to the sampled
output width, reshaped [out, m], softmax per output neuron.  The mixed weight is then used as the
sampled layer's weight.  With ``experts=1`` both reduce exactly to HAT (softmax of one logit is 1).
"""
from __future__ import annotations

import random
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.features import HAT_FEATURE_NORM, hat_raw
from bench.space import Arch, SearchSpace

from .subtransformer import SubTransformer, _linear, build_model, sinusoidal_table

KINDS = ("hat", "layer-mos", "neuron-mos")


# ---------------------------------------------------------------- the space's reference architectures
def _valid(arch: Arch) -> bool:
    return all(span <= arch.encoder_layer_num for span in arch.ende_layers)


def _extreme(space: SearchSpace, pick) -> Arch:
    c = space.choices
    ne, nd = pick(c["encoder_layer_num"]), pick(c["decoder_layer_num"])
    ende = [a for a in sorted(c["decoder_arbitrary_ende_attn"], key=lambda a: 1 if a == -1 else a + 1)
            if (1 if a == -1 else a + 1) <= ne]
    d = {"encoder_embed_dim": pick(c["encoder_embed_dim"]), "decoder_embed_dim": pick(c["decoder_embed_dim"]),
         "encoder_layer_num": ne, "decoder_layer_num": nd,
         "encoder_ffn_embed_dim": [pick(c["encoder_ffn_embed_dim"])] * ne,
         "encoder_self_attention_heads": [pick(c["encoder_self_attention_heads"])] * ne,
         "decoder_ffn_embed_dim": [pick(c["decoder_ffn_embed_dim"])] * nd,
         "decoder_self_attention_heads": [pick(c["decoder_self_attention_heads"])] * nd,
         "decoder_ende_attention_heads": [pick(c["decoder_ende_attention_heads"])] * nd,
         "decoder_arbitrary_ende_attn": [ende[-1] if pick is max else ende[0]] * nd}
    return space.validate(Arch.from_dict(d))


def largest_arch(space: SearchSpace) -> Arch:
    """Every dimension at its largest choice (ende span: the widest the encoder allows)."""
    return _extreme(space, max)


def smallest_arch(space: SearchSpace) -> Arch:
    return _extreme(space, min)


def sample_arch(space: SearchSpace, rng: random.Random) -> Arch:
    """HAT's uniform sampling: every gene uniformly at random; spans the encoder cannot serve are redrawn."""
    for _ in range(1000):
        arch = space.sample(rng)
        if _valid(arch):
            return arch
    raise ValueError(f"search space {space.name}: cannot sample a valid architecture")


def router_features(arch: Arch) -> Tensor:
    """The router input: HAT's 10 features / HAT's feature norm [640, 6, 2048, 6, 640, 6, 2048, 6, 6, 2]."""
    return torch.tensor(hat_raw(arch) / HAT_FEATURE_NORM, dtype=torch.float32)


# ---------------------------------------------------------------- Mixture-of-Supernets pieces
class _FFNExpert(nn.Module):
    """Expert j >= 1 of one layer: fc1/fc2 at the super shape (fairseq init, as the shared ones)."""

    def __init__(self, dim: int, ffn: int):
        super().__init__()
        self.fc1, self.fc2 = _linear(dim, ffn), _linear(ffn, dim)


class _Router(nn.Module):
    """Linear(10, h) -> ReLU -> Linear(h, out).  ``out`` = m (layer-wise) or m * out_super (neuron-wise)."""

    def __init__(self, hidden: int, out: int, super_out: bool):
        super().__init__()
        self.hidden = nn.Linear(10, hidden)
        self.out = _linear(hidden, out) if super_out else nn.Linear(hidden, out)

    def forward(self, x: Tensor, rows: int | None = None) -> Tensor:
        h = F.relu(self.hidden(x))
        if rows is None:
            return self.out(h)
        return F.linear(h, self.out.weight[:rows], self.out.bias[:rows])  # LinearSuper: leading output rows


# ---------------------------------------------------------------- the supernet
class SuperTransformer(nn.Module):
    def __init__(self, space: SearchSpace, vocab_size: int, kind: str = "hat", experts: int = 2,
                 router_hidden: int = 64, dropout: float = 0.0, attention_dropout: float = 0.0, pad_idx: int = 1,
                 max_positions: int = 1024, seed: int | None = None, skeleton_cache: int = 256):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"supernet kind {kind!r} is not allowed; allowed values: {list(KINDS)}")
        if kind != "hat" and experts < 1:
            raise ValueError(f"experts must be >= 1, got {experts}")
        self.space, self.vocab_size, self.kind = space, vocab_size, kind
        self.experts_n = 1 if kind == "hat" else int(experts)
        self.router_hidden = int(router_hidden)
        self.qkv_dim, self.pad_idx, self.max_positions = space.qkv_dim, pad_idx, max_positions
        self.dropout, self.attention_dropout = dropout, attention_dropout
        self.largest, self.smallest = largest_arch(space), smallest_arch(space)
        L = self.largest
        self.widths = (L.encoder_embed_dim, L.decoder_embed_dim)
        gen = torch.random.fork_rng(devices=[]) if seed is not None else _null()
        with gen:
            if seed is not None:
                torch.manual_seed(seed)
            # The shared weights first, so HAT and MoS supernets of one seed share them exactly.
            self.weights = build_model(L, vocab_size, self.qkv_dim, dropout, attention_dropout, pad_idx,
                                       max_positions)
            if kind != "hat":
                m = self.experts_n
                self.experts = nn.ModuleDict({
                    "encoder": nn.ModuleList(nn.ModuleList(_FFNExpert(L.encoder_embed_dim, f) for _ in range(m - 1))
                                             for f in L.encoder_ffn_embed_dim),
                    "decoder": nn.ModuleList(nn.ModuleList(_FFNExpert(L.decoder_embed_dim, f) for _ in range(m - 1))
                                             for f in L.decoder_ffn_embed_dim)})
                h = self.router_hidden
                if kind == "layer-mos":
                    self.routers = nn.ModuleDict({
                        side: nn.ModuleList(_Router(h, m, False) for _ in range(n))
                        for side, n in (("encoder", L.encoder_layer_num), ("decoder", L.decoder_layer_num))})
                else:
                    def pair(dim, ffn):
                        return nn.ModuleDict({"fc1": _Router(h, m * ffn, True), "fc2": _Router(h, m * dim, True)})
                    self.routers = nn.ModuleDict({
                        "encoder": nn.ModuleList(pair(L.encoder_embed_dim, f) for f in L.encoder_ffn_embed_dim),
                        "decoder": nn.ModuleList(pair(L.decoder_embed_dim, f) for f in L.decoder_ffn_embed_dim)})
        self._skeletons: OrderedDict[str, SubTransformer] = OrderedDict()
        self._skeleton_cache = skeleton_cache

    def config(self) -> dict:
        """Everything needed to rebuild this supernet (stored in a checkpoint's header)."""
        return {"kind": self.kind, "experts": self.experts_n, "router_hidden": self.router_hidden,
                "vocab_size": self.vocab_size, "space": self.space.to_config(), "pad_idx": self.pad_idx,
                "max_positions": self.max_positions}

    @classmethod
    def from_config(cls, cfg: dict, dropout: float = 0.0, attention_dropout: float = 0.0) -> SuperTransformer:
        space = SearchSpace.from_config(cfg["space"], name=cfg.get("space_name", ""))
        return cls(space, cfg["vocab_size"], cfg["kind"], cfg["experts"], cfg["router_hidden"], dropout,
                   attention_dropout, cfg["pad_idx"], cfg["max_positions"])

    # ---- the sampled SubTransformer's tensors ------------------------------------
    def check(self, arch: Arch) -> Arch:
        self.space.validate(arch)
        if not _valid(arch):
            raise ValueError(f"decoder_arbitrary_ende_attn {list(arch.decoder_arbitrary_ende_attn)} attends to more "
                             f"encoder layers than the {arch.encoder_layer_num} the architecture has")
        return arch

    def _skeleton(self, arch: Arch) -> SubTransformer:
        """A SubTransformer of ``arch`` with meta (storage-free) weights: the code path the slices run through."""
        key = arch.key()
        sk = self._skeletons.get(key)
        if sk is None:
            n_pos = self.max_positions + self.pad_idx + 1
            for w in self.widths:  # real (CPU) position tables in the cache before any meta construction
                sinusoidal_table(n_pos, w, self.pad_idx)
            with torch.device("meta"):
                sk = SubTransformer(arch, self.vocab_size, self.qkv_dim, self.dropout, self.attention_dropout,
                                    self.pad_idx, self.max_positions, positions_dims=self.widths)
            self._skeletons[key] = sk
            if len(self._skeletons) > self._skeleton_cache:
                self._skeletons.popitem(last=False)
        else:
            self._skeletons.move_to_end(key)
        return sk

    def sub_tensors(self, arch: Arch) -> dict[str, Tensor]:
        """Every parameter and position buffer of ``arch``'s SubTransformer: leading slices of the shared
        tensors; with MoS the FFN weights are the router-weighted mixture of the experts' slices."""
        sk = self._skeleton(arch)
        out = {}
        for name, p in sk.named_parameters():
            out[name] = self.weights.get_parameter(name)[tuple(slice(0, n) for n in p.shape)]
        for name, b in sk.named_buffers():
            out[name] = self.weights.get_buffer(name)[tuple(slice(0, n) for n in b.shape)]
        if self.kind != "hat":
            self._mix(arch, out)
        return out

    def mixture_weights(self, arch: Arch) -> dict[str, Tensor]:
        """The routers' outputs for ``arch``: ``{side.i: [m]}`` (layer-wise) or ``{side.i.fc1: [F, m], side.i.fc2:
        [d, m]}`` (neuron-wise), rows summing to 1."""
        if self.kind == "hat":
            return {}
        x = router_features(arch).to(self.weights.embed_tokens.weight.device)
        out = {}
        for side, dim, ffns in (("encoder", arch.encoder_embed_dim, arch.encoder_ffn_embed_dim),
                                ("decoder", arch.decoder_embed_dim, arch.decoder_ffn_embed_dim)):
            for i, f in enumerate(ffns):
                r = self.routers[side][i]
                if self.kind == "layer-mos":
                    out[f"{side}.{i}"] = torch.softmax(r(x), dim=-1)
                else:
                    m = self.experts_n
                    out[f"{side}.{i}.fc1"] = torch.softmax(r["fc1"](x, rows=m * f).view(f, m), dim=-1)
                    out[f"{side}.{i}.fc2"] = torch.softmax(r["fc2"](x, rows=m * dim).view(dim, m), dim=-1)
        return out

    def _mix(self, arch: Arch, out: dict) -> None:
        alphas = self.mixture_weights(arch)
        for side, n in (("encoder", arch.encoder_layer_num), ("decoder", arch.decoder_layer_num)):
            for i in range(n):
                for fc in ("fc1", "fc2"):
                    if self.kind == "layer-mos":
                        a = alphas[f"{side}.{i}"]
                        aw, ab = a, a
                    else:
                        a = alphas[f"{side}.{i}.{fc}"]  # [out, m]
                        aw, ab = a.T[:, :, None], a.T  # per expert: [out, 1] rows, [out] bias
                    for t in ("weight", "bias"):
                        name = f"{side}.layers.{i}.{fc}.{t}"
                        base = out[name]
                        idx = tuple(slice(0, n_) for n_ in base.shape)
                        ex = [base] + [getattr(e, fc).get_parameter(t)[idx] for e in self.experts[side][i]]
                        w = aw if t == "weight" else ab
                        out[name] = sum(w[j] * ex[j] for j in range(len(ex)))

    # ---- running and extracting ----------------------------------------------------------
    def forward(self, arch: Arch, src_tokens: Tensor, prev_output_tokens: Tensor) -> Tensor:
        """Logits of ``arch`` with the shared (sliced, mixed) weights; differentiable into them."""
        sk = self._skeleton(arch)
        sk.train(self.training)
        return torch.func.functional_call(sk, self.sub_tensors(arch), (src_tokens, prev_output_tokens))

    def extract(self, arch: Arch) -> SubTransformer:
        """A standalone SubTransformer of ``arch`` holding copies of its inherited weights."""
        self.check(arch)
        with torch.no_grad():
            tensors = self.sub_tensors(arch)
        device = self.weights.embed_tokens.weight.device
        n_pos = self.max_positions + self.pad_idx + 1
        for w in self.widths:
            sinusoidal_table(n_pos, w, self.pad_idx)
        with torch.device("meta"):
            model = SubTransformer(arch, self.vocab_size, self.qkv_dim, self.dropout, self.attention_dropout,
                                   self.pad_idx, self.max_positions, positions_dims=self.widths)
        params = {k: v.detach().clone() for k, v in tensors.items() if not k.endswith("_positions")}
        model.load_state_dict(params, assign=True)
        return model.to(device).eval()

    def view(self, arch: Arch) -> SubnetView:
        return SubnetView(self, arch)


class SubnetView(nn.Module):
    """``model(src, prev)`` for one architecture of a supernet, sharing its weights (for ``dev_loss``)."""

    def __init__(self, supernet: SuperTransformer, arch: Arch):
        super().__init__()
        self.supernet, self.arch = supernet, supernet.check(arch)

    def forward(self, src_tokens: Tensor, prev_output_tokens: Tensor) -> Tensor:
        return self.supernet(self.arch, src_tokens, prev_output_tokens)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
