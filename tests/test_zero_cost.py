"""Zero-cost proxies on a tiny SubTransformer, each against an independent computation."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from bench.model import build_model  # noqa: E402
from bench.model import proxies as P  # noqa: E402
from bench.model.batch import make_batch, train_tokenizer  # noqa: E402
from bench.space import Arch, SearchSpace  # noqa: E402
from predictors import registry  # noqa: E402
from predictors.base import Context  # noqa: E402

TINY = Arch(16, 3, (24, 32, 24), (2, 4, 2), 12, 2, (20, 28), (4, 2), (2, 4), (-1, 2))
OTHER = Arch(16, 3, (32, 32, 32), (4, 4, 4), 16, 1, (24,), (2,), (2,), (1,))
V = 60


def _space():
    choices = {f: tuple(sorted({getattr(a, f) if isinstance(getattr(a, f), int) else v
                               for a in (TINY, OTHER)
                               for v in (getattr(a, f) if isinstance(getattr(a, f), tuple) else [getattr(a, f)])}))
               for f in ("encoder_embed_dim", "encoder_layer_num", "encoder_ffn_embed_dim",
                         "encoder_self_attention_heads", "decoder_embed_dim", "decoder_layer_num",
                         "decoder_ffn_embed_dim", "decoder_self_attention_heads", "decoder_ende_attention_heads",
                         "decoder_arbitrary_ende_attn")}
    return SearchSpace(choices=choices, qkv_dim=8, name="tiny")


def _task():
    return SimpleNamespace(name="tiny", vocab_size=V, space=_space(), cfg={}, suite=None, where="tasks[0]")


@pytest.fixture(scope="module")
def batch():
    return make_batch(_task(), "random", batch_size=4, length=6, seed=0)


@pytest.fixture(scope="module")
def scores(batch):
    return P.score_arch(TINY, V, batch, P.PROXIES, qkv_dim=8)


def _model():
    return build_model(TINY, V, qkv_dim=8, seed=0)


def _loss(m, batch):
    src, prev, tgt = batch.tensors()
    logits = m(src, prev)
    return F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), ignore_index=1, label_smoothing=0.1)


def _weights(m):
    return [(n, p) for n, p in m.named_parameters() if p.dim() == 2]


def test_gradient_proxies_match_backward_on_dot_grad(scores, batch):
    m = _model()
    _loss(m, batch).backward()
    ws = _weights(m)
    assert scores["grad_norm"]["score"] == pytest.approx(sum(p.grad.norm().item() for _, p in ws), rel=1e-5)
    assert scores["snip"]["score"] == pytest.approx(sum((p * p.grad).abs().sum().item() for _, p in ws), rel=1e-5)
    assert scores["plain"]["score"] == pytest.approx(sum((p * p.grad).sum().item() for _, p in ws), rel=1e-4,
                                                     abs=1e-7)
    assert scores["l2_norm"]["score"] == pytest.approx(sum(p.norm().item() for _, p in ws), rel=1e-5)
    names = [n for n, _ in ws]
    for proxy in ("grad_norm", "snip", "plain", "l2_norm", "grasp", "synflow"):
        assert scores[proxy]["tensors"] == names, proxy
    assert "embed_tokens.weight" in names and "encoder.layers.0.self_attn.in_proj_weight" in names
    assert "decoder.layers.1.encoder_attn.k_proj_weight" in names
    assert not any("layer_norm" in n or n.endswith("bias") for n in names)


def test_grasp_matches_the_two_pass_zero_cost_nas_recipe(scores, batch):
    m = _model()
    ws = [p for _, p in _weights(m)]
    g = torch.autograd.grad(_loss(m, batch), ws)  # pass 1: no graph
    gf = torch.autograd.grad(_loss(m, batch), ws, create_graph=True)  # pass 2: with graph
    z = sum((a * b).sum() for a, b in zip(g, gf))
    z.backward()
    expected = sum((-p.data * p.grad).sum().item() for p in ws)
    assert scores["grasp"]["score"] == pytest.approx(expected, rel=1e-4, abs=1e-9)


def test_fisher_equals_an_additive_probe_on_every_linear_output(scores, batch):
    m = _model()
    maps = P.linear_maps(m)
    acts, probes = {}, {}

    def hook(name):
        def fn(_mod, _inp, out):
            probes[name] = torch.zeros_like(out, requires_grad=True)
            acts[name] = out.detach()
            return out + probes[name]
        return fn
    for n, mod in maps:
        mod.register_forward_hook(hook(n))
    grads = torch.autograd.grad(_loss(m, batch), list(probes.values()))
    expected = sum(float((0.5 * (acts[n] * g).sum(1).pow(2).mean(0)).sum()) for n, g in zip(probes, grads))
    assert scores["fisher"]["score"] == pytest.approx(expected, rel=1e-5)
    assert "output_tap" in scores["fisher"]["tensors"] and "decoder.layers.1.encoder_attn.k_tap" in \
        scores["fisher"]["tensors"] and "encoder.layers.2.fc1" in scores["fisher"]["tensors"]


def test_nwot_by_hand_and_on_the_model(scores, batch):
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert P.nwot_score([c]) == pytest.approx(2 * math.log(2))  # K = 2I
    m = _model()
    outs = []
    for stack in (m.encoder.layers, m.decoder.layers):
        for layer in stack:
            layer.fc1.register_forward_hook(lambda _m, _i, o: outs.append(o.detach().flatten(1)))
    src, prev, _ = batch.tensors()
    m(src, prev)
    k = sum(((o > 0).double() @ (o > 0).double().T) + ((o <= 0).double() @ (o <= 0).double().T) for o in outs)
    assert scores["nwot"]["score"] == pytest.approx(float(np.linalg.slogdet(k.numpy())[1]), rel=1e-9)
    assert len(scores["nwot"]["tensors"]) == 3 + 2


def test_jacov_is_per_sentence_and_matches_its_formula(scores, batch):
    uncorrelated = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])  # correlation matrix = I
    assert P.jacov_score(uncorrelated) == pytest.approx(-2 * (math.log(1 + 1e-5) + 1 / (1 + 1e-5)), rel=1e-9)
    m = _model()
    src, prev, _ = batch.tensors()
    rows = []
    for b in range(src.shape[0]):  # one sentence at a time: the batch must not couple them
        x = m.embed_source(src[b:b + 1]).detach().requires_grad_(True)
        y = m.embed_target(prev[b:b + 1]).detach().requires_grad_(True)
        out = m.decode_embedded(y, m.encode_embedded(x)).sum()  # the full logits, summed
        gx, gy = torch.autograd.grad(out, [x, y])
        rows.append(torch.cat([gx.flatten(), gy.flatten()]).double().numpy())
    corr = np.corrcoef(np.stack(rows))
    v = np.linalg.eigvals(corr).real
    expected = -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))
    assert scores["jacov"]["score"] == pytest.approx(expected, rel=1e-4)
    assert P.jacov_score(np.ones((3, 4))) != P.jacov_score(np.ones((3, 4)))  # constant rows -> nan, kept
    # why not the final states themselves: after the post-LayerNorm they sum to 0 at every position
    states = m.decode_embedded(m.embed_target(prev), m.encode(src), features_only=True)
    assert states.sum(-1).abs().max() < 1e-4


def test_synflow_float64_abs_weights_all_ones_input(scores, batch):
    m = _model().double()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    x = torch.ones(1, 6, 16, dtype=torch.float64)
    y = torch.ones(1, 6, 12, dtype=torch.float64)
    m.decode_embedded(y, m.encode_embedded(x)).sum().backward()
    expected = sum((p * p.grad).abs().sum().item() for _, p in _weights(m))
    assert scores["synflow"]["score"] == pytest.approx(expected, rel=1e-12)
    no_ln = P.score_arch(TINY, V, batch, ["synflow"], P.ProxyConfig(disable_layernorm=True), qkv_dim=8)
    assert no_ln["synflow"]["score"] != scores["synflow"]["score"]
    assert no_ln["synflow"]["score"] > 0


def test_deterministic_and_independent_of_grouping(scores, batch):
    again = P.score_arch(TINY, V, batch, P.PROXIES, qkv_dim=8)
    for p in P.PROXIES:
        assert again[p]["score"] == scores[p]["score"], p
    for p in ("snip", "grasp", "nwot", "synflow"):
        alone = P.score_arch(TINY, V, batch, [p], qkv_dim=8)
        assert alone[p]["score"] == pytest.approx(scores[p]["score"], rel=1e-6), p


def test_tensor_sets():
    m = _model()
    allp = [n for n, _ in P.scored_parameters(m, "all")]
    noemb = [n for n, _ in P.scored_parameters(m, "no-embedding")]
    assert len(allp) == len(list(m.parameters())) and "embed_tokens.weight" not in noemb
    assert "output_tap" not in [n for n, _ in P.linear_maps(m, "no-embedding")]
    with pytest.raises(ValueError, match="allowed values"):
        P.ProxyConfig(tensors="everything")


def test_bpe_batch_is_task_text_with_fairseq_specials(root):
    from bench.suite import load_suite
    task = load_suite(root / "suites" / "wmt14.yaml").task("wmt14-en-de")
    b = make_batch(task, "bpe", batch_size=4, length=10)
    src, prev, tgt = b.tensors()
    assert src.shape == tgt.shape == prev.shape == (4, 10)
    assert (src[:, -1] == 2).all() and (prev[:, 0] == 2).all() and int(src.max()) < task.vocab_size
    assert b.identity["src"].endswith("newstest2013.en") and len(b.identity["sha256"]) == 64
    assert make_batch(task, "bpe", batch_size=4, length=10).identity == b.identity  # cached, stable
    tok = train_tokenizer(["a b c a b", "c a b"], 20)
    assert tok.token_to_id("<pad>") == 1 and tok.token_to_id("</s>") == 2


def _predict(spec, archs, task):
    pred = registry.create(spec, Context(task=task, target="valid_bleu", seed=0))
    assert pred.supports(task, "valid_bleu") is None
    return pred, pred.predict(archs)


def test_predictors_cache_nan_and_details(monkeypatch):
    task = _task()
    archs = [TINY, OTHER]
    pred, out = _predict("snip[batch=random,batch_size=4,length=6]", archs, task)
    assert np.isfinite(out).all() and pred.cost()["computed"] == 2
    d = pred.details()
    assert d["inputs"]["kind"] == "random" and d["inputs"]["batch_size"] == 4 and d["inputs"]["length"] == 6
    assert "decoder.layers.{i}.encoder_attn.q_proj_weight" in d["tensors"]
    assert pred.higher_is_better is True and pred.on_target_scale is False
    # every other proxy was computed with it (share=True): a cache hit, nothing computed
    monkeypatch.setattr(P, "score_arch", lambda *a, **k: pytest.fail("recomputed a cached score"))
    for name in P.PROXIES:
        p2, out2 = _predict(f"{name}[batch=random,batch_size=4,length=6]", archs, task)
        assert p2.cost()["computed"] == 0 and p2.cost()["cached"] == 2
    vote, v = _predict("zc-vote[batch=random,batch_size=4,length=6]", archs, task)
    assert sorted(v.tolist()) in ([0.0, 1.0], [0.0, 0.0])
    monkeypatch.undo()

    def fake(arch, *a, **k):
        return {n: {"score": float("nan") if arch == OTHER else 1.0, "tensors": [], "seconds": 0.0}
                for n in a[2]} | {"_timing": {}}
    monkeypatch.setattr(P, "score_arch", fake)
    p3, out3 = _predict("snip[batch=random,batch_size=4,length=6,init_seed=7]", archs, task)
    assert out3[0] == 1.0 and np.isnan(out3[1]) and p3.cost()["nonfinite"] == 1


def test_zc_all_fits_on_proxy_scores(monkeypatch):
    task = _task()
    monkeypatch.setattr(P, "score_arch", lambda arch, v, b, names, cfg, q: {
        n: {"score": float(arch.decoder_embed_dim + i), "tensors": [], "seconds": 0.0}
        for i, n in enumerate(names)} | {"_timing": {}})
    pred = registry.create("zc-all[batch=random,batch_size=4,length=6]", Context(task=task, target="valid_bleu", seed=0))
    pred.fit([TINY, OTHER], np.array([20.0, 25.0]))
    p = pred.predict([TINY, OTHER])
    assert p[1] > p[0] and pred.learns and pred.on_target_scale
