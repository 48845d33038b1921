"""Detokenised sacrebleu BLEU and chrF, as the AmericasNLP 2023 official evaluation computes them.

Lines whose reference is empty are skipped (the official script does the same; Bribri dev.es has two).
"""
from __future__ import annotations


def score(hyps: list[str], refs: list[str]) -> dict:
    import sacrebleu

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references")
    pairs = [(h, r) for h, r in zip(hyps, refs) if r.strip()]
    if not pairs:
        raise ValueError("every reference is empty: nothing to score")
    h = [p[0] for p in pairs]
    r = [[p[1] for p in pairs]]
    return {"chrf": sacrebleu.corpus_chrf(h, r).score, "bleu": sacrebleu.corpus_bleu(h, r).score,
            "scored_lines": len(pairs), "skipped_empty_refs": len(hyps) - len(pairs)}
