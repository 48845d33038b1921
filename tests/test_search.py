"""HAT evolutionary search / HS-NAS hybrid: operators, constraint, determinism, the switch, failing scorers."""
import random
import subprocess
import sys

import numpy as np
import pytest

from bench.costs import compute_costs
from bench.search import Constraint, EvoParams, Genes, Scorer, SearchError, evolve
from bench.space import SearchSpace

SPACE = SearchSpace.from_config({
    "encoder_embed_dim": [640, 512], "decoder_embed_dim": [640, 512],
    "encoder_ffn_embed_dim": [3072, 2048, 1024], "decoder_ffn_embed_dim": [3072, 2048, 1024],
    "encoder_layer_num": [6], "decoder_layer_num": [6, 5, 4, 3, 2, 1],
    "encoder_self_attention_heads": [8, 4], "decoder_self_attention_heads": [8, 4],
    "decoder_ende_attention_heads": [8, 4], "decoder_arbitrary_ende_attn": [-1, 1, 2]})
SMALL = dict(iterations=6, population=25, parents=5, mutations=10, crossovers=10)


def fake_latency(archs):
    """Latency grows with decoder depth and width, like HAT's."""
    return np.array([20.0 * a.decoder_layer_num + a.decoder_embed_dim / 20 + np.mean(a.decoder_ffn_embed_dim) / 100
                     for a in archs])


class Size:
    """A quality scorer: bigger is better; records every batch it was asked."""

    higher_is_better = True

    def __init__(self, fail_layers=()):
        self.calls, self.fail_layers = [], set(fail_layers)

    def predict(self, archs):
        self.calls.append([a.key() for a in archs])
        return np.array([np.nan if a.decoder_layer_num in self.fail_layers else
                         sum(a.encoder_ffn_embed_dim) + sum(a.decoder_ffn_embed_dim) + a.decoder_embed_dim
                         for a in archs], dtype=float)


def test_operators_stay_in_the_space():
    g, rng = Genes(SPACE), random.Random(0)
    for _ in range(300):
        a, b = g.random(rng), g.random(rng)
        for child in (g.mutate(a, 0.3, rng), Genes.crossover(a, b, rng)):
            assert len(child) == len(g.choices) == 40
            assert all(v in c for v, c in zip(child, g.choices))
            arch = g.arch(child)
            SPACE.validate(arch)
            assert arch == SPACE.gene_to_arch(list(child))  # the fast converter agrees with the core one


def test_mutation_rate_and_crossover_mix():
    g, rng = Genes(SPACE), random.Random(1)
    a = g.random(rng)
    changed = np.mean([np.mean([x != y for x, y in zip(a, g.mutate(a, 0.3, rng))]) for _ in range(2000)])
    # p=0.3 redraws a position; the redraw keeps the old value with probability 1/len(choices)
    expect = np.mean([0.3 * (1 - 1 / len(c)) for c in g.choices])
    assert abs(changed - expect) < 0.01
    b = tuple(c[-1] if c[-1] != x else c[0] for x, c in zip(a, g.choices))
    child = Genes.crossover(a, b, rng)
    assert all(x in (p, q) for x, p, q in zip(child, a, b))


def test_every_candidate_satisfies_the_constraint_and_best_is_the_true_best():
    sc = Scorer("size", Size())
    con = Constraint(latency=fake_latency, latency_ms=80.0)
    res = evolve(SPACE, [(0, sc)], con, EvoParams(**SMALL), seed=3)
    archs = [Genes(SPACE).arch(g) for g in res.population]
    assert (fake_latency(archs) <= 80.0).all()
    assert res.scores[0] == max(res.scores)  # the original reported the 25th best
    assert res.scores == sorted(res.scores, reverse=True)
    assert res.sample_stats["rejected"] > 0  # the constraint did bite


def test_flops_constraint_is_in_gflops():
    vocab = 32768
    flops = lambda a: compute_costs(a, vocab).total_flops  # noqa: E731
    con = Constraint(gflops=3.0, flops_fn=flops)
    res = evolve(SPACE, [(0, Scorer("size", Size()))], con, EvoParams(**SMALL), seed=0)
    g = Genes(SPACE)
    assert all(flops(g.arch(x)) / 1e9 <= 3.0 for x in res.population)


def test_unsatisfiable_or_missing_constraint_is_an_error():
    with pytest.raises(SearchError, match="no constraint"):
        Constraint()
    con = Constraint(latency=fake_latency, latency_ms=1.0)
    with pytest.raises(SearchError, match="unsatisfiable.*lowest predicted latency"):
        evolve(SPACE, [(0, Scorer("s", Size()))], con, EvoParams(max_rejections=500, **SMALL), seed=0)
    with pytest.raises(SearchError, match="parents \\+ mutations"):
        EvoParams(population=10).check()


def test_seeded_determinism_in_process():
    runs = []
    for _ in range(2):
        res = evolve(SPACE, [(0, Scorer("size", Size()))], Constraint(latency=fake_latency, latency_ms=90.0),
                     EvoParams(**SMALL), seed=7)
        runs.append((res.population, res.scores, res.trajectory))
    assert runs[0] == runs[1]
    other = evolve(SPACE, [(0, Scorer("size", Size()))], Constraint(latency=fake_latency, latency_ms=90.0),
                   EvoParams(**SMALL), seed=8)
    assert other.population != runs[0][0]


def test_hybrid_switches_at_the_right_iteration_and_rescores_everything():
    cheap, dear = Size(), Size()
    s1, s2 = Scorer("cheap", cheap), Scorer("dear", dear)
    p = EvoParams(**SMALL)
    res = evolve(SPACE, [(0, s1), (4, s2)], Constraint(latency=fake_latency, latency_ms=90.0), p, seed=2)
    assert [t["scorer"] for t in res.trajectory] == ["cheap"] * 4 + ["dear"] * 2
    assert [t["switch"] for t in res.trajectory] == [False] * 4 + [True, False]
    # at the switch the whole population (parents chosen by the cheap scorer + children) goes to the dear one
    switch = res.trajectory[4]
    assert dear.calls and len(dear.calls[0]) == switch["distinct_archs"]
    assert switch["new_queries"] == switch["distinct_archs"]
    assert s1.hat_evals == 4 * p.population and s2.hat_evals == 2 * p.population
    assert s2.queries <= s2.hat_evals and s1.queries <= s1.hat_evals
    # memoised: parents kept from iteration 4 are not asked again at iteration 5
    assert res.trajectory[5]["new_queries"] < p.population


def test_a_failing_scorer_ranks_failures_last_and_the_search_goes_on():
    sc = Scorer("flaky", Size(fail_layers={1, 2}))
    res = evolve(SPACE, [(0, sc)], Constraint(latency=fake_latency, latency_ms=200.0), EvoParams(**SMALL), seed=5)
    assert len(sc.failed) > 0
    assert sum(t["failed"] for t in res.trajectory) > 0
    finite = [np.isfinite(s) for s in res.scores]
    assert finite == sorted(finite, reverse=True)  # nan last

    class Broken:
        higher_is_better = True

        def predict(self, archs):
            raise RuntimeError("backend down")

    sb = Scorer("broken", Broken())
    res = evolve(SPACE, [(0, sb)], Constraint(latency=fake_latency, latency_ms=200.0), EvoParams(**SMALL), seed=5)
    assert sb.errors and "backend down" in sb.errors[0]
    assert res.trajectory[-1]["failed"] == SMALL["population"]


def test_lower_is_better_scorers_are_ranked_ascending():
    class Loss(Size):
        higher_is_better = False

    sc = Scorer("loss", Loss())
    res = evolve(SPACE, [(0, sc)], Constraint(latency=fake_latency, latency_ms=90.0), EvoParams(**SMALL), seed=1)
    assert res.scores[0] == min(res.scores)


def _cli(out, *extra):
    cmd = [sys.executable, "-m", "bench", "search", "suites/wmt14.yaml", "--task", "wmt14-en-de",
           "--latency-ms", "150", "--scorer", "linear", "--then", "gp", "--switch-at", "2", "--iterations", "4",
           "--population", "20", "--parents", "4", "--mutations", "8", "--crossovers", "8", "--seed", "11",
           "--out", str(out), "--no-progress", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_cli_outputs_are_byte_identical_for_the_same_seed(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        r = _cli(out, "--compare-baseline")
        assert r.returncode == 0, r.stderr[-2000:]
    assert "hybrid / non-hybrid" in r.stdout
    compared = ["best.yml", "best.json", "population.json", "trajectory.json", "ledger.json", "comparison.json",
                "pareto.png", "baseline/best.json", "baseline/population.json", "baseline/ledger.json"]
    for name in compared:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    import json

    import yaml

    best = yaml.safe_load((a / "best.yml").read_text())
    assert best["decoder-layer-num-subtransformer"] == len(best["decoder-ffn-embed-dim-all-subtransformer"])
    info = json.loads((a / "best.json").read_text())
    assert info["predicted_latency_ms"] <= 150 and set(info["predicted"]) == {"linear", "gp"}
    ledger = json.loads((a / "ledger.json").read_text())
    assert ledger["expensive"]["hat_evals"] == 2 * 20 and ledger["expensive"]["hat_evals_avoided"] == 2 * 20
    assert "Hybrid vs non-hybrid" in (a / "report.md").read_text()


def test_cli_rejects_bad_arguments(tmp_path, root, monkeypatch):
    monkeypatch.chdir(root)
    r = _cli(tmp_path, "--switch-at", "9")
    assert r.returncode == 2 and "--switch-at 9" in r.stderr


def test_ledger_bills_llm_calls_once_and_counts_avoided_evaluations(root):
    from bench.search.run import Fitted, run_search
    from bench.suite import load_suite

    task = load_suite(root / "suites" / "wmt14.yaml").task("wmt14-en-de")

    class FakeLLM(Size):
        def __init__(self):
            super().__init__()
            self.n = 0

        def predict(self, archs):
            self.n += len(archs)
            return super().predict(archs)

        def cost(self):
            return {"calls": self.n, "dollars": 0.01 * self.n}

    cheap, llm = Fitted(Size(), 0.0, {}), Fitted(FakeLLM(), 0.0, {"calls": 7, "dollars": 0.07})
    cheap.pred.cost = lambda: {"label_total_dollars": 3.0}
    fitted = {"cheap": cheap, "llm": llm}
    p = EvoParams(**SMALL)
    args = {"latency": fake_latency, "latency_ms": 90.0}
    opts = {"amortize_over": 4}
    hyb = run_search(task, [(0, "cheap"), (3, "llm")], fitted, dict(args), p, 0, 123, "valid_bleu", opts, False)
    base = run_search(task, [(0, "llm")], fitted, dict(args), p, 0, 123, "valid_bleu", opts, False)
    assert hyb["spend"]["llm_calls"] == 7 + hyb["ledger"]["stages"][1]["queries"]  # fit-time calls billed once
    assert base["spend"]["llm_calls"] == base["ledger"]["stages"][0]["queries"]
    assert hyb["spend"]["teacher_label_dollars_amortised"] == 0.75
    assert hyb["ledger"]["expensive"]["hat_evals_avoided"] == 3 * p.population
    assert base["ledger"]["expensive"]["hat_evals"] == p.iterations * p.population
