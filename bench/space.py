"""Architectures of the HAT search space and the spaces that contain them.

An :class:`Arch` is one SubTransformer: per-layer lists are truncated to the layer
count, as in HAT's subtransformer YAML files.  A :class:`SearchSpace` holds the
choices of every dimension and rejects architectures outside it with the field
and the allowed values, so a typo in a suite never turns into a silent result.
"""
from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Field order is HAT's arch_info order; the per-layer fields are tuples.
SCALAR_FIELDS = ("encoder_embed_dim", "encoder_layer_num", "decoder_embed_dim", "decoder_layer_num")
ENCODER_LIST_FIELDS = ("encoder_ffn_embed_dim", "encoder_self_attention_heads")
DECODER_LIST_FIELDS = (
    "decoder_ffn_embed_dim",
    "decoder_self_attention_heads",
    "decoder_ende_attention_heads",
    "decoder_arbitrary_ende_attn",
)
FIELD_ORDER = (
    "encoder_embed_dim",
    "encoder_layer_num",
    "encoder_ffn_embed_dim",
    "encoder_self_attention_heads",
    "decoder_embed_dim",
    "decoder_layer_num",
    "decoder_ffn_embed_dim",
    "decoder_self_attention_heads",
    "decoder_ende_attention_heads",
    "decoder_arbitrary_ende_attn",
)
# HAT/llmas hyper-parameter names (arch_info strings and subtransformer YAML keys).
HAT_NAMES = {
    "encoder_embed_dim": "encoder-embed-dim-subtransformer",
    "encoder_layer_num": "encoder-layer-num-subtransformer",
    "encoder_ffn_embed_dim": "encoder-ffn-embed-dim-all-subtransformer",
    "encoder_self_attention_heads": "encoder-self-attention-heads-all-subtransformer",
    "decoder_embed_dim": "decoder-embed-dim-subtransformer",
    "decoder_layer_num": "decoder-layer-num-subtransformer",
    "decoder_ffn_embed_dim": "decoder-ffn-embed-dim-all-subtransformer",
    "decoder_self_attention_heads": "decoder-self-attention-heads-all-subtransformer",
    "decoder_ende_attention_heads": "decoder-ende-attention-heads-all-subtransformer",
    "decoder_arbitrary_ende_attn": "decoder-arbitrary-ende-attn-all-subtransformer",
}
_FROM_HAT = {v: k for k, v in HAT_NAMES.items()}
# The search-space YAML of HAT names choices like "encoder-embed-choice".
HAT_CHOICE_NAMES = {
    "encoder-embed-choice": "encoder_embed_dim",
    "decoder-embed-choice": "decoder_embed_dim",
    "encoder-ffn-embed-dim-choice": "encoder_ffn_embed_dim",
    "decoder-ffn-embed-dim-choice": "decoder_ffn_embed_dim",
    "encoder-layer-num-choice": "encoder_layer_num",
    "decoder-layer-num-choice": "decoder_layer_num",
    "encoder-self-attention-heads-choice": "encoder_self_attention_heads",
    "decoder-self-attention-heads-choice": "decoder_self_attention_heads",
    "decoder-ende-attention-heads-choice": "decoder_ende_attention_heads",
    "decoder-arbitrary-ende-attn-choice": "decoder_arbitrary_ende_attn",
}


class ArchError(ValueError):
    """An architecture that cannot be parsed or lies outside its search space."""


@dataclass(frozen=True)
class Arch:
    encoder_embed_dim: int
    encoder_layer_num: int
    encoder_ffn_embed_dim: tuple
    encoder_self_attention_heads: tuple
    decoder_embed_dim: int
    decoder_layer_num: int
    decoder_ffn_embed_dim: tuple
    decoder_self_attention_heads: tuple
    decoder_ende_attention_heads: tuple
    decoder_arbitrary_ende_attn: tuple

    def __post_init__(self):
        for name in ENCODER_LIST_FIELDS + DECODER_LIST_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))
        for name in ENCODER_LIST_FIELDS:
            if len(getattr(self, name)) != self.encoder_layer_num:
                raise ArchError(
                    f"{name} has {len(getattr(self, name))} values but encoder_layer_num is {self.encoder_layer_num}"
                )
        for name in DECODER_LIST_FIELDS:
            if len(getattr(self, name)) != self.decoder_layer_num:
                raise ArchError(
                    f"{name} has {len(getattr(self, name))} values but decoder_layer_num is {self.decoder_layer_num}"
                )

    # ---- construction -------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Arch:
        """From our field names, HAT YAML names, or a HAT config dict with lists padded to the max layer count."""
        norm: dict[str, Any] = {_field_name(k): v for k, v in d.items()}
        missing = [f for f in FIELD_ORDER if f not in norm]
        unknown = [k for k in norm if k not in FIELD_ORDER]
        if missing or unknown:
            raise ArchError(
                f"architecture fields missing: {missing or 'none'}; unknown: {unknown or 'none'}; "
                f"expected: {list(FIELD_ORDER)}"
            )
        ne, nd = int(norm["encoder_layer_num"]), int(norm["decoder_layer_num"])
        kw: dict[str, Any] = {"encoder_layer_num": ne, "decoder_layer_num": nd}
        for f in ("encoder_embed_dim", "decoder_embed_dim"):
            kw[f] = int(norm[f])
        for f in ENCODER_LIST_FIELDS:
            kw[f] = tuple(int(v) for v in _as_list(norm[f], f))[:ne]
        for f in DECODER_LIST_FIELDS:
            kw[f] = tuple(int(v) for v in _as_list(norm[f], f))[:nd]
        return cls(**kw)

    @classmethod
    def from_arch_info(cls, lines: Sequence[str]) -> Arch:
        """From llmas ``arch_info`` strings such as ``"decoder-layer-num-subtransformer: 2"``."""
        d = {}
        for line in lines:
            if ":" not in line:
                raise ArchError(f"arch_info line {line!r} is not '<name>: <value>'")
            key, value = line.split(":", 1)
            key = key.strip()
            if key not in _FROM_HAT:
                raise ArchError(f"unknown arch_info name {key!r}; allowed: {sorted(_FROM_HAT)}")
            d[_FROM_HAT[key]] = json.loads(value)
        return cls.from_dict(d)

    # ---- views --------------------------------------------------------
    def to_dict(self) -> dict:
        return {f: list(v) if isinstance(v, tuple) else v for f in FIELD_ORDER for v in (getattr(self, f),)}

    def to_arch_info(self) -> list[str]:
        """The llmas prompt lines, formatted exactly as in the released JSONL files."""
        out = []
        for f in FIELD_ORDER:
            v = getattr(self, f)
            text = "[" + ", ".join(str(x) for x in v) + "]" if isinstance(v, tuple) else str(v)
            out.append(f"{HAT_NAMES[f]}: {text}")
        return out

    def to_hat_yaml_dict(self) -> dict:
        """HAT's subtransformer YAML keys (lists truncated to the layer counts)."""
        return {HAT_NAMES[f]: v for f, v in self.to_dict().items()}

    def key(self) -> str:
        """A canonical string, stable across runs: the cache and lookup key."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=False)

    @property
    def ende_layers(self) -> tuple:
        """Number of encoder layers each decoder layer attends to (-1 -> 1, 1 -> 2, 2 -> 3)."""
        return tuple(1 if a == -1 else a + 1 for a in self.decoder_arbitrary_ende_attn)

    def __str__(self) -> str:  # short, readable
        return (
            f"E{self.encoder_embed_dim}x{self.encoder_layer_num} ffn{list(self.encoder_ffn_embed_dim)} | "
            f"D{self.decoder_embed_dim}x{self.decoder_layer_num} ffn{list(self.decoder_ffn_embed_dim)}"
        )


def _field_name(key: str) -> str:
    """'decoder-ffn-embed-dim-all-subtransformer' / 'decoder_ffn_embed_dim' -> 'decoder_ffn_embed_dim'."""
    if key in _FROM_HAT:
        return _FROM_HAT[key]
    name = key.replace("-", "_")
    for suffix in ("_subtransformer", "_all"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _as_list(value, field):
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, (int, float)):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise ArchError(f"{field} must be a list, got {value!r}")
    return list(value)


@dataclass(frozen=True)
class SearchSpace:
    """Choices per dimension. ``max_*_layers`` bound the per-layer genes (HAT pads genes to 6 layers)."""

    choices: Mapping[str, tuple]
    qkv_dim: int = 512
    name: str = ""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], name: str = "", where: str = "search_space") -> SearchSpace:
        """From a suite's ``search_space`` mapping (our field names or HAT's ``*-choice`` names)."""
        choices: dict[str, tuple] = {}
        qkv = 512
        for key, value in cfg.items():
            if key in ("qkv_dim", "qkv-dim"):
                qkv = int(value)
                continue
            fname = HAT_CHOICE_NAMES.get(key, key)
            if fname not in FIELD_ORDER:
                raise ArchError(
                    f"{where}: unknown dimension {key!r}; allowed: {list(FIELD_ORDER) + ['qkv_dim']}"
                )
            if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, int) for v in value):
                raise ArchError(f"{where}.{key}: must be a non-empty list of integers, got {value!r}")
            choices[fname] = tuple(value)
        missing = [f for f in FIELD_ORDER if f not in choices]
        if missing:
            raise ArchError(f"{where}: missing dimensions {missing}")
        return cls(choices=choices, qkv_dim=qkv, name=name)

    @property
    def max_encoder_layers(self) -> int:
        return max(self.choices["encoder_layer_num"])

    @property
    def max_decoder_layers(self) -> int:
        return max(self.choices["decoder_layer_num"])

    def validate(self, arch: Arch) -> Arch:
        for f in FIELD_ORDER:
            allowed = self.choices[f]
            value = getattr(arch, f)
            values = value if isinstance(value, tuple) else (value,)
            for i, v in enumerate(values):
                if v not in allowed:
                    where = f"{f}[{i}]" if isinstance(value, tuple) else f
                    raise ArchError(
                        f"architecture outside the search space{(' ' + self.name) if self.name else ''}: "
                        f"{where} = {v!r}; allowed choices: {list(allowed)}"
                    )
        return arch

    def contains(self, arch: Arch) -> bool:
        try:
            self.validate(arch)
            return True
        except ArchError:
            return False

    # ---- HAT genes: a flat list, per-layer positions padded to the max layer count ----
    def gene_choices(self) -> list[tuple]:
        out: list[tuple] = []
        for f in FIELD_ORDER:
            if f in ENCODER_LIST_FIELDS:
                out += [self.choices[f]] * self.max_encoder_layers
            elif f in DECODER_LIST_FIELDS:
                out += [self.choices[f]] * self.max_decoder_layers
            else:
                out.append(self.choices[f])
        return out

    def gene_to_arch(self, gene: Sequence[int]) -> Arch:
        it = iter(gene)
        d: dict[str, Any] = {}
        for f in FIELD_ORDER:
            if f in ENCODER_LIST_FIELDS:
                d[f] = [next(it) for _ in range(self.max_encoder_layers)]
            elif f in DECODER_LIST_FIELDS:
                d[f] = [next(it) for _ in range(self.max_decoder_layers)]
            else:
                d[f] = next(it)
        return Arch.from_dict(d)

    def arch_to_gene(self, arch: Arch) -> list[int]:
        """Pad per-layer lists with their first element, as HAT does."""
        gene: list[int] = []
        for f in FIELD_ORDER:
            v = getattr(arch, f)
            if f in ENCODER_LIST_FIELDS:
                gene += list(v) + [v[0]] * (self.max_encoder_layers - len(v))
            elif f in DECODER_LIST_FIELDS:
                gene += list(v) + [v[0]] * (self.max_decoder_layers - len(v))
            else:
                gene.append(v)
        return gene

    def sample_gene(self, rng: random.Random) -> list[int]:
        return [rng.choice(c) for c in self.gene_choices()]

    def sample(self, rng: random.Random) -> Arch:
        return self.gene_to_arch(self.sample_gene(rng))

    def to_config(self) -> dict:
        d = {f: list(self.choices[f]) for f in FIELD_ORDER}
        d["qkv_dim"] = self.qkv_dim
        return d


def parse_arch(obj: Any) -> Arch:
    """Accept an Arch, a dict, or arch_info lines."""
    if isinstance(obj, Arch):
        return obj
    if isinstance(obj, Mapping):
        if "arch_info" in obj:
            return Arch.from_arch_info(obj["arch_info"])
        return Arch.from_dict(obj)
    if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], str):
        return Arch.from_arch_info(obj)
    raise ArchError(f"cannot parse an architecture from {type(obj).__name__}")


__all__ = ["Arch", "ArchError", "SearchSpace", "parse_arch", "FIELD_ORDER", "HAT_NAMES"]
