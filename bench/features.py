"""Fixed-length encodings of an architecture, shared by the learned predictors.

- ``hat_raw``: HAT's 10 latency features (layer means; ende spans mapped -1/1/2 -> 1/2/3).
- ``hat``: the same divided by HAT's ``feature-norm`` [640, 6, 2048, 6, 640, 6, 2048, 6, 6, 2]
  (the latency predictor's input).
- ``llmas``: LLM-Distill-PP's 10 features (normalisers 640/6/3072/8, and (1 + mean raw ende)/3,
  reproduced as written in bleu_predictor.py, see paper-system.md §3.1).
- ``fine``: per-layer values padded to the space's max layer count (0 for absent layers), scaled to [0, 1].
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .space import Arch, SearchSpace

HAT_FEATURE_NORM = np.array([640, 6, 2048, 6, 640, 6, 2048, 6, 6, 2], dtype=float)
LLMAS_NORM = np.array([640, 6, 3072, 8, 640, 6, 3072, 8, 8, 1], dtype=float)


def hat_raw(arch: Arch) -> np.ndarray:
    return np.array([
        arch.encoder_embed_dim, arch.encoder_layer_num,
        np.mean(arch.encoder_ffn_embed_dim), np.mean(arch.encoder_self_attention_heads),
        arch.decoder_embed_dim, arch.decoder_layer_num,
        np.mean(arch.decoder_ffn_embed_dim), np.mean(arch.decoder_self_attention_heads),
        np.mean(arch.decoder_ende_attention_heads), np.mean(arch.ende_layers),
    ], dtype=float)


def llmas_features(arch: Arch) -> np.ndarray:
    raw = hat_raw(arch)
    raw[9] = (1 + np.mean(arch.decoder_arbitrary_ende_attn)) / 3
    return raw / LLMAS_NORM


def fine_features(arch: Arch, space: SearchSpace) -> np.ndarray:
    c = space.choices
    out = [arch.encoder_embed_dim / max(c["encoder_embed_dim"]), arch.encoder_layer_num / space.max_encoder_layers,
           arch.decoder_embed_dim / max(c["decoder_embed_dim"]), arch.decoder_layer_num / space.max_decoder_layers]

    def pad(vals, n, scale):
        v = [x / scale for x in vals]
        return v + [0.0] * (n - len(v))

    out += pad(arch.encoder_ffn_embed_dim, space.max_encoder_layers, max(c["encoder_ffn_embed_dim"]))
    out += pad(arch.encoder_self_attention_heads, space.max_encoder_layers, max(c["encoder_self_attention_heads"]))
    out += pad(arch.decoder_ffn_embed_dim, space.max_decoder_layers, max(c["decoder_ffn_embed_dim"]))
    out += pad(arch.decoder_self_attention_heads, space.max_decoder_layers, max(c["decoder_self_attention_heads"]))
    out += pad(arch.decoder_ende_attention_heads, space.max_decoder_layers, max(c["decoder_ende_attention_heads"]))
    out += pad(arch.ende_layers, space.max_decoder_layers, 3)
    return np.array(out, dtype=float)


ENCODINGS = ("fine", "hat", "hat_raw", "llmas")


def encode(archs: Sequence[Arch], kind: str = "hat", space: SearchSpace | None = None) -> np.ndarray:
    """One row per architecture, also for none (shape (0, width)): predictors may be asked about no architecture."""
    if kind == "hat":
        return _rows([hat_raw(a) for a in archs], 10) / HAT_FEATURE_NORM
    if kind == "hat_raw":
        return _rows([hat_raw(a) for a in archs], 10)
    if kind == "llmas":
        return _rows([llmas_features(a) for a in archs], 10)
    if kind == "fine":
        if space is None:
            raise ValueError("the 'fine' encoding needs the search space")
        width = 4 + 2 * space.max_encoder_layers + 4 * space.max_decoder_layers
        return _rows([fine_features(a, space) for a in archs], width)
    raise ValueError(f"unknown feature encoding {kind!r}; allowed: ['fine', 'hat', 'hat_raw', 'llmas']")


def _rows(vectors: list, width: int) -> np.ndarray:
    return np.array(vectors, dtype=float).reshape(len(vectors), width)
