"""Beam search and checkpoint averaging of the decoding pilot (bench.mt.beam)."""
import itertools
import math
import random

import pytest

torch = pytest.importorskip("torch")

from bench.mt.beam import average_states, beam_search  # noqa: E402
from bench.mt.tokenizer import BOS, EOS, PAD  # noqa: E402
from bench.mt.train import Recipe, greedy  # noqa: E402


def _model(vocab: int, seed: int):
    from bench.model.subtransformer import build_model
    from bench.space import Arch

    arch = Arch.from_dict({"encoder_embed_dim": 32, "encoder_layer_num": 2, "encoder_ffn_embed_dim": [32, 64],
                           "encoder_self_attention_heads": [2, 4], "decoder_embed_dim": 16, "decoder_layer_num": 2,
                           "decoder_ffn_embed_dim": [32, 16], "decoder_self_attention_heads": [2, 2],
                           "decoder_ende_attention_heads": [4, 2], "decoder_arbitrary_ende_attn": [1, -1]})
    return build_model(arch, vocab, qkv_dim=16, seed=seed)


def _sources(vocab: int, n: int, seed: int = 0):
    rng = random.Random(seed)
    return [[rng.randint(4, vocab - 1) for _ in range(rng.randint(1, 12))] for _ in range(n)]


def test_beam_of_one_is_greedy_decoding():
    model = _model(50, 3)
    src = _sources(50, 11)
    r = Recipe(decode_batch=4, decode_max_len_b=6)
    assert beam_search(model, src, r, beam=1) == greedy(model, src, r)


def _logprob(model, src, hyp, cap):
    """log p(hyp </s> | src) by one teacher-forced forward; </s> at the length cap is free (as when decoding)."""
    s = torch.tensor([src + [EOS]])
    prev = torch.tensor([[EOS] + hyp])
    with torch.inference_mode():
        lp = torch.log_softmax(model(s, prev)[0].float(), dim=-1)
    total = sum(float(lp[i, t]) for i, t in enumerate(hyp))
    return total if len(hyp) + 1 >= cap else total + float(lp[len(hyp), EOS])


def test_unpruned_beam_finds_the_most_probable_output():
    """With a beam wider than every possible output and no length penalty, beam search is exhaustive search."""
    vocab, cap = 6, 4  # outputs of up to 3 tokens over the 3 non-special tokens {3, 4, 5}: 40 sequences
    model = _model(vocab, 7)
    r = Recipe(decode_batch=64, decode_max_len_a=0.0, decode_max_len_b=cap)
    tokens = [t for t in range(vocab) if t not in (PAD, BOS, EOS)]
    for src in _sources(vocab, 4, seed=1):
        every = [list(h) for n in range(cap) for h in itertools.product(tokens, repeat=n)]
        best = max(every, key=lambda h: _logprob(model, src, h, cap))
        got = beam_search(model, [src], r, beam=len(every), lenpen=0.0)[0]
        assert math.isclose(_logprob(model, src, got, cap), _logprob(model, src, best, cap), abs_tol=1e-5)
        assert got == best
        # with fairseq's length normalisation: the best log-probability per token (</s> counted)
        best_norm = max(every, key=lambda h: _logprob(model, src, h, cap) / (len(h) + 1))
        got_norm = beam_search(model, [src], r, beam=len(every), lenpen=1.0)[0]
        assert math.isclose(_logprob(model, src, got_norm, cap) / (len(got_norm) + 1),
                            _logprob(model, src, best_norm, cap) / (len(best_norm) + 1), abs_tol=1e-5)


def test_beam_outputs_respect_the_length_cap_and_never_emit_special_tokens():
    model = _model(50, 5)
    src = _sources(50, 9, seed=2)
    r = Recipe(decode_batch=8, decode_max_len_b=6)
    out = beam_search(model, src, r, beam=4)
    assert len(out) == len(src)
    assert all(len(h) <= int(1.5 * (len(s) + 1) + 6) - 1 for h, s in zip(out, src))  # the cap forces </s>
    assert all(not {PAD, BOS, EOS} & set(h) for h in out)
    # a sentence's output does not depend on its batch: whole batch, one batch, and each sentence alone
    assert beam_search(model, src, Recipe(decode_batch=64, decode_max_len_b=6), beam=4) == out
    assert beam_search(model, src, Recipe(decode_batch=1, decode_max_len_b=6), beam=4) == out


def test_average_states_is_the_elementwise_mean():
    a, b = _model(20, 0).state_dict(), _model(20, 1).state_dict()
    avg = average_states([a, b])
    for k, v in a.items():
        if v.is_floating_point():
            assert torch.allclose(avg[k], (v + b[k]) / 2, atol=1e-6)
    assert all(torch.equal(average_states([a])[k], v) for k, v in a.items())
    with pytest.raises(ValueError):
        average_states([])


def test_decode_pilot_retrains_a_record_exactly_and_reports(tmp_path, capsys):
    """The pilot's greedy decode of its retraining must equal the measured record, or its comparison is void."""
    import json

    from bench.cli import main
    from bench.mt import decode_pilot
    from tests.test_measure import make_suite

    suite = make_suite(tmp_path, steps=6)
    assert main(["measure", str(suite), "--task", "t", "--n", "2", "--no-progress"]) == 0
    figs = tmp_path / "pilot"
    args = [str(suite), "--task", "t", "--n", "2", "--beam", "2", "--avg", "2", "--no-progress", "--fig-dir", str(figs)]
    assert decode_pilot.main(args) == 0
    lines = [json.loads(x) for x in (figs / "decoding-t.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and {x["averaged"] for x in lines} <= {1, 2}
    for x in lines:
        assert x["variants"]["greedy"]["valid"]["chrf"] == x["record"]["valid_chrf"]
        assert x["variants"]["greedy"]["test"]["chrf"] == x["record"]["test_chrf"]
        assert set(x["variants"]) == set(decode_pilot.VARIANTS)
    assert decode_pilot.main(args) == 0  # resumed: nothing to do, nothing appended
    assert len((figs / "decoding-t.jsonl").read_text().splitlines()) == 2
    capsys.readouterr()
    assert decode_pilot.main([str(suite), "--report", str(figs / "decoding-t.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "| valid | beam |" in out and "largest |greedy - record| valid chrF 0.\n" in out
