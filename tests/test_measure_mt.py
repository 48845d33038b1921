"""The MT pieces of bench measure: corpus splits, tokenizer round trip, metrics against sacrebleu, decoding."""
import random

import pytest
import sacrebleu

from bench.mt.corpus import CorpusError, load_corpus
from bench.mt.scoring import score
from bench.mt.tokenizer import EOS, PAD, train_vocab
from bench.mt.train import Recipe, RecipeError, batches, greedy, lr_at, make_pairs

TEXTS = ["Ye' shkèxnã bua'ë.", "Ìs a' shkèxnã?", "ndyiᴬ ykwiqᴬ qanᴷ noᴷ waᶜ ntsaqᶠ chaqᶠ",
         "Yo amanecí muy bien.", "Como amanecieron ustedes?", "SJNQJKS NTYINᴮ SKAᴬ 9/2022."] * 5


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_tokenizer_round_trip_keeps_diacritics_and_tone_letters(tmp_path, kind):
    v = train_vocab(TEXTS, 120, kind, tmp_path)
    for s in set(TEXTS):
        ids = v.encode(s)
        assert PAD not in ids and EOS not in ids
        assert v.decode(ids) == s
        assert v.decode(ids + [EOS, 17, 18]) == s  # everything after </s> is dropped
    again = train_vocab(TEXTS, 120, kind, tmp_path)  # cached on disk, keyed by text and settings
    assert again.path == v.path and again.sha256 == v.sha256
    assert train_vocab(TEXTS[:3], 120, kind, tmp_path).path != v.path


def test_metrics_match_sacrebleu_and_skip_empty_references():
    hyps = ["el gato está en la casa", "hola", "buenos días amigo", "no sé"]
    refs = ["el gato está en casa", "", "buenos días, amigo", "no lo sé"]
    res = score(hyps, refs)
    keep = [0, 2, 3]
    h, r = [hyps[i] for i in keep], [[refs[i] for i in keep]]
    assert res["chrf"] == pytest.approx(sacrebleu.corpus_chrf(h, r).score)
    assert res["bleu"] == pytest.approx(sacrebleu.corpus_bleu(h, r).score)
    assert res["scored_lines"] == 3 and res["skipped_empty_refs"] == 1
    assert score(["a b c d"], ["a b c d"])["chrf"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        score(["a", "b"], ["a"])


def test_corpus_parts_and_line_ranges(tmp_path):
    (tmp_path / "a.x").write_text("1\n2\n3\n\n5\n")
    (tmp_path / "a.y").write_text("one\ntwo\nthree\nfour\nfive\n")
    cfg = {"src_lang": "x", "tgt_lang": "y", "train": [{"src": {"path": "a.x"}, "tgt": {"path": "a.y"}},
                                                      {"src": {"path": "a.x"}, "tgt": {"path": "a.y"}, "lines": [0, 2]}],
           "valid": {"src": {"path": "a.x"}, "tgt": {"path": "a.y"}, "lines": [2, 4]},
           "test": {"src": {"path": "a.x"}, "tgt": {"path": "a.y"}, "lines": [4, 5]}}
    c = load_corpus(cfg, tmp_path)
    assert c.splits["train"].src == ["1", "2", "3", "", "5", "1", "2"]
    assert c.splits["valid"].tgt == ["three", "four"] and c.splits["test"].src == ["5"]
    assert len(c.sha256) == 2
    cfg["test"]["lines"] = [4, 9]
    with pytest.raises(CorpusError, match=r"test\[0\].lines: \[4, 9\] is outside the file's 5 lines"):
        load_corpus(cfg, tmp_path)
    (tmp_path / "b.y").write_text("one\n")
    cfg["test"] = {"src": {"path": "a.x"}, "tgt": {"path": "b.y"}}
    with pytest.raises(CorpusError, match="has 5 lines but"):
        load_corpus(cfg, tmp_path)


def test_recipe_validation_and_schedule():
    r = Recipe.from_config({"lr": 0.002, "warmup": 10})
    assert lr_at(5, r) == pytest.approx(0.001) and lr_at(10, r) == pytest.approx(0.002)
    assert lr_at(40, r) == pytest.approx(0.001)
    with pytest.raises(RecipeError, match="unknown keys \\['epochs'\\]; allowed keys"):
        Recipe.from_config({"epochs": 3})
    with pytest.raises(RecipeError, match="beam: 4 is not allowed"):
        Recipe.from_config({"beam": 4})
    assert Recipe.from_config({}).sha256 == Recipe().sha256 != r.sha256


def test_batches_respect_the_token_budget_and_drop_empty_pairs():
    src = [[5] * random.Random(i).randint(1, 30) for i in range(200)] + [[]]
    tgt = [[6] * random.Random(-i).randint(1, 30) for i in range(200)] + [[7]]
    pairs = make_pairs(src, tgt, max_len=20)
    assert len(pairs) == 200 and all(p[0][-1] == EOS and len(p[0]) <= 20 for p in pairs)
    bs = batches(pairs, 128, random.Random(0))
    assert sorted(i for b in bs for i in b) == list(range(200))
    for b in bs:
        assert max(max(len(pairs[i][0]), len(pairs[i][1])) for i in b) * len(b) <= 128


def test_incremental_greedy_equals_full_recompute():

    from bench.model.subtransformer import build_model
    from bench.space import Arch

    arch = Arch.from_dict({"encoder_embed_dim": 32, "encoder_layer_num": 2, "encoder_ffn_embed_dim": [32, 64],
                           "encoder_self_attention_heads": [2, 4], "decoder_embed_dim": 16, "decoder_layer_num": 2,
                           "decoder_ffn_embed_dim": [32, 16], "decoder_self_attention_heads": [2, 2],
                           "decoder_ende_attention_heads": [4, 2], "decoder_arbitrary_ende_attn": [1, -1]})
    model = build_model(arch, 50, qkv_dim=16, seed=3)
    rng = random.Random(0)
    src = [[rng.randint(4, 49) for _ in range(rng.randint(1, 12))] for _ in range(9)]
    r = Recipe(decode_batch=4, decode_max_len_b=6)
    inc = greedy(model, src, r, incremental=True)
    full = greedy(model, src, r, incremental=False)
    assert inc == full
    assert all(len(h) <= 1.5 * (len(s) + 1) + 6 for h, s in zip(inc, src))
    assert all(PAD not in h and EOS not in h for h in inc)
