"""The fixed minibatch a zero-cost proxy sees: tokenised sentence pairs of the task, or seeded random ids.

HAT's BPE codes are not released, so ``bpe`` trains a byte-pair tokenizer (HF ``tokenizers``, joined
source+target, fairseq's special ids <s>=0 <pad>=1 </s>=2 <unk>=3, vocabulary capped at the task's
size) on the two mirrored files named by the task's ``proxies: {src:, tgt:}`` and takes the first
``batch_size`` pairs (file order) whose both sides have at least ``length - 1`` tokens, cut to
``length - 1`` tokens plus </s>.  No padding: every proxy sees a dense [B, length] batch (nwot and
jacov compare sentences position by position).  ``random`` draws ids uniformly from [4, V) with a
seeded generator.  Decoder inputs are fairseq's ``prev_output_tokens``: </s> then the target shifted.

The token ids are cached (BPE training is not guaranteed bit-stable across library versions), and
the batch's sha256 is part of every proxy's identity.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bench import data
from bench.cache import Cache, make_key

BOS, PAD, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
KINDS = ("bpe", "random")


class BatchError(ValueError):
    """A proxy batch that cannot be built (bad option or missing task config)."""


@dataclass(frozen=True)
class Batch:
    src: list  # [B][L] token ids, each row ends with </s>
    tgt: list  # [B][L] targets (the loss labels)
    identity: dict  # what determines it: kind, files, sizes, seed, vocab, sha256

    @property
    def prev(self) -> list:
        return [[EOS] + row[:-1] for row in self.tgt]

    def tensors(self):
        import torch
        return (torch.tensor(self.src, dtype=torch.long), torch.tensor(self.prev, dtype=torch.long),
                torch.tensor(self.tgt, dtype=torch.long))


def _sha(src, tgt) -> str:
    return hashlib.sha256(json.dumps([src, tgt]).encode()).hexdigest()


def task_files(task) -> tuple[str, str]:
    cfg = task.cfg.get("proxies") or {}
    if not isinstance(cfg, dict) or "src" not in cfg or "tgt" not in cfg:
        raise BatchError(f"{task.suite.path}: {task.where}.proxies: batch=bpe needs a mapping with 'src' and 'tgt' "
                         f"mirror paths of a parallel text (got {cfg!r}); or use the variant batch=random")
    return cfg["src"], cfg["tgt"]


def make_batch(task, kind: str = "bpe", batch_size: int = 8, length: int = 16, seed: int = 0) -> Batch:
    if kind not in KINDS:
        raise BatchError(f"proxy option batch={kind!r} is not allowed; allowed values: {list(KINDS)}")
    if batch_size < 2 or length < 2:
        raise BatchError(f"proxy batch_size ({batch_size}) and length ({length}) must be at least 2")
    vocab = int(task.vocab_size)
    if kind == "random":
        import torch
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(4, vocab, (2, batch_size, length - 1), generator=g).tolist()
        src = [r + [EOS] for r in ids[0]]
        tgt = [r + [EOS] for r in ids[1]]
        ident = {"kind": "random", "batch_size": batch_size, "length": length, "seed": seed, "vocab": vocab}
        return Batch(src, tgt, dict(ident, sha256=_sha(src, tgt)))
    src_path, tgt_path = task_files(task)
    ident = {"kind": "bpe", "src": src_path, "tgt": tgt_path, "batch_size": batch_size, "length": length,
             "vocab_cap": vocab, "tokenizer": "hf-tokenizers BPE, NFKC, whitespace pre-tokenizer, joined"}
    cache = Cache(namespace="proxy-batch")
    key = make_key(ident, data.pins()[src_path].sha256 if src_path in data.pins() else src_path,
                   data.pins()[tgt_path].sha256 if tgt_path in data.pins() else tgt_path)
    hit = cache.get(key)
    if hit is None:
        src, tgt, n_vocab = _tokenise(src_path, tgt_path, vocab, batch_size, length)
        hit = {"src": src, "tgt": tgt, "trained_vocab": n_vocab}
        cache.put(key, hit)
    src, tgt = hit["src"], hit["tgt"]
    return Batch(src, tgt, dict(ident, trained_vocab=hit["trained_vocab"], sha256=_sha(src, tgt)))


def train_tokenizer(lines: list[str], vocab: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS,
                                                       show_progress=False))
    assert [tok.token_to_id(s) for s in SPECIALS] == [BOS, PAD, EOS, UNK]
    return tok


def _tokenise(src_path: str, tgt_path: str, vocab: int, batch_size: int, length: int):
    src_lines = data.fetch(src_path).read_text(encoding="utf-8").splitlines()
    tgt_lines = data.fetch(tgt_path).read_text(encoding="utf-8").splitlines()
    if len(src_lines) != len(tgt_lines):
        raise BatchError(f"proxy batch files are not parallel: {src_path} has {len(src_lines)} lines, "
                         f"{tgt_path} has {len(tgt_lines)}")
    tok = train_tokenizer(src_lines + tgt_lines, vocab)
    src, tgt = [], []
    for s, t in zip(src_lines, tgt_lines):
        a, b = tok.encode(s).ids, tok.encode(t).ids
        if len(a) >= length - 1 and len(b) >= length - 1:
            src.append(a[:length - 1] + [EOS])
            tgt.append(b[:length - 1] + [EOS])
            if len(src) == batch_size:
                return src, tgt, tok.get_vocab_size()
    raise BatchError(f"only {len(src)} sentence pairs of {src_path} / {tgt_path} have {length - 1}+ tokens; "
                     f"need batch_size={batch_size}")
