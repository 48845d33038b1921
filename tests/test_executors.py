"""bench.executors: `bench measure --executor ray` on a local Ray (num_cpus=2) against `--executor local`;
a worker killed mid-task (retried, one record), a task whose workers keep dying (an error record), a driver killed
and resumed (no duplicates), and the smoke-run / option errors.  Ray starts once for the module."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from test_measure import ROOT, make_suite

from bench.cli import main
from bench.measure import done_keys, read_records, validate_record

CLOCKS = {"timestamp", "train_seconds", "eval_seconds", "wall_seconds", "host"}


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=True,
             logging_level="warning")
    yield ray
    ray.shutdown()


def measure(suite, out, *extra):
    return main(["measure", str(suite), "--task", "t", "--out", str(out), "--no-progress", *extra])


def by_key(rows):
    return {(r["arch_key"], r["seed"]): r for r in rows}


def test_ray_records_equal_local_records_field_by_field(tmp_path, ray_session):
    suite = make_suite(tmp_path, steps=3)
    assert measure(suite, tmp_path / "local.jsonl", "--n", "2", "--seeds", "0,1") == 0
    assert measure(suite, tmp_path / "ray.jsonl", "--n", "2", "--seeds", "0,1", "--executor", "ray") == 0
    assert measure(suite, tmp_path / "procs.jsonl", "--n", "2", "--seeds", "0,1", "--workers", "2") == 0
    local, remote = by_key(read_records(tmp_path / "local.jsonl")), by_key(read_records(tmp_path / "ray.jsonl"))
    procs = by_key(read_records(tmp_path / "procs.jsonl"))
    assert len(local) == 4 and local.keys() == remote.keys() == procs.keys()
    for k, a in local.items():
        assert {f for f in a if a[f] != procs[k][f]} <= CLOCKS
        b = remote[k]
        assert validate_record(b) == [] and b["status"] == "ok"
        assert set(a) == set(b)
        differ = {f for f in a if a[f] != b[f]}
        assert differ <= CLOCKS, (k, {f: (a[f], b[f]) for f in differ - CLOCKS})
        assert a["evals"] and a["test_sample"] == b["test_sample"]


def long_suite(tmp_path):
    """~10 s of training: the driver learns of a start at its next poll (up to 1 s, more under load), then kills."""
    suite = make_suite(tmp_path, steps=1500)
    suite.write_text(suite.read_text().replace("max_epochs: 100,", "max_epochs: 500, patience: 1000,"))
    return suite


def _with_killer(monkeypatch, fn, after: float = 0.3):
    """Run ``fn`` while the first worker that reports a task start is SIGKILLed ``after`` seconds into the task.

    The start is the one the executor shows in its per-worker status (``Progress.started``), so the kill lands
    inside the task's body, not in Ray's own set-up of the worker."""
    from bench import executors

    pids, seen = [], []
    original = executors.Progress.started

    def started(self, label, worker, since, attempt):
        if not seen:
            seen.append(int(worker.rsplit(":", 1)[1]))
            threading.Timer(after, lambda: (os.kill(seen[0], signal.SIGKILL), pids.append(seen[0]))).start()
        return original(self, label, worker, since, attempt)

    monkeypatch.setattr(executors.Progress, "started", started)
    return fn(), pids


def test_a_worker_killed_mid_task_is_retried_and_recorded_once(tmp_path, ray_session, capsys, monkeypatch):
    suite = long_suite(tmp_path)
    out = tmp_path / "r.jsonl"
    rc, pids = _with_killer(monkeypatch, lambda: measure(suite, out, "--n", "1", "--executor", "ray"))
    assert rc == 0 and len(pids) == 1, "the test should have killed one worker mid-task"
    rows = read_records(out)
    assert len(rows) == 1 and rows[0]["status"] == "ok" and validate_record(rows[0]) == []
    assert "2 tries" in capsys.readouterr().err


def test_a_task_whose_workers_keep_dying_is_an_error_record(tmp_path, ray_session, monkeypatch):
    suite = long_suite(tmp_path)
    out = tmp_path / "r.jsonl"
    rc, pids = _with_killer(monkeypatch, lambda: measure(suite, out, "--n", "1", "--executor", "ray",
                            "--max-retries", "0"))
    assert rc == 0 and len(pids) == 1
    rows = read_records(out)
    assert len(rows) == 1 and rows[0]["status"] == "error" and validate_record(rows[0]) == []
    assert rows[0]["error"].startswith("WorkerLost:") and "1 start(s)" in rows[0]["error"]
    # an error record is finished work: a rerun does not repeat it
    assert measure(suite, out, "--n", "1", "--executor", "ray") == 0
    assert len(read_records(out)) == 1


def test_driver_killed_then_resumed_has_no_duplicates(tmp_path, ray_session, capsys):
    suite = make_suite(tmp_path, steps=10)
    out = tmp_path / "r.jsonl"
    address = ray_session.get_runtime_context().gcs_address
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "bench", "measure", str(suite), "--task", "t", "--n", "4",
                             "--out", str(out), "--no-progress", "--executor", "ray", "--ray-address", address],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    first = read_records(out)
    assert 1 <= len(first) < 4, f"the driver should have been killed after its first record: {err[-2000:]}"
    assert measure(suite, out, "--n", "4", "--executor", "ray") == 0
    assert f"{len(first)} of 4 (architecture, seed) runs already in" in capsys.readouterr().err
    rows = read_records(out)
    assert len(rows) == 4 and rows[: len(first)] == first
    assert len(by_key(rows)) == 4 and all(r["status"] == "ok" for r in rows)


def test_smoke_runs_need_their_own_file_and_change_the_recipe(tmp_path, capsys):
    suite = make_suite(tmp_path, steps=3)
    assert main(["measure", str(suite), "--task", "t", "--n", "1", "--max-steps", "1", "--no-progress"]) == 2
    assert "error: --max-steps: a smoke run's records never go to the suite's records file" in capsys.readouterr().err
    suite_file = tmp_path / "out" / "t.jsonl"
    assert measure(suite, suite_file, "--n", "1", "--max-steps", "1") == 2
    assert not suite_file.exists()
    assert measure(suite, tmp_path / "full.jsonl", "--n", "1") == 0
    assert measure(suite, tmp_path / "smoke.jsonl", "--n", "1", "--max-steps", "1") == 0
    full, smoke = read_records(tmp_path / "full.jsonl")[0], read_records(tmp_path / "smoke.jsonl")[0]
    assert smoke["steps"] == 1 and full["steps"] == 3 and smoke["recipe"]["max_steps"] == 1
    assert smoke["recipe_sha256"] != full["recipe_sha256"]
    # the smoke records do not count as done for the full recipe
    assert measure(suite, tmp_path / "smoke.jsonl", "--n", "1", "--allow-mixed") == 0
    assert len(read_records(tmp_path / "smoke.jsonl")) == 2


def test_executor_option_errors(tmp_path, capsys):
    suite = make_suite(tmp_path, steps=3)
    assert measure(suite, tmp_path / "x.jsonl", "--ray-address", "127.0.0.1:1") == 2
    assert "error: --ray-address: only with --executor ray" in capsys.readouterr().err
    assert measure(suite, tmp_path / "x.jsonl", "--executor", "ray", "--max-retries", "-1") == 2
    assert "error: --max-retries: must be >= 0" in capsys.readouterr().err
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert measure(suite, tmp_path / "x.jsonl", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}") == 2
    assert f"error: --ray-address 127.0.0.1:{port}: cannot connect" in capsys.readouterr().err
    assert measure(suite, tmp_path / "x.jsonl", "--executor", "ray", "--workers", "2") == 2
    assert "error: --workers: only with --executor local" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_done_keys_match_recipe_and_code_hash(monkeypatch):
    from bench.mt import train

    monkeypatch.setattr(train, "CODE_SHA256", None, raising=False)  # a code hash unknown: recipe only
    class R:
        sha256 = "r1"

    class P:
        recipe = R()

    rows = [{"arch_key": "a", "seed": 0, "recipe_sha256": "r1", "code_sha256": "c1"},
            {"arch_key": "b", "seed": 0, "recipe_sha256": "r2", "code_sha256": "c1"},
            {"arch_key": "c", "seed": 0, "recipe_sha256": "r1", "code_sha256": "c2"}]
    assert done_keys(rows, P()) == {("a", 0), ("c", 0)}
    p = P()
    p.code_sha256 = "c1"
    assert done_keys(rows, p) == {("a", 0)}


def test_zero_cost_pool_scores_on_ray_equal_local_and_only_the_driver_writes_the_cache(tmp_path, ray_session):
    torch = pytest.importorskip("torch")
    from test_zero_cost import OTHER, TINY, _task

    from bench import executors
    from bench.cache import Cache
    from bench.model import proxies as P
    from bench.model.batch import make_batch

    task = _task()
    batch = make_batch(task, "random", batch_size=4, length=6, seed=0)
    local_cache, ray_cache = Cache(tmp_path / "local.sqlite", "zc"), Cache(tmp_path / "ray.sqlite", "zc")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as on the Ray workers: float sums depend on the thread count
    try:
        local, st = P.score_many(task, [TINY, OTHER], ["snip", "synflow"], batch, progress=False, cache=local_cache)
    finally:
        torch.set_num_threads(threads)
    assert st["computed"] == 2
    with executors.using(executors.RayExecutor(None, threads=1)):
        remote, st = P.score_many(task, [TINY, OTHER], ["snip", "synflow"], batch, progress=False, cache=ray_cache)
    assert st["computed"] == 2
    for a, b in zip(local, remote):
        for n in ("snip", "synflow"):
            assert a[n]["score"] == b[n]["score"] and a[n]["tensors"] == b[n]["tensors"]
    again, st = P.score_many(task, [TINY, OTHER], ["snip"], batch, progress=False, cache=ray_cache)
    assert st["cached"] == 2 and [r["snip"]["score"] for r in again] == [r["snip"]["score"] for r in local]


def test_search_seeds_on_ray_equal_single_seed_runs(tmp_path, ray_session, monkeypatch):
    monkeypatch.chdir(ROOT)
    common = ["search", "suites/wmt14.yaml", "--task", "wmt14-en-de", "--latency-ms", "150", "--scorer", "linear",
              "--then", "gp", "--switch-at", "2", "--iterations", "3", "--population", "16", "--parents", "4",
              "--mutations", "6", "--crossovers", "6", "--no-progress", "--compare-baseline"]
    assert main([*common, "--seeds", "11,12", "--executor", "ray", "--out", str(tmp_path / "multi")]) == 0
    assert main([*common, "--seed", "12", "--out", str(tmp_path / "one")]) == 0
    for name in ("best.yml", "best.json", "population.json", "trajectory.json", "ledger.json", "comparison.json",
                 "baseline/best.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "multi" / "seed12" / name).read_bytes(), name
    assert (tmp_path / "multi" / "seed11" / "best.json").read_bytes() != (tmp_path / "one" / "best.json").read_bytes()
