"""Supernets: slicing = the SubTransformer code path, extraction = a standalone model, MoS routers, training + scoring."""
import json
import random
from pathlib import Path

import pytest
import torch
from test_measure import make_suite as make_measure_suite

from bench.cli import main
from bench.measure import read_records
from bench.model.subtransformer import build_model
from bench.model.supernet import (
    SuperTransformer,
    largest_arch,
    sample_arch,
    smallest_arch,
)
from bench.space import Arch, SearchSpace
from bench.supernet import load_supernet, read_checkpoint, read_header, write_checkpoint

TOY = {"encoder_embed_dim": [16, 32], "decoder_embed_dim": [16, 24], "encoder_ffn_embed_dim": [16, 48],
       "decoder_ffn_embed_dim": [16, 40], "encoder_layer_num": [1, 2, 3], "decoder_layer_num": [1, 2],
       "encoder_self_attention_heads": [2, 4], "decoder_self_attention_heads": [2, 4],
       "decoder_ende_attention_heads": [2, 4], "decoder_arbitrary_ende_attn": [-1, 1, 2], "qkv_dim": 16}
V = 50


def toy_space():
    return SearchSpace.from_config(TOY, name="toy")


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V, (3, 7), generator=g)
    prev = torch.randint(4, V, (3, 5), generator=g)
    src[0, -2:] = 1  # padding on one row
    prev[1, -1] = 1
    return src, prev


def archs(n=4):
    sp = toy_space()
    rng = random.Random(3)
    return [largest_arch(sp), smallest_arch(sp)] + [sample_arch(sp, rng) for _ in range(n)]


def perturbed(kind, experts=2, seed=0):
    """A supernet whose tensors are all non-trivial (trained supernets have non-zero biases, LayerNorm...)."""
    sn = SuperTransformer(toy_space(), V, kind, experts=experts, router_hidden=8, seed=seed)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 7)
        for p in sn.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return sn.eval()


def test_reference_architectures_and_sampling():
    sp = toy_space()
    big, small = largest_arch(sp), smallest_arch(sp)
    assert big.encoder_layer_num == 3 and big.decoder_embed_dim == 24 and set(big.decoder_ffn_embed_dim) == {40}
    assert big.decoder_arbitrary_ende_attn == (2, 2) and small.decoder_arbitrary_ende_attn == (-1,)
    assert small.encoder_embed_dim == 16 and small.encoder_layer_num == 1
    rng = random.Random(0)
    seen = {sample_arch(sp, rng).key() for _ in range(200)}
    assert len(seen) > 150  # uniform over a large space: mostly distinct
    for key in seen:
        a = sp.validate(Arch.from_dict(json.loads(key)))
        assert max(a.ende_layers) <= a.encoder_layer_num


@pytest.mark.parametrize("kind", ["hat", "layer-mos", "neuron-mos"])
def test_supernet_at_the_largest_arch_is_the_subtransformer_forward_with_those_weights(kind):
    sn = SuperTransformer(toy_space(), V, kind, experts=1, seed=0).eval()
    src, prev = batch()
    assert torch.equal(sn(sn.largest, src, prev), sn.weights.eval()(src, prev))
    # and those weights are a standalone SubTransformer's, built with the same seed
    own = build_model(sn.largest, V, qkv_dim=16, seed=0).eval()
    assert torch.equal(own(src, prev), sn(sn.largest, src, prev))


@pytest.mark.parametrize("kind", ["hat", "layer-mos", "neuron-mos"])
def test_checkpoint_built_subtransformer_equals_a_standalone_one_with_copied_weights(tmp_path, kind):
    sn = perturbed(kind)
    path = tmp_path / "supernet.pt"
    write_checkpoint(path, {"supernet": sn.config(), "kind": kind}, {"model": sn.state_dict()})
    assert read_header(path)["kind"] == kind
    loaded, _ = load_supernet(path)
    src, prev = batch(1)
    for arch in archs():
        sub = loaded.extract(arch)
        assert type(sub).__name__ == "SubTransformer" and sub.arch == arch
        # a standalone SubTransformer (HAT's sliced positions) with the weights copied in by hand
        own = build_model(arch, V, qkv_dim=16, positions_dims=sn.widths, seed=123)
        with torch.no_grad():
            copied = {k: v.detach().clone() for k, v in sn.sub_tensors(arch).items() if not k.endswith("_positions")}
        if kind == "hat":  # the plain leading slices, spelled out
            for name, t in own.state_dict().items():
                expect = sn.weights.state_dict()[name][tuple(slice(0, n) for n in t.shape)]
                assert torch.equal(copied[name], expect), name
        own.load_state_dict(copied)
        own.eval()
        assert torch.equal(sub(src, prev), own(src, prev))
        torch.testing.assert_close(sn(arch, src, prev), own(src, prev), rtol=1e-5, atol=1e-5)
        # the extracted model is independent of the supernet
        assert all(p.data_ptr() != q.data_ptr() for p in sub.parameters() for q in loaded.parameters())


def test_gradients_flow_into_the_shared_slices_only():
    sn = SuperTransformer(toy_space(), V, "hat", seed=0)
    small = sn.smallest
    src, prev = batch()
    sn(small, src, prev).sum().backward()
    g = sn.weights.encoder.layers[0].fc1.weight.grad
    assert g[:16, :16].abs().sum() > 0 and g[16:].abs().sum() == 0 and g[:, 16:].abs().sum() == 0
    assert sn.weights.encoder.layers[1].fc1.weight.grad is None  # a layer the subnet does not have


def test_mos_routers_shapes_and_mixtures():
    sp = toy_space()
    arch = archs()[3]
    lay = perturbed("layer-mos", experts=3)
    a = lay.mixture_weights(arch)
    assert sorted(a) == sorted([f"encoder.{i}" for i in range(arch.encoder_layer_num)] +
                               [f"decoder.{i}" for i in range(arch.decoder_layer_num)])
    for v in a.values():
        assert v.shape == (3,) and (v > 0).all() and torch.allclose(v.sum(), torch.tensor(1.0))
    assert not torch.allclose(a["encoder.0"], lay.mixture_weights(smallest_arch(sp))["encoder.0"])  # arch-dependent
    with torch.no_grad():  # the mixed fc1 = sum_j alpha_j * (expert j's leading slice)
        t = lay.sub_tensors(arch)
        f, d = arch.encoder_ffn_embed_dim[0], arch.encoder_embed_dim
        ex = [lay.weights.encoder.layers[0].fc1.weight] + [e.fc1.weight for e in lay.experts["encoder"][0]]
        want = sum(a["encoder.0"][j] * ex[j][:f, :d] for j in range(3))
        torch.testing.assert_close(t["encoder.layers.0.fc1.weight"], want)

    neu = perturbed("neuron-mos", experts=3)
    a = neu.mixture_weights(arch)
    for i in range(arch.decoder_layer_num):
        f, d = arch.decoder_ffn_embed_dim[i], arch.decoder_embed_dim
        assert a[f"decoder.{i}.fc1"].shape == (f, 3) and a[f"decoder.{i}.fc2"].shape == (d, 3)
        torch.testing.assert_close(a[f"decoder.{i}.fc1"].sum(-1), torch.ones(f))
    with torch.no_grad():
        t = neu.sub_tensors(arch)
        al = a["decoder.0.fc2"]  # [d, m]: one mixture per output neuron (row)
        f, d = arch.decoder_ffn_embed_dim[0], arch.decoder_embed_dim
        ex = [neu.weights.decoder.layers[0].fc2] + [e.fc2 for e in neu.experts["decoder"][0]]
        want_w = sum(al[:, j:j + 1] * ex[j].weight[:d, :f] for j in range(3))
        want_b = sum(al[:, j] * ex[j].bias[:d] for j in range(3))
        torch.testing.assert_close(t["decoder.layers.0.fc2.weight"], want_w)
        torch.testing.assert_close(t["decoder.layers.0.fc2.bias"], want_b)
    # router parameter shapes: Linear(10, h) -> ReLU -> Linear(h, m) | LinearSuper(h, m * out_super)
    assert lay.routers["encoder"][0].out.weight.shape == (3, 8)
    assert neu.routers["encoder"][0]["fc1"].out.weight.shape == (3 * 48, 8)
    assert neu.routers["decoder"][1]["fc2"].out.weight.shape == (3 * 24, 8)


@pytest.mark.parametrize("kind", ["layer-mos", "neuron-mos"])
def test_one_expert_reduces_exactly_to_hat(kind):
    hat = SuperTransformer(toy_space(), V, "hat", seed=5).eval()
    mos = SuperTransformer(toy_space(), V, kind, experts=1, seed=5).eval()
    src, prev = batch(2)
    for arch in archs():
        assert torch.equal(hat(arch, src, prev), mos(arch, src, prev))


def test_bad_kind_is_one_clear_error():
    with pytest.raises(ValueError, match=r"kind 'mos' is not allowed; allowed values: \['hat', 'layer-mos'"):
        SuperTransformer(toy_space(), V, "mos")


# ---------------------------------------------------------------- training + scoring, end to end
def make_suite(tmp_path) -> Path:
    """test_measure's tiny Bribri suite (8 sentence pairs, a 16/32-wide space, 3 training steps)."""
    return make_measure_suite(tmp_path, heads="[2]", steps=3)


def test_train_resume_and_score_on_the_smallest_task(tmp_path, capsys, monkeypatch):
    suite = make_suite(tmp_path)
    assert main(["measure", str(suite), "--task", "t", "--n", "5", "--no-progress"]) == 0
    assert len(read_records(tmp_path / "out" / "t.jsonl")) == 5
    capsys.readouterr()
    # nothing trained yet: the predictor says how to train one; asked for alone, nothing ran, so the run fails
    assert main(["run", str(suite), "--predictors", "supernet[kind=neuron-mos]", "--no-write", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"supernet train {suite} --task t --kind neuron-mos`, then `python -m bench supernet score" in err

    one = tmp_path / "one"
    assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "neuron-mos", "--steps", "20",
                 "--out", str(one), "--no-progress"]) == 0
    assert "20 steps" in capsys.readouterr().out
    head = read_header(one / "supernet.pt")
    assert head["kind"] == "neuron-mos" and head["sampling"] == "sandwich" and head["steps"] == 20
    assert head["supernet"]["experts"] == 2 and head["supernet"]["router_hidden"] == 64
    assert len(head["code_sha256"]) == 64 and head["recipe"]["max_steps"] == 20 and head["train_seconds"] > 0
    losses = [e["dev_loss_largest"] for e in head["evals"]]
    assert len(losses) == 10 and losses[-1] < losses[0]  # it learns

    # killed after 10 steps and rerun: the same weights as one uninterrupted run
    two = tmp_path / "two"
    assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "neuron-mos", "--steps", "10",
                 "--out", str(two), "--no-progress"]) == 0
    assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "neuron-mos", "--steps", "20",
                 "--out", str(two), "--no-progress"]) == 0
    assert "resuming at step 10" in capsys.readouterr().err
    a, b = read_checkpoint(one / "supernet.pt")[1]["model"], read_checkpoint(two / "supernet.pt")[1]["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_header(two / "supernet.pt")["evals"] == head["evals"]
    # a finished run is not redone; another kind in the same folder is refused
    assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "neuron-mos", "--steps", "20",
                 "--out", str(two), "--no-progress"]) == 0
    assert "already trained" in capsys.readouterr().err
    assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "hat", "--steps", "20",
                 "--out", str(two), "--no-progress"]) == 2
    assert "holds a supernet trained with other settings (experts, kind)" in capsys.readouterr().err

    # scoring: chrF with inherited weights (metric) and minus the dev loss (loss), through bench run
    ck = one / "supernet.pt"
    specs = f"supernet[kind=neuron-mos,checkpoint={ck}],supernet[kind=neuron-mos,checkpoint={ck},score=loss]"
    out = tmp_path / "report"
    assert main(["run", str(suite), "--predictors", specs, "--targets", "all", "--out", str(out),
                 "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    runs = [r for r in res["runs"] if "error" not in r]
    assert len(runs) == 8 and all(r["coverage"] == 1.0 for r in runs)
    metric = [r for r in runs if "score=loss" not in r["predictor"]]
    assert all(0 <= p <= 100 for r in metric for p in r["predictions"])
    loss = [r for r in runs if "score=loss" in r["predictor"]]
    assert all(p < 0 for r in loss for p in r["predictions"])
    assert loss[0]["details"]["checkpoint_sha256"] and loss[0]["details"]["split"] == "valid"
    # a second run is served from the score cache
    assert main(["run", str(suite), "--predictors", specs, "--no-write", "--no-progress"]) == 0
    # the benchmark command runs on it, and names the checkpoint relative to the working folder (a committed
    # report carries no home folder)
    monkeypatch.chdir(tmp_path)
    assert main(["supernet", "bench", str(suite), "--task", "t", "--kind", "neuron-mos", "--checkpoint", str(ck),
                 "--n", "1"]) == 0
    out = capsys.readouterr().out
    assert "training from scratch costs" in out and f"--checkpoint {ck.relative_to(tmp_path)}`" in out
    assert str(tmp_path) not in out.split("\n\n")[1]


def test_cli_errors_are_one_line(tmp_path, capsys):
    suite = make_suite(tmp_path)
    assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "mos"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --kind: 'mos' is not allowed; allowed values: ['hat', 'layer-mos', 'neuron-mos']"
    assert main(["supernet", "train", str(suite), "--task", "t", "--sampling", "all"]) == 2
    assert "--sampling: 'all' is not allowed" in capsys.readouterr().err
    assert main(["supernet", "train", str(suite), "--task", "nope"]) == 2
    assert "no task 'nope'" in capsys.readouterr().err


def test_predictor_says_why_it_cannot_run(tmp_path):
    from bench.suite import load_suite
    from predictors import registry
    from predictors.base import Context

    entry = registry.get("supernet")
    assert "checkpoint /nope.pt not found" in entry.availability({"checkpoint": "/nope.pt"})
    assert "kind='moe' is not allowed" in entry.availability({"kind": "moe"})
    assert "score='bleu' is not allowed" in entry.availability({"score": "bleu"})
    task = load_suite(make_suite(tmp_path)).task("t")
    sn = perturbed("hat")
    path = tmp_path / "hat.pt"
    write_checkpoint(path, {"supernet": sn.config(), "kind": "hat", "task": "t", "space": task.space.to_config()},
                     {"model": sn.state_dict()})
    ctx = Context(task=task, target="chrf", seed=0)
    assert registry.create(f"supernet[checkpoint={path}]", ctx).supports(task, "chrf") is None
    why = registry.create(f"supernet[checkpoint={path},kind=layer-mos]", ctx).supports(task, "chrf")
    assert why == f"checkpoint {path} holds a hat supernet, not kind=layer-mos"
    why = registry.create("supernet[kind=hat]", ctx).supports(task, "chrf")
    assert why.startswith("cannot run here: no hat supernet and no scores file for task t: train one with "
                          "`python -m bench supernet train ")
    assert "`python -m bench supernet score " in why
    task.cfg.pop("measure")
    assert "has no measure: block" in registry.create(f"supernet[checkpoint={path}]", ctx).supports(task, "chrf")


def test_uniform_sampling_trains_one_random_subnet_per_step(tmp_path):
    """HAT's rule (--sampling uniform): a different run from sandwich's, recorded as such in the header."""
    suite = make_suite(tmp_path)
    for sampling in ("uniform", "sandwich"):
        assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "hat", "--sampling", sampling,
                     "--steps", "4", "--out", str(tmp_path / sampling), "--no-progress"]) == 0
    head = read_header(tmp_path / "uniform" / "supernet.pt")
    assert head["sampling"] == "uniform" and head["sandwich_random"] is None and head["steps"] == 4
    assert read_header(tmp_path / "sandwich" / "supernet.pt")["sandwich_random"] == 2
    a = read_checkpoint(tmp_path / "uniform" / "supernet.pt")[1]["model"]
    b = read_checkpoint(tmp_path / "sandwich" / "supernet.pt")[1]["model"]
    assert not all(torch.equal(a[k], b[k]) for k in a)
