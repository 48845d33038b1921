"""A joined subword vocabulary trained on a task's training split (HF ``tokenizers``), cached on disk.

Metaspace pre-tokenisation keeps detokenisation lossless (spaces become ``▁``), and no Unicode
normalisation is applied: Chatino's superscript tone letters (``ᴬ``) would collapse under NFKC.
Special ids follow fairseq so the SubTransformer's ``pad_idx=1`` holds: <s>=0, <pad>=1, </s>=2, <unk>=3.
The cache key is the training text's sha256 plus the tokenizer settings, so a changed corpus or
vocabulary size never reuses a stale model.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
BOS, PAD, EOS, UNK = 0, 1, 2, 3
KINDS = ("bpe", "unigram")


class Vocab:
    """Encode text to ids and back; wraps a trained ``tokenizers.Tokenizer``."""

    def __init__(self, tok, path: Path | None = None):
        self.tok = tok
        self.path = path

    def __len__(self) -> int:
        return self.tok.get_vocab_size()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tok.to_str().encode()).hexdigest()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if EOS in ids:
            ids = ids[: ids.index(EOS)]
        return self.tok.decode([i for i in ids if i not in (BOS, PAD)], skip_special_tokens=False).strip()


def _build(kind: str, vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>",
                                          show_progress=False)
    else:
        raise ValueError(f"tokenizer kind {kind!r} is not allowed; allowed values: {list(KINDS)}")
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tok, trainer


def train_vocab(texts: list[str], vocab_size: int, kind: str = "bpe", cache_dir: Path | None = None) -> Vocab:
    """Train (or load from ``cache_dir``) a joined vocabulary on ``texts`` (both sides of the training split)."""
    from tokenizers import Tokenizer

    key = hashlib.sha256(json.dumps([kind, vocab_size, texts], ensure_ascii=False).encode()).hexdigest()[:20]
    path = Path(cache_dir) / f"{kind}-{vocab_size}-{key}.json" if cache_dir else None
    if path is not None and path.exists():
        return Vocab(Tokenizer.from_file(str(path)), path)
    tok, trainer = _build(kind, vocab_size)
    tok.train_from_iterator([t for t in texts if t.strip()], trainer=trainer)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, f"special token {s} got id {tok.token_to_id(s)}, expected {i}"
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tok-")
        os.close(fd)
        tok.save(tmp)
        os.replace(tmp, path)
        return Vocab(Tokenizer.from_file(str(path)), path)
    # Reload from its serialisation so a fresh and a cached vocabulary hash the same.
    return Vocab(Tokenizer.from_str(tok.to_str()), None)
