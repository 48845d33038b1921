"""A standalone PyTorch SubTransformer of the HAT space (fairseq/HAT layout, batch-first).

Faithful to HAT's ``TransformerSuperModel`` with one sub-configuration materialised:

- one joined embedding table shared by the encoder input, the decoder input and the output
  projection.  HAT's supernet table is 640 wide and each user slices its first columns; a
  standalone model keeps a table of width ``max(E, D)`` and slices it the same way (encoder at
  ``E``, decoder input and tied output projection at ``D``).  HAT counts ``V * D`` embedding
  parameters (``num_embedding_parameters``); :meth:`SubTransformer.num_parameters` reports that
  count, and also the table's real size, which is larger by ``V * (E - D)`` only when ``E > D``;
- embeddings scaled by ``sqrt(dim)``, fairseq sinusoidal positions (no parameters);
- attention with a fixed Q/K/V width ``qkv_dim`` (heads change only the head dimension); self-attention
  keeps HAT's packed ``in_proj_weight`` [3Q, dim]; cross-attention has ``q_proj_weight`` [Q, D] and
  ``k_proj_weight``/``v_proj_weight`` [Q, E] (keys/values come from the encoder); both carry a packed
  ``in_proj_bias`` of 3Q, the size HAT counts;
- arbitrary encoder-decoder attention: decoder layer j attends over the time-concatenation of the
  last ``arch.ende_layers[j]`` (1, 2 or 3) encoder layer outputs;
- post-LayerNorm, ReLU, no final encoder/decoder LayerNorm (``normalize_before`` False).

``Tap`` modules (identities) mark every linear-map output that is not an ``nn.Linear`` module
(the q/k/v projections and the logits) so that proxies can hook all of them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.space import Arch


class Tap(nn.Module):
    """An identity that marks a linear-map output (a hook point for fisher and nwot)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def _linear(in_dim: int, out_dim: int) -> nn.Linear:
    """fairseq ``Linear``: xavier-uniform weight, zero bias (one init, not torch's default plus a re-init)."""
    m = nn.utils.skip_init(nn.Linear, in_dim, out_dim, device=torch.get_default_device())
    nn.init.xavier_uniform_(m.weight)
    nn.init.zeros_(m.bias)
    return m


def _xavier(rows: int, cols: int) -> nn.Parameter:
    w = torch.empty(rows, cols)
    nn.init.xavier_uniform_(w)
    return nn.Parameter(w)


_SINUSOID_CACHE: dict[tuple[int, int, int], Tensor] = {}


def sinusoidal_table(num: int, dim: int, pad_idx: int) -> Tensor:
    """fairseq ``SinusoidalPositionalEmbedding.get_embedding`` (row ``pad_idx`` zero)."""
    key = (num, dim, pad_idx)
    if key not in _SINUSOID_CACHE:
        half = dim // 2
        step = math.log(10000) / (half - 1)
        freq = torch.exp(torch.arange(half, dtype=torch.float) * -step)
        ang = torch.arange(num, dtype=torch.float).unsqueeze(1) * freq.unsqueeze(0)
        table = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1).view(num, -1)
        if dim % 2 == 1:
            table = torch.cat([table, torch.zeros(num, 1)], dim=1)
        table[pad_idx, :] = 0
        _SINUSOID_CACHE[key] = table
    return _SINUSOID_CACHE[key]


def make_positions(tokens: Tensor, pad_idx: int) -> Tensor:
    """fairseq ``utils.make_positions``: pad_idx+1, pad_idx+2, ... on non-pad tokens, pad_idx on pads."""
    mask = tokens.ne(pad_idx).long()
    return torch.cumsum(mask, dim=1) * mask + pad_idx


class Attention(nn.Module):
    """Multi-head attention with a fixed Q/K/V width (HAT ``MultiheadAttentionSuper`` with one config)."""

    def __init__(self, embed_dim: int, num_heads: int, qkv_dim: int, kv_dim: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        if qkv_dim % num_heads:
            raise ValueError(f"qkv_dim {qkv_dim} is not divisible by {num_heads} heads")
        self.cross = kv_dim is not None
        self.num_heads, self.qkv_dim, self.head_dim = num_heads, qkv_dim, qkv_dim // num_heads
        self.scaling = self.head_dim ** -0.5
        self.dropout = dropout
        if self.cross:
            self.q_proj_weight = _xavier(qkv_dim, embed_dim)
            self.k_proj_weight = _xavier(qkv_dim, kv_dim)
            self.v_proj_weight = _xavier(qkv_dim, kv_dim)
        else:
            self.in_proj_weight = _xavier(3 * qkv_dim, embed_dim)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * qkv_dim))
        self.out_proj = _linear(qkv_dim, embed_dim)
        self.q_tap, self.k_tap, self.v_tap = Tap(), Tap(), Tap()

    def _proj(self, x: Tensor, i: int) -> Tensor:
        q = self.qkv_dim
        if self.cross:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        else:
            w = self.in_proj_weight[i * q:(i + 1) * q]
        out = F.linear(x, w, self.in_proj_bias[i * q:(i + 1) * q])
        return (self.q_tap, self.k_tap, self.v_tap)[i](out)

    def _heads(self, x: Tensor) -> Tensor:  # [B, T, Q] -> [B, H, T, hd]
        b, t, _ = x.shape
        return x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, key_padding_mask: Optional[Tensor] = None,
                attn_mask: Optional[Tensor] = None, cache: Optional[dict] = None) -> Tensor:
        """``query`` [B, T, d]; ``key`` [B, S, kd] (the values are the keys).  ``cache``: incremental
        state of this module; self-attention appends the new keys/values, cross-attention computes
        them once (they are static)."""
        q = self._heads(self._proj(query, 0) * self.scaling)
        if cache is not None and self.cross and "k" in cache:
            k, v = cache["k"], cache["v"]
        else:
            k, v = self._heads(self._proj(key, 1)), self._heads(self._proj(key, 2))
            if cache is not None and not self.cross and "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
        if cache is not None:
            cache["k"], cache["v"] = k, v
        w = torch.matmul(q, k.transpose(-1, -2))  # [B, H, T, S]
        if attn_mask is not None:
            w = w + attn_mask
        if key_padding_mask is not None:
            w = w.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        w = F.softmax(w, dim=-1, dtype=torch.promote_types(w.dtype, torch.float32)).to(q.dtype)  # >= fp32
        w = F.dropout(w, p=self.dropout, training=self.training)
        out = torch.matmul(w, v).transpose(1, 2).reshape(query.shape[0], query.shape[1], self.qkv_dim)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, ffn: int, heads: int, qkv_dim: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.self_attn = Attention(dim, heads, qkv_dim, dropout=attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = _linear(dim, ffn), _linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout = dropout

    def forward(self, x: Tensor, padding_mask: Optional[Tensor]) -> Tensor:
        h = self.self_attn(x, x, key_padding_mask=padding_mask)
        x = self.self_attn_layer_norm(x + F.dropout(h, self.dropout, self.training))
        h = self.fc2(F.relu(self.fc1(x)))
        return self.final_layer_norm(x + F.dropout(h, self.dropout, self.training))


class DecoderLayer(nn.Module):
    def __init__(self, dim: int, enc_dim: int, ffn: int, heads: int, ende_heads: int, ende_layers: int,
                 qkv_dim: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.ende_layers = ende_layers
        self.self_attn = Attention(dim, heads, qkv_dim, dropout=attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.encoder_attn = Attention(dim, ende_heads, qkv_dim, kv_dim=enc_dim, dropout=attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1, self.fc2 = _linear(dim, ffn), _linear(ffn, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.dropout = dropout

    def forward(self, x, enc_keys, enc_mask, self_mask, self_padding_mask, state: Optional[dict] = None):
        h = self.self_attn(x, x, key_padding_mask=self_padding_mask, attn_mask=self_mask,
                           cache=None if state is None else state.setdefault("self", {}))
        x = self.self_attn_layer_norm(x + F.dropout(h, self.dropout, self.training))
        h = self.encoder_attn(x, enc_keys, key_padding_mask=enc_mask,
                              cache=None if state is None else state.setdefault("cross", {}))
        x = self.encoder_attn_layer_norm(x + F.dropout(h, self.dropout, self.training))
        h = self.fc2(F.relu(self.fc1(x)))
        return self.final_layer_norm(x + F.dropout(h, self.dropout, self.training))


@dataclass
class EncoderOut:
    """Every encoder layer's output [B, S, E] (cross-attention reads the last 1-3) and the source pad mask."""

    layers: list
    padding_mask: Optional[Tensor]

    def keys(self, n: int) -> tuple[Tensor, Optional[Tensor]]:
        """Cross-attention keys: the last ``n`` layer outputs concatenated along time, and their mask."""
        keys = torch.cat(self.layers[-n:], dim=1) if n > 1 else self.layers[-1]
        mask = None if self.padding_mask is None else torch.cat([self.padding_mask] * n, dim=1)
        return keys, mask


class SubTransformer(nn.Module):
    def __init__(self, arch: Arch, vocab_size: int, qkv_dim: int = 512, dropout: float = 0.0,
                 attention_dropout: float = 0.0, pad_idx: int = 1, max_positions: int = 1024,
                 positions_dims: tuple[int, int] | None = None):
        """``positions_dims`` (encoder, decoder): compute the sinusoidal tables at these widths and take their
        leading E / D columns, as HAT's SuperTransformer does for a sampled SubTransformer (a model extracted
        from a supernet); None: at E and D (a model trained on its own)."""
        super().__init__()
        self.arch, self.vocab_size, self.qkv_dim, self.pad_idx = arch, vocab_size, qkv_dim, pad_idx
        self.max_positions = max_positions
        E, D = arch.encoder_embed_dim, arch.decoder_embed_dim
        if max(arch.ende_layers, default=1) > arch.encoder_layer_num:
            raise ValueError(f"decoder_arbitrary_ende_attn {list(arch.decoder_arbitrary_ende_attn)} attends to "
                             f"{max(arch.ende_layers)} encoder layers but the encoder has {arch.encoder_layer_num}")
        self.enc_dim, self.dec_dim, self.dropout = E, D, dropout
        width = max(E, D)
        table = torch.empty(vocab_size, width)
        nn.init.normal_(table, mean=0.0, std=width ** -0.5)  # fairseq Embedding init at the table width
        table[pad_idx].zero_()
        self.embed_tokens = nn.Embedding(vocab_size, width, padding_idx=pad_idx, _weight=table)
        n_pos = max_positions + pad_idx + 1
        pe, pd = positions_dims or (E, D)
        self.register_buffer("enc_positions", sinusoidal_table(n_pos, pe, pad_idx)[:, :E].clone(), persistent=False)
        self.register_buffer("dec_positions", sinusoidal_table(n_pos, pd, pad_idx)[:, :D].clone(), persistent=False)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(
            EncoderLayer(E, f, h, qkv_dim, dropout, attention_dropout)
            for f, h in zip(arch.encoder_ffn_embed_dim, arch.encoder_self_attention_heads))
        self.decoder = nn.Module()
        self.decoder.layers = nn.ModuleList(
            DecoderLayer(D, E, f, h, eh, n, qkv_dim, dropout, attention_dropout)
            for f, h, eh, n in zip(arch.decoder_ffn_embed_dim, arch.decoder_self_attention_heads,
                                   arch.decoder_ende_attention_heads, arch.ende_layers))
        self.output_tap = Tap()

    # ---- embeddings ---------------------------------------------------------------
    def _check(self, tokens: Tensor) -> None:
        if tokens.shape[1] > self.max_positions:
            raise ValueError(f"sequence length {tokens.shape[1]} exceeds max_positions {self.max_positions}")

    def embed_source(self, src_tokens: Tensor) -> Tensor:
        """sqrt(E) * table[:, :E][tokens] + sinusoidal positions: the encoder's input at the embedding output."""
        self._check(src_tokens)
        x = F.embedding(src_tokens, self.embed_tokens.weight[:, :self.enc_dim], self.pad_idx)
        pos = F.embedding(make_positions(src_tokens, self.pad_idx), self.enc_positions)
        return math.sqrt(self.enc_dim) * x + pos

    def embed_target(self, prev_output_tokens: Tensor, last_only: bool = False) -> Tensor:
        self._check(prev_output_tokens)
        pos = F.embedding(make_positions(prev_output_tokens, self.pad_idx), self.dec_positions)
        if last_only:
            prev_output_tokens, pos = prev_output_tokens[:, -1:], pos[:, -1:]
        x = F.embedding(prev_output_tokens, self.embed_tokens.weight[:, :self.dec_dim], self.pad_idx)
        return math.sqrt(self.dec_dim) * x + pos

    # ---- encoder --------------------------------------------------------------------
    def encode(self, src_tokens: Tensor) -> EncoderOut:
        mask = src_tokens.eq(self.pad_idx)
        return self.encode_embedded(self.embed_source(src_tokens), mask if mask.any() else None)

    def encode_embedded(self, x: Tensor, padding_mask: Optional[Tensor] = None) -> EncoderOut:
        x = F.dropout(x, self.dropout, self.training)
        layers = []
        for layer in self.encoder.layers:
            x = layer(x, padding_mask)
            layers.append(x)
        return EncoderOut(layers, padding_mask)

    @staticmethod
    def reorder_encoder_out(encoder_out: EncoderOut, new_order: Tensor) -> EncoderOut:
        """Select/repeat batch rows (beam expansion): row i of the result is row new_order[i]."""
        mask = encoder_out.padding_mask
        return EncoderOut([x.index_select(0, new_order) for x in encoder_out.layers],
                          None if mask is None else mask.index_select(0, new_order))

    @staticmethod
    def reorder_incremental_state(incremental_state: dict, new_order: Tensor) -> None:
        for layer_state in incremental_state.values():
            for cache in layer_state.values():
                for k in ("k", "v"):
                    if k in cache:
                        cache[k] = cache[k].index_select(0, new_order)

    # ---- decoder --------------------------------------------------------------------
    def decode(self, prev_output_tokens: Tensor, encoder_out: EncoderOut,
               incremental_state: Optional[dict] = None) -> Tensor:
        """Logits [B, T, V]; with ``incremental_state`` only the last position (T = 1), reusing cached keys/values."""
        inc = incremental_state is not None
        y = self.embed_target(prev_output_tokens, last_only=inc)
        pad = None if inc else prev_output_tokens.eq(self.pad_idx)
        return self.decode_embedded(y, encoder_out, pad if pad is not None and pad.any() else None,
                                    incremental_state)

    def decode_embedded(self, y: Tensor, encoder_out: EncoderOut, padding_mask: Optional[Tensor] = None,
                        incremental_state: Optional[dict] = None, features_only: bool = False) -> Tensor:
        x = F.dropout(y, self.dropout, self.training)
        t = x.shape[1]
        future = None
        if incremental_state is None and t > 1:
            future = torch.triu(torch.full((t, t), float("-inf"), dtype=x.dtype, device=x.device), 1)
        for j, layer in enumerate(self.decoder.layers):
            keys, kmask = encoder_out.keys(layer.ende_layers)
            state = None if incremental_state is None else incremental_state.setdefault(j, {})
            x = layer(x, keys, kmask, future, padding_mask, state)
        return x if features_only else self.output_layer(x)

    def output_layer(self, features: Tensor) -> Tensor:
        """The tied output projection: the table sliced at the decoder width."""
        return self.output_tap(F.linear(features, self.embed_tokens.weight[:, :self.dec_dim]))

    def forward(self, src_tokens: Tensor, prev_output_tokens: Tensor) -> Tensor:
        return self.decode(prev_output_tokens, self.encode(src_tokens))

    # ---- bookkeeping ------------------------------------------------------------------
    def num_parameters(self) -> dict:
        """HAT's counts: ``without_embedding`` (every tensor but the table) and ``embedding`` (V * D, the
        decoder slice HAT counts); ``table`` is the table's real size (V * max(E, D))."""
        emb = self.embed_tokens.weight
        return {"without_embedding": sum(p.numel() for p in self.parameters() if p is not emb),
                "embedding": self.vocab_size * self.dec_dim, "table": emb.numel()}


def build_model(arch: Arch, vocab_size: int, qkv_dim: int = 512, dropout: float = 0.0,
                attention_dropout: float = 0.0, pad_idx: int = 1, max_positions: int = 1024,
                seed: int | None = None, positions_dims: tuple[int, int] | None = None) -> SubTransformer:
    """A freshly initialised SubTransformer; with ``seed`` the weights are a pure function of (arch, seed)."""
    args = (arch, vocab_size, qkv_dim, dropout, attention_dropout, pad_idx, max_positions, positions_dims)
    if seed is None:
        return SubTransformer(*args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SubTransformer(*args)


def parameter_groups(model: SubTransformer) -> dict[str, str]:
    """Every named parameter -> its kind: ``embedding`` (the tied table), ``attn_in`` (packed or separate
    q/k/v projection weights), ``attn_bias`` (packed in-proj bias), ``attn_out``, ``ffn``, ``layernorm``."""
    out = {}
    for name, _ in model.named_parameters():
        if name.startswith("embed_tokens"):
            kind = "embedding"
        elif "layer_norm" in name:
            kind = "layernorm"
        elif "in_proj_bias" in name:
            kind = "attn_bias"
        elif "proj_weight" in name:
            kind = "attn_in"
        elif "out_proj" in name:
            kind = "attn_out"
        elif ".fc1." in name or ".fc2." in name:
            kind = "ffn"
        else:
            raise AssertionError(f"unclassified parameter {name}")
        out[name] = kind
    return out
