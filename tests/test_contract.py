"""The predictor contract, checked on every registered predictor (scikit-learn's ``check_estimator`` idea).

Predictors are discovered from the registry, so a new one is covered the day it is registered.  Each is
checked for what the harness relies on:

- it is constructed from its default spec (the bare name) and rejects unknown options with the allowed ones;
- its spec round-trips (``parse_spec``/``format_spec``/``create`` give the same spec, config and description),
  and so does its full default config written out as a spec;
- ``describe()``, ``cost()`` and ``details()`` are plain JSON (they land in results.json);
- ``supports()`` has no side effects: no file written (cache entries included), no network connection;
- ``fit`` returns self; ``predict`` returns one float per architecture (nan, never inf, where it failed),
  also for an empty list, and the same values when asked twice; a predictor that runs here stays offline.

Fit/predict run on a tiny task (a 12-architecture ``records`` suite over a small space, vocabulary 64) and,
for a predictor the tiny task does not support (released supernet replays), on the real WMT'14 En-De task.
Options that only make a predictor slow are shrunk (``SMALL``: applied to any predictor that has the option).
A predictor that cannot run here (no key, package or model file) is skipped for those parts, with the reason.
"""
from __future__ import annotations

import json
import os
import random
import socket
from pathlib import Path

import numpy as np
import pytest
import yaml

from bench.costs import compute_costs
from bench.space import SearchSpace
from bench.suite import load_suite
from predictors import registry
from predictors.base import Context, Predictor

NAMES = sorted(registry.entries())
# Options that change only the cost of a contract check, applied where a predictor has one of that type.
SMALL = {"batch": "random", "batch_size": 4, "length": 6, "steps": 30, "pool": 40}
LLM_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")

TINY_SPACE = {"encoder_embed_dim": [16, 24], "decoder_embed_dim": [16, 24], "encoder_ffn_embed_dim": [32, 48],
              "decoder_ffn_embed_dim": [32, 48], "encoder_layer_num": [2], "decoder_layer_num": [1, 2],
              "encoder_self_attention_heads": [2, 4], "decoder_self_attention_heads": [2, 4],
              "decoder_ende_attention_heads": [2, 4], "decoder_arbitrary_ende_attn": [-1, 1], "qkv_dim": 8}


@pytest.fixture(autouse=True)
def _no_llm_keys(monkeypatch):
    """LLM predictors are checked offline: no key, no server, whatever the caller's environment holds."""
    for var in LLM_ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def tasks(tmp_path_factory, root):
    """The tiny task (written as a real suite) and the real WMT'14 En-De task, data loaded up front."""
    d = tmp_path_factory.mktemp("tiny-suite")
    space = SearchSpace.from_config(TINY_SPACE)
    rng, seen, rows = random.Random(0), set(), []
    while len(rows) < 12:
        a = space.sample(rng)
        if a.key() in seen:
            continue
        seen.add(a.key())
        params = compute_costs(a, 64, 8).params_no_emb
        rows.append({"arch": a.to_dict(), "valid_bleu": 20 + params / 5000 + rng.gauss(0, 0.3),
                     "latency_ms": 5 + params / 2000 + rng.gauss(0, 0.2)})
    (d / "tiny.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    suite = {"name": "tiny", "predictors": ["mean"], "tasks": [{
        "name": "tiny", "search_space": TINY_SPACE, "vocab_size": 64,
        "latency": {"hat_task": "wmt14ende", "device": "gpu_titanxp"},
        "source": {"kind": "records", "file": {"path": "tiny.jsonl"}, "train_size": 6, "seeds": [0],
                   "targets": {"valid_bleu": {"unit": "BLEU"}, "latency_ms": {"unit": "ms", "kind": "latency"}}}}]}
    (d / "tiny.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    tiny = load_suite(d / "tiny.yaml").task("tiny")
    wmt = load_suite(root / "suites" / "wmt14.yaml").task("wmt14-en-de")
    for t in (tiny, wmt):
        assert t.records  # load now: reading task data is not the predictor's side effect
    return [tiny, wmt]


def _small(name: str) -> str:
    defaults = registry.get(name).cls.default_config()
    return registry.format_spec(name, {k: v for k, v in SMALL.items()
                                       if k in defaults and type(defaults[k]) is type(v)})


def _ctx(task, target):
    return Context(task=task, target=target, seed=task.seeds[0])


def _plain_json(obj, what):
    try:
        json.dumps(obj, allow_nan=True)
    except (TypeError, ValueError) as exc:
        pytest.fail(f"{what} is not plain JSON ({exc}): {obj!r}")


def _where_it_runs(name, tasks):
    """(task, target, predictor) for the first task/target the small spec supports, else the reasons it does not."""
    spec, reasons = _small(name), []
    why = registry.get(name).availability(registry.parse_spec(spec)[1])
    if why:
        return None, f"cannot run here: {why}"
    for task in tasks:
        for target in task.targets:
            pred = registry.create(spec, _ctx(task, target))
            why = pred.supports(task, target)
            if why is None:
                return (task, target, pred), None
            reasons.append(f"{task.name}/{target}: {why}")
    return None, "; ".join(reasons)


# ---------------------------------------------------------------- construction and specs
@pytest.mark.parametrize("name", NAMES)
def test_constructs_from_its_default_spec(name, tasks):
    entry = registry.get(name)
    assert entry.description and isinstance(entry.family, str) and all(isinstance(r, str) for r in entry.requires)
    pred = registry.create(name, _ctx(tasks[0], "valid_bleu"))
    assert isinstance(pred, Predictor) and pred.name == name
    # the spec may spell out a default the leaderboard must show (distill names its recipe), but it names the
    # same predictor with the same configuration
    assert registry.create(pred.spec, _ctx(tasks[0], "valid_bleu")).config == pred.config
    assert pred.config == entry.cls.default_config() and set(pred.config) == entry.cls.config_keys()
    for flag in ("learns", "on_target_scale", "higher_is_better"):
        assert isinstance(getattr(pred, flag), bool), flag
    d = pred.describe()
    _plain_json(d, f"{name}.describe()")
    _plain_json(pred.cost(), f"{name}.cost() before fit")
    assert d["name"] == name and d["spec"] == pred.spec
    with pytest.raises(ValueError, match="allowed"):
        registry.create(f"{name}[no_such_option=1]", _ctx(tasks[0], "valid_bleu"))


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trips(name, tasks):
    ctx = _ctx(tasks[0], "valid_bleu")
    defaults = registry.get(name).cls.default_config()
    for spec in (name, _small(name), registry.format_spec(name, defaults)):
        pred = registry.create(spec, ctx)
        n2, c2 = registry.parse_spec(pred.spec)
        assert n2 == name and registry.format_spec(n2, c2) == pred.spec
        again = registry.create(pred.spec, ctx)
        assert again.spec == pred.spec and again.config == pred.config and again.describe() == pred.describe()
    # every default written out explicitly means the default (None stays None, 1e-05 stays a float)
    assert registry.create(registry.format_spec(name, defaults), ctx).config == defaults


# ---------------------------------------------------------------- supports() is a pure question
@pytest.fixture
def connects(monkeypatch):
    """Network attempts (connections, name lookups), refused and recorded: predictors that run here are offline."""
    seen = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            seen.append(address)
            raise OSError(f"the contract test forbids network connections ({address})")
        return real_connect(sock, address)

    def getaddrinfo(*args, **kwargs):
        seen.append(args)
        raise OSError("the contract test forbids name lookups")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


@pytest.mark.parametrize("name", NAMES)
def test_supports_has_no_side_effects(name, tasks, tmp_path, monkeypatch, connects):
    cache = Path(os.environ["BENCH_CACHE_DIR"])
    monkeypatch.chdir(tmp_path)

    def files():
        return {str(p): p.stat().st_mtime_ns for base in (cache, tmp_path) if base.exists() for p in base.rglob("*")}

    before = files()
    for keys in (False, True):  # with (fake) keys, LLM predictors get past "no backend": still no call
        for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            if keys:
                monkeypatch.setenv(var, "contract-test-not-a-key")
        for spec in (name, _small(name)):
            for task in tasks:
                for target in task.targets:
                    pred = registry.create(spec, _ctx(task, target))
                    why = pred.supports(task, target)
                    assert why is None or (isinstance(why, str) and why), f"{spec} on {task.name}/{target}: {why!r}"
                    if why is None:  # supports() may name run options in the spec (llm-pp): still a valid spec
                        assert registry.create(pred.spec, _ctx(task, target)).spec == pred.spec
    assert files() == before, f"{name}.supports() wrote files"
    assert not connects, f"{name}.supports() opened network connections: {connects}"


# ---------------------------------------------------------------- the estimator API
@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One cache for every fit/predict check: the nine proxies computed for the first are cache hits for the rest."""
    return str(tmp_path_factory.mktemp("contract-cache"))


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_predict_gives_one_float_per_arch(name, tasks, shared_cache, monkeypatch, connects):
    monkeypatch.setenv("BENCH_CACHE_DIR", shared_cache)
    found, why = _where_it_runs(name, tasks)
    if found is None:
        pytest.skip(f"{name}: fit/predict not checked: {why}")
    task, target, pred = found
    train, test = task.split(task.seeds[0])
    archs = [r.arch for r in test]
    assert pred.fit([r.arch for r in train], np.array([r.targets[target] for r in train])) is pred
    for batch in (archs, archs[:1], []):
        p = pred.predict(batch)
        assert isinstance(p, np.ndarray) and p.dtype.kind == "f" and p.shape == (len(batch),), (batch, p)
        assert not np.isinf(p).any(), f"{name} predicted inf; failures must be nan: {p}"
    p1 = pred.predict(archs)
    assert np.isfinite(p1).any(), f"{name} failed on every architecture of {task.name}/{target}: {p1}"
    np.testing.assert_array_equal(p1, pred.predict(archs), err_msg=f"{name}: predict is not repeatable")
    _plain_json(pred.describe(), f"{name}.describe() after fit")
    _plain_json(pred.cost(), f"{name}.cost()")
    _plain_json(pred.details(), f"{name}.details()")
    assert not connects, f"{name} opened network connections: {connects}"
