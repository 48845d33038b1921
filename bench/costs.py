"""Exact analytic parameter and FLOP counts for HAT SubTransformers.

These reproduce the llmas release (``num_parameters_without_embedding_weights``,
``num_embedding_parameters``, ``total_flops``, ``last_layer_flops``) exactly on all
90 labelled rows; the derivation is in ../shared/docs/paper-system.md §6.4–6.5.
HAT profiled FLOPs with torchprofile on a batch of 1 with source and target length 30;
the small non-matmul terms (embedding scale, query scaling, LayerNorm, the traced
``+3`` shape multiplications) are kept so the equality is exact, not approximate.

All counts are linear in the per-layer FFN widths and ende-attention spans, so they
also hold for architectures known only by layer averages (HAT's latency datasets).
"""
from __future__ import annotations

from dataclasses import dataclass

from .space import Arch

SEQ_LEN = 30  # HAT's profiling length (WMT)


@dataclass(frozen=True)
class Costs:
    params_no_emb: int
    emb_params: int
    total_flops: int
    last_layer_flops: int

    @property
    def params(self) -> int:
        return self.params_no_emb + self.emb_params

    @property
    def flops_no_last(self) -> int:
        return self.total_flops - self.last_layer_flops


def params_no_embedding(arch: Arch, qkv_dim: int = 512) -> int:
    q, e, d = qkv_dim, arch.encoder_embed_dim, arch.decoder_embed_dim
    total = 0
    for f in arch.encoder_ffn_embed_dim:
        total += 4 * q * e + 3 * q + 2 * e * f + f + 6 * e
    for f in arch.decoder_ffn_embed_dim:
        total += 6 * q * d + 2 * q * e + 6 * q + 2 * d * f + f + 9 * d
    return total


def embedding_params(arch: Arch, vocab_size: int) -> int:
    """One joined table; the output projection slices it at the decoder width."""
    return vocab_size * arch.decoder_embed_dim


def macs(arch: Arch, vocab_size: int, seq_len: int = SEQ_LEN, qkv_dim: int = 512) -> int:
    L, q, e, d = seq_len, qkv_dim, arch.encoder_embed_dim, arch.decoder_embed_dim
    m = L * e + L  # embedding scale, position index arithmetic
    for f in arch.encoder_ffn_embed_dim:
        m += 4 * L * e * q + 2 * L * L * q + L * q + 2 * L * e * f + 2 * L * e + 3
    m += L * d + L
    for f, span in zip(arch.decoder_ffn_embed_dim, arch.ende_layers):
        k = L * span
        m += 4 * L * d * q + 2 * L * L * q + L * q + 3  # self-attention
        m += 2 * L * d * q + 2 * k * e * q + 2 * L * k * q + L * q + 3  # cross-attention
        m += 2 * L * d * f + 3 * L * d  # FFN + 3 LayerNorms
    m += L * d * vocab_size  # output projection
    return m


def compute_costs(arch: Arch, vocab_size: int, qkv_dim: int = 512, seq_len: int = SEQ_LEN) -> Costs:
    return Costs(
        params_no_emb=params_no_embedding(arch, qkv_dim),
        emb_params=embedding_params(arch, vocab_size),
        total_flops=2 * macs(arch, vocab_size, seq_len, qkv_dim),
        last_layer_flops=2 * seq_len * arch.decoder_embed_dim * vocab_size,
    )
