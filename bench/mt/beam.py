"""Beam search and checkpoint averaging for the decoding pilot (``bench.mt.decode_pilot``).

Not part of the measurement (``code_sha256`` covers ``train.greedy``, which every record is decoded with): these
exist to ask whether the records' chrF is held down by greedy decoding or by noisy final weights, the two
decoding-side knobs the recipe pilot left untuned. ``beam=1`` is greedy decoding token for token (a test checks it),
so the comparison differs in one thing only.
"""
from __future__ import annotations

import math

from .tokenizer import BOS, EOS, PAD


def beam_search(model, src_ids: list[list[int]], recipe, beam: int = 5, lenpen: float = 1.0,
                device: str = "cpu") -> list[list[int]]:
    """Beam search as fairseq's ``SequenceGenerator`` does it: 2*beam candidates per step; a candidate ending in </s>
    is finished only if it ranks among the top ``beam`` (the rest of the beam continues with the best non-</s>
    candidates), scored by its log-probability / (length + 1) ** lenpen; a sentence is done once ``beam``
    hypotheses finished. Length cap and
    special tokens as in ``train.greedy`` (at the cap </s> is forced at no cost). Returns token ids (no </s>)."""
    import torch

    model.eval()
    K = beam
    out: list[list[int] | None] = [None] * len(src_ids)
    srcs = [s[: recipe.max_positions - 1] + [EOS] for s in src_ids]
    order = sorted(range(len(srcs)), key=lambda i: len(srcs[i]))
    with torch.inference_mode():
        for b in range(0, len(order), recipe.decode_batch):
            idx = order[b: b + recipe.decode_batch]
            B = len(idx)
            S = max(len(srcs[i]) for i in idx)
            src = torch.full((B, S), PAD, dtype=torch.long)
            for j, i in enumerate(idx):
                src[j, : len(srcs[i])] = torch.tensor(srcs[i])
            limits = [max(1, min(int(recipe.decode_max_len_a * len(srcs[i]) + recipe.decode_max_len_b),
                                 recipe.max_positions - 1)) for i in idx]
            enc = model.reorder_encoder_out(model.encode(src.to(device)),
                                            torch.arange(B, device=device).repeat_interleave(K))
            state: dict = {}
            prev = torch.full((B * K, 1), EOS, dtype=torch.long, device=device)
            scores = torch.full((B, K), -math.inf, device=device)
            scores[:, 0] = 0.0  # one live beam at the start: the others would duplicate it
            finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
            live = list(range(B))  # the sentences still in the batch; block p of K rows is sentence live[p]
            t = 0
            while live:
                lp = torch.log_softmax(model.decode(prev, enc, state)[:, -1, :].float(), dim=-1)
                lp[:, PAD] = -math.inf
                lp[:, BOS] = -math.inf
                t += 1
                for p, j in enumerate(live):
                    if t >= limits[j]:  # the cap: every live beam ends here, its score unchanged
                        lp[p * K:(p + 1) * K] = -math.inf
                        lp[p * K:(p + 1) * K, EOS] = 0.0
                V = lp.size(-1)
                top_s, top_i = (scores.reshape(-1, 1) + lp).reshape(len(live), K * V).topk(min(2 * K, K * V), dim=1)
                top_s, top_i = top_s.tolist(), top_i.tolist()
                rows, toks, new_scores, still = [], [], [], []
                for p, j in enumerate(live):
                    kept: list[tuple[float, int, int]] = []
                    for rank, (s, flat) in enumerate(zip(top_s[p], top_i[p])):
                        if s == -math.inf or len(kept) == K:
                            break
                        row, tok = p * K + flat // V, flat % V
                        if tok == EOS:
                            if rank < K and len(finished[j]) < K:  # as fairseq: only an </s> among the top beam
                                hyp = prev[row, 1:].tolist()
                                finished[j].append((s / (len(hyp) + 1) ** lenpen, hyp))
                        else:
                            kept.append((s, row, tok))
                    if len(finished[j]) >= K or not kept:
                        continue  # done: its rows leave the batch
                    still.append(j)
                    kept += [(-math.inf, p * K, EOS)] * (K - len(kept))  # dead beams: never extended
                    for s, row, tok in kept:
                        rows.append(row)
                        toks.append(tok)
                        new_scores.append(s)
                if not still:
                    break
                sel = torch.tensor(rows, device=device)
                if len(still) < len(live):  # encoder rows follow the sentences (any row of a block will do)
                    enc = model.reorder_encoder_out(enc, sel)
                live = still
                prev = torch.cat([prev.index_select(0, sel), torch.tensor(toks, device=device)[:, None]], dim=1)
                model.reorder_incremental_state(state, sel)
                scores = torch.tensor(new_scores, device=device).reshape(len(live), K)
            for j, i in enumerate(idx):
                out[i] = max(finished[j], key=lambda h: h[0])[1] if finished[j] else []
    return out  # type: ignore[return-value]


def average_states(states: list[dict]) -> dict:
    """The element-wise mean of several state dicts of one model (floating tensors; others from the last)."""
    if not states:
        raise ValueError("no checkpoints to average")
    avg = {}
    for k, v in states[-1].items():
        avg[k] = (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
    return avg
