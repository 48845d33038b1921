"""A task's parallel corpus, read from pinned files and split as the suite declares.

A split is a list of parts ``{src: FILE, tgt: FILE, lines: [start, end]}`` (0-based, end exclusive,
optional), so a suite can declare e.g. "train + the first 299 dev lines" for a language pair
without public test references.  FILE is a pinned mirror path or a ``{path|url|mirror}`` spec
(``bench.data.resolve``); every file is checksum-verified and its sha256 goes into the records.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from .. import data

SPLITS = ("train", "valid", "test")


class CorpusError(ValueError):
    """A malformed corpus declaration or misaligned files."""


@dataclass
class Split:
    src: list[str]
    tgt: list[str]

    def __len__(self) -> int:
        return len(self.src)


@dataclass
class Corpus:
    src_lang: str
    tgt_lang: str
    splits: dict[str, Split]
    sha256: dict[str, str] = field(default_factory=dict)  # file -> sha256

    @property
    def fingerprint(self) -> str:
        """Changes whenever a file or a split declaration changes (tokenizer cache key)."""
        blob = json.dumps([self.sha256, {k: [len(v.src)] for k, v in self.splits.items()}], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _read(spec, base_dir: Path | None, sha: dict) -> list[str]:
    path = data.resolve(spec, base_dir)
    sha[str(spec if isinstance(spec, str) else json.dumps(spec, sort_keys=True))] = data.sha256_of(path)
    text = path.read_text(encoding="utf-8")
    # Keep empty lines: line i of src pairs with line i of tgt.
    lines = text.split("\n")
    return lines[:-1] if text.endswith("\n") else lines


def load_corpus(cfg: dict, base_dir: Path | None = None, where: str = "measure.corpus") -> Corpus:
    if not isinstance(cfg, dict):
        raise CorpusError(f"{where}: must be a mapping with keys src_lang, tgt_lang, {', '.join(SPLITS)}")
    missing = [k for k in ("src_lang", "tgt_lang", *SPLITS) if k not in cfg]
    if missing:
        raise CorpusError(f"{where}: missing keys {missing}")
    unknown = set(cfg) - {"src_lang", "tgt_lang", *SPLITS}
    if unknown:
        raise CorpusError(f"{where}: unknown keys {sorted(unknown)}; allowed keys: "
                          f"{['src_lang', 'tgt_lang', *SPLITS]}")
    sha: dict[str, str] = {}
    cache: dict[str, list[str]] = {}
    splits = {}
    for name in SPLITS:
        parts = cfg[name] if isinstance(cfg[name], list) else [cfg[name]]
        src: list[str] = []
        tgt: list[str] = []
        for i, part in enumerate(parts):
            w = f"{where}.{name}[{i}]"
            if not isinstance(part, dict) or "src" not in part or "tgt" not in part:
                raise CorpusError(f"{w}: must be a mapping {{src: FILE, tgt: FILE, lines: [start, end]}}")
            bad = set(part) - {"src", "tgt", "lines"}
            if bad:
                raise CorpusError(f"{w}: unknown keys {sorted(bad)}; allowed keys: ['lines', 'src', 'tgt']")
            sides = []
            for side in ("src", "tgt"):
                key = json.dumps(part[side], sort_keys=True)
                if key not in cache:
                    cache[key] = _read(part[side], base_dir, sha)
                sides.append(cache[key])
            s, t = sides
            if len(s) != len(t):
                raise CorpusError(f"{w}: {part['src']} has {len(s)} lines but {part['tgt']} has {len(t)}")
            lo, hi = part.get("lines", [0, len(s)])
            if not (0 <= lo < hi <= len(s)):
                raise CorpusError(f"{w}.lines: [{lo}, {hi}] is outside the file's {len(s)} lines")
            src += s[lo:hi]
            tgt += t[lo:hi]
        splits[name] = Split(src, tgt)
    return Corpus(str(cfg["src_lang"]), str(cfg["tgt_lang"]), splits, sha)
