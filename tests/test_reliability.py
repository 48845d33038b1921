"""A run a user can trust (issue 10): loud failures, protected reports, validated input, one-line errors.

Every bad-input case: exit code, no traceback, the message names the file or flag, nothing earlier overwritten."""
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
WMT14 = str(ROOT / "suites" / "wmt14.yaml")
SPACE = """
    search_space:
      encoder_embed_dim: [512]
      decoder_embed_dim: [512, 640]
      encoder_ffn_embed_dim: [1024]
      decoder_ffn_embed_dim: [1024, 2048]
      encoder_layer_num: [1]
      decoder_layer_num: [1, 2]
      encoder_self_attention_heads: [4]
      decoder_self_attention_heads: [4]
      decoder_ende_attention_heads: [4]
      decoder_arbitrary_ende_attn: [-1]
"""


def _archs():
    out = []
    for d in (512, 640):
        for ffn in (1024, 2048):
            for nd in (1, 2):
                out.append({"encoder_embed_dim": 512, "encoder_layer_num": 1, "encoder_ffn_embed_dim": [1024],
                            "encoder_self_attention_heads": [4], "decoder_embed_dim": d, "decoder_layer_num": nd,
                            "decoder_ffn_embed_dim": [ffn] * nd, "decoder_self_attention_heads": [4] * nd,
                            "decoder_ende_attention_heads": [4] * nd, "decoder_arbitrary_ende_attn": [-1] * nd})
    return out


def records_suite(tmp_path, rows=None, source_extra="", top=""):
    """A records suite over 8 distinct architectures; ``rows`` (JSONL lines) replace the default file."""
    if rows is None:
        rows = [json.dumps({"arch": a, "bleu": 20 + i * 0.7 + (i % 3)}) for i, a in enumerate(_archs())]
    (tmp_path / "m.jsonl").write_text("\n".join(rows) + "\n")
    p = tmp_path / "mine.yaml"
    p.write_text(f"name: mine\n{top or 'predictors: [mean, params, linear]'}\ntasks:\n  - name: a\n"
                 f"    vocab_size: 1000\n    source: {{kind: records, file: {{path: m.jsonl}}, "
                 f"targets: {{bleu: {{unit: BLEU}}}}, train_size: 3, seeds: [0, 1]{source_extra}}}" + SPACE)
    return p


def bench(capsys, *argv):
    """Run the CLI in-process; an uncaught exception (a traceback) fails the test by itself."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err + out
    return rc, out, err


def one_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert lines, err
    return lines[0]


# ------------------------------------------------------------------ specs
SPECS = [("gp[", "unbalanced"), ("gp]", "unbalanced"), ("gp[bogus=1]", "bogus"), ("mean[x]", "'x' is not key=value"),
         ("gp[features=nope]", "allowed values: ['fine'"), ("nosuch", "unknown predictor 'nosuch'"),
         ("distill[teacher=gp[features=nope]]", "features='nope'")]


@pytest.mark.parametrize("spec,why", SPECS)
def test_bad_spec_is_one_line_before_anything_runs(capsys, tmp_path, spec, why):
    out = tmp_path / "out"
    rc, _, err = bench(capsys, "run", WMT14, "--predictors", spec, "--out", out)
    line = one_error(err)
    assert rc == 2 and "--predictors" in line and spec in line and why in line
    assert not out.exists()  # refused before running: nothing written
    rc, _, err = bench(capsys, "validate", WMT14, "--no-data", "--predictors", spec)
    assert rc == 2 and why in one_error(err)


# ------------------------------------------------------------------ records files
BAD_ROWS = [
    (lambda rows: rows[:2] + ['{"arch": oops'] + rows[3:], "line 3: not valid JSON"),
    (lambda rows: [r.replace('"bleu"', '"score"') for r in rows], "column 'bleu'"),
    (lambda rows: [rows[0].replace('"bleu": 20', '"bleu": "twenty"').replace('"bleu": 20.0', '"bleu": "twenty"')]
     + rows[1:], "is not a number"),
    (lambda rows: rows[:4] + [rows[4].rsplit(', "bleu"', 1)[0] + ', "bleu": NaN}'] + rows[5:], "missing, NaN or infinite in 1"),
    (lambda rows: rows[:4] + [rows[4].rsplit(', "bleu"', 1)[0] + ', "bleu": null}'] + rows[5:], "missing, NaN or infinite in 1"),
    (lambda rows: rows + [rows[0]], "duplicate architecture"),
    (lambda rows: rows[:1] + [rows[1].rsplit(', "bleu"', 1)[0] + ', "bleu": 150.0}'] + rows[2:], "outside the plausible range"),
    (lambda rows: rows[:1] + [rows[1].rsplit(', "bleu"', 1)[0] + ', "bleu": -3.0}'] + rows[2:], "outside the plausible range"),
    (lambda rows: rows[:1] + [rows[1].rsplit(', "bleu"', 1)[0] + ', "bleu": 1e308}'] + rows[2:], "outside the plausible range"),
]


@pytest.mark.parametrize("mutate,why", BAD_ROWS)
def test_bad_records_file_is_one_line(capsys, tmp_path, mutate, why):
    good = [json.dumps({"arch": a, "bleu": 20 + i}) for i, a in enumerate(_archs())]
    suite = records_suite(tmp_path, mutate(good))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}')
    rc, _, err = bench(capsys, "run", suite, "--out", out, "--no-progress")
    line = one_error(err)
    assert rc == 2 and "m.jsonl" in line and why in line, line
    assert (out / "results.json").read_text() == '{"earlier": true}'
    rc, _, err = bench(capsys, "validate", suite)
    assert rc == 2 and why in one_error(err)


def test_missing_targets_dropped_on_request_with_a_note(capsys, tmp_path):
    rows = [json.dumps({"arch": a, "bleu": None if i == 2 else 20 + i}) for i, a in enumerate(_archs())]
    suite = records_suite(tmp_path, rows, ", drop_missing: true")
    rc, out, err = bench(capsys, "run", suite, "--no-write", "--no-progress")
    assert rc == 0 and "1 of 8 rows of m.jsonl have no finite `bleu`" in out


def test_duplicates_allowed_when_the_suite_opts_in(capsys, tmp_path):
    rows = [json.dumps({"arch": a, "bleu": 20 + i}) for i, a in enumerate(_archs() * 2)]
    rc, _, _ = bench(capsys, "run", records_suite(tmp_path, rows, ", duplicates: keep"), "--no-write", "--no-progress")
    assert rc == 0


# ------------------------------------------------------------------ suite values
BAD_VALUES = [
    ("train_size: 3", "train_size: 0", "source.train_size: must be a positive integer"),
    ("train_size: 3", "train_size: -2", "source.train_size: must be a positive integer"),
    ("seeds: [0, 1]", "seeds: [a, 1]", "source.seeds: must be a non-empty list of integers"),
    ("seeds: [0, 1]", "seeds: [0.5]", "source.seeds: must be a non-empty list of integers"),
    ("vocab_size: 1000", "vocab_size: big", "vocab_size: must be a positive integer"),
    ("vocab_size: 1000", "vocab_size: 1000.5", "vocab_size: must be a positive integer"),
    ("file: {path: m.jsonl}", "file: {url: 'https://example.org/m.jsonl'}", "has no sha256"),
    ("predictors: [mean, params, linear]", "predictors: mean", "predictors: must be a list"),
    ("predictors: [mean, params, linear]", "predictors: [mean, 'gp[bogus=1]']", "unknown option(s) ['bogus']"),
    ("predictors: [mean, params, linear]", "predictors: [mean]\ngate: {kendal: 0.02}", "gate.kendal: unknown metric"),
]


@pytest.mark.parametrize("old,new,why", BAD_VALUES)
def test_bad_suite_values_are_one_line(capsys, tmp_path, old, new, why):
    p = records_suite(tmp_path)
    p.write_text(p.read_text().replace(old, new))
    rc, _, err = bench(capsys, "run", p, "--no-write", "--no-progress")
    line = one_error(err)
    assert rc == 2 and "mine.yaml" in line and why in line, line
    rc, _, err = bench(capsys, "validate", p, "--no-data")
    assert rc == 2 and why in one_error(err)


# ------------------------------------------------------------------ flags
BAD_FLAGS = [
    (["--max-calls", "0"], "--max-calls: must be greater than 0"),
    (["--max-calls", "-3"], "--max-calls: must be greater than 0"),
    (["--max-dollars", "-1"], "--max-dollars: must be greater than 0"),
    (["--concurrency", "0"], "--concurrency: must be greater than 0"),
    (["--samples", "0"], "--samples: must be greater than 0"),
    (["--max-calls", "many"], "--max-calls"),
    (["--out", "/proc/no/such"], "--out /proc/no/such: not writable"),
]


@pytest.mark.parametrize("flags,why", BAD_FLAGS)
def test_bad_flags_are_one_line(capsys, tmp_path, flags, why):
    with pytest.raises(SystemExit) if flags[1] == "many" else _nothing():
        rc, _, err = bench(capsys, "run", WMT14, "--predictors", "mean", *flags)
        assert rc == 2 and why in one_error(err)
    if flags[1] == "many":
        err = capsys.readouterr().err
        assert why in one_error(err) and "Traceback" not in err


def test_n_flag_of_other_commands(capsys):
    rc, _, err = bench(capsys, "llm-bench", "--n", "-5")
    assert rc == 2 and "--n: must be greater than 0" in one_error(err)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_check_results_not_json(capsys, tmp_path):
    bad = tmp_path / "new.json"
    bad.write_text("not json {")
    rc, _, err = bench(capsys, "check", WMT14, "--results", bad)
    assert rc == 2 and f"--results {bad}: not JSON" in one_error(err)


# ------------------------------------------------------------------ exit codes
def test_requested_predictor_skipped_everywhere_fails_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("earlier")
    rc, _, err = bench(capsys, "run", WMT14, "--predictors", "llm-pp", "--out", out, "--no-progress")
    assert rc == 1 and "nothing ran" in one_error(err) and "llm-pp" in one_error(err)
    assert (out / "results.json").read_text() == "earlier"
    other = tmp_path / "other"  # one of two requested rows ran: exit 0, the skipped one is named on stderr
    rc, _, err = bench(capsys, "run", WMT14, "--predictors", "mean,llm-pp", "--out", other, "--no-progress")
    assert rc == 0 and "warning:" in err and "--predictors llm-pp: produced no result" in err


def test_zero_coverage_row_fails(capsys, tmp_path):
    from predictors.base import Predictor
    from predictors.registry import _REGISTRY, register

    @register("test-all-nan", description="test double: never predicts")
    class AllNan(Predictor):
        def predict(self, archs):
            return np.full(len(archs), np.nan)

    try:
        rc, _, err = bench(capsys, "run", records_suite(tmp_path), "--predictors", "mean,test-all-nan",
                           "--out", tmp_path / "o", "--no-progress")
        assert rc == 1 and "test-all-nan: 0% coverage" in one_error(err) and not (tmp_path / "o").exists()
    finally:
        _REGISTRY.pop("test-all-nan")


def test_suite_default_skip_is_a_note_and_the_run_goes_to_runs(capsys, tmp_path, monkeypatch):
    """The main job: default predictors (llm-pp skipped without a key) exit 0 and write a new runs/ folder, with
    `latest`, and leave the repository's tracked files untouched."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    rc, out, err = bench(capsys, "run", WMT14, "--no-progress")
    assert rc == 0 and "llm-pp" in out  # listed as skipped, with the reason
    runs = [p for p in (tmp_path / "runs" / "wmt14").iterdir() if p.name != "latest"]
    latest = tmp_path / "runs" / "wmt14" / "latest"
    assert len(runs) == 1 and latest.resolve() == runs[0].resolve() and str(runs[0].relative_to(tmp_path)) in err
    res = json.loads((latest / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert {r["predictor"] for r in res["results"]} >= {"mean", "gp", "hat"}
    rc, _, _ = bench(capsys, "run", WMT14, "--no-progress", "--predictors", "mean")
    runs2 = [p for p in (tmp_path / "runs" / "wmt14").iterdir() if p.name != "latest"]
    assert len(runs2) == 2 and (runs[0] / "results.json").exists()  # the earlier run is kept
    assert latest.resolve() != runs[0].resolve()


def test_default_run_from_the_repo_leaves_git_status_clean(capsys, monkeypatch):
    def status():
        return subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout

    if subprocess.run(["git", "rev-parse"], cwd=ROOT, capture_output=True).returncode:
        pytest.skip("not a git checkout")
    before = status()
    monkeypatch.chdir(ROOT)
    rc, _, err = bench(capsys, "run", "suites/wmt14.yaml", "--no-progress", "--predictors", "mean")
    written = Path(err.split("wrote ")[1].split(" and ")[0]).parent
    try:
        assert rc == 0 and written.parts[0] == "runs" and status() == before
    finally:
        import shutil
        shutil.rmtree(ROOT / written)


def test_results_json_is_strict(tmp_path):
    from bench import report

    text = report.dumps({"results": [{"mean": float("nan"), "std": float("inf"), "x": [1.0, float("-inf")]}]})
    obj = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert obj["results"][0] == {"mean": None, "std": None, "x": [1.0, None]}


# ------------------------------------------------------------------ check
def _baseline(tmp_path, results):
    p = tmp_path / "base.json"
    p.write_text(json.dumps({"results": results}))
    return p


def test_check_against_empty_baseline_fails(capsys, tmp_path):
    base = _baseline(tmp_path, [])
    rc, out, _ = bench(capsys, "check", WMT14, "--baseline", base, "--results", base)
    assert rc == 1 and "0 metrics" in out


def test_check_fails_when_a_metric_becomes_nan(capsys, tmp_path):
    row = {"task": "wmt14-en-de", "target": "valid_bleu", "predictor": "gp", "metric": "kendall", "mean": 0.5}
    base = _baseline(tmp_path, [row])
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"results": [dict(row, mean=None)]}))
    rc, out, _ = bench(capsys, "check", WMT14, "--baseline", base, "--results", new)
    assert rc == 1 and "FAIL (nan)" in out


def test_check_compares_a_fresh_run_with_the_committed_baseline(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    rc, out, _ = bench(capsys, "check", "suites/wmt14.yaml", "--predictors", "mean,gp")
    assert rc == 0 and "reports/wmt14/results.json" in out


# ------------------------------------------------------------------ caches, provenance, interrupts
def test_corrupt_cache_is_moved_aside_and_the_run_continues(capsys, tmp_path, monkeypatch):
    from bench.cache import Cache

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    for name in ("cache.sqlite", "llm.sqlite"):
        (tmp_path / name).write_bytes(b"this is not sqlite" * 100)
        c = Cache(tmp_path / name)
        c.put("k", 1)
        assert c.get("k") == 1
        err = capsys.readouterr().err
        assert name in err and "moved aside" in err and len(err.strip().splitlines()) == 1
        assert len(list(tmp_path.glob(f"{name}.corrupt-*"))) == 1


def test_cache_breaking_mid_run_stops_with_advice(capsys, tmp_path, monkeypatch):
    import sqlite3

    from bench.cache import Cache, CacheError

    c = Cache(tmp_path / "cache.sqlite")

    class Broken:
        def execute(self, *a):
            raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(c, "_conn", lambda: Broken())
    with pytest.raises(CacheError, match="cache.sqlite: the cache is corrupt.*move it aside"):
        c.get("k")


def test_two_runs_opening_a_fresh_cache_at_once_both_get_it(tmp_path):
    """SQLite refuses the WAL switch at once (no busy wait) while another connection holds a write lock: the loser of
    two runs starting together on a fresh cache used to stop with 'locked for over 60 s' (a CI failure)."""
    import sqlite3
    import threading

    from bench.cache import Cache

    path = tmp_path / "llm.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x)")
    other.execute("BEGIN IMMEDIATE")  # the other run, mid-way through its own setup
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    c = Cache(path, namespace="x")
    c.put("k", 1)
    assert c.get("k") == 1
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_provenance_lists_only_this_runs_files(tmp_path):
    from bench.runner import run_suite
    from bench.suite import load_suite

    run_suite(load_suite(WMT14), predictors=["mean"], progress=False)
    res = run_suite(load_suite(ROOT / "suites" / "wmt19.yaml"), predictors=["mean"], progress=False).to_json()
    files = res["provenance"]["data_sha256"]
    assert files and all("wmt19ende" in f for f in files), files
    suite = load_suite(WMT14)
    run_suite(suite, predictors=["mean"], progress=False)
    again = run_suite(suite, predictors=["mean"], progress=False).to_json()  # task data cached: still listed
    assert len(again["provenance"]["data_sha256"]) == 12


def test_records_file_is_in_the_data_fingerprint(tmp_path):
    from bench.runner import run_suite
    from bench.suite import load_suite

    res = run_suite(load_suite(records_suite(tmp_path)), predictors=["mean"], progress=False).to_json()
    files = res["provenance"]["data_sha256"]
    from bench.data import sha256_of
    assert files == {str(tmp_path / "m.jsonl"): sha256_of(tmp_path / "m.jsonl")}


def test_ctrl_c_ends_cleanly(capsys, tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("bench.runner.run_suite", interrupted)
    out = tmp_path / "o"
    rc, _, err = bench(capsys, "run", WMT14, "--predictors", "mean", "--out", out)
    assert rc == 130 and err.strip().startswith("interrupted") and len(err.strip().splitlines()) == 1
    assert not (out / "results.json").exists()


def test_error_is_printed_on_its_own_line_after_the_progress_bar(capsys, tmp_path, monkeypatch):
    from bench.cache import CacheError
    from predictors.baselines import Mean

    def broken(self, archs):
        raise CacheError("cache.sqlite: the cache is corrupt")

    monkeypatch.setattr(Mean, "predict", broken)
    rc, _, err = bench(capsys, "run", WMT14, "--predictors", "params,mean")
    assert rc == 2
    last = err.replace("\r", "\n").rstrip("\n").splitlines()[-1]
    assert last.startswith("error: cache.sqlite")


def test_tests_never_touch_the_users_cache(monkeypatch):
    from bench.data import cache_dir

    home = Path("~/.cache/bench").expanduser()
    assert cache_dir() != home
    monkeypatch.undo()  # what test_zero_cost does: the process-wide fallback is still a temporary folder
    assert cache_dir() != home and math.isfinite(1.0)


def test_console_script_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert '[project.scripts]\nbench = "bench.cli:main"' in text
    tox = (ROOT / "tox.ini").read_text()
    assert all(f"[testenv:{e}]" in tox for e in ("py", "gate", "reports", "lint")) and "python -m pytest" in tox


def test_main_job_on_a_fresh_machine_needs_no_mirror_and_no_network(tmp_path):
    """README's main job with no BENCH_DATA_DIR, an empty cache and downloads refused (BENCH_OFFLINE=1)."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "BENCH_DATA_DIR"}
    env.update(BENCH_CACHE_DIR=str(tmp_path / "cache"), BENCH_OFFLINE="1", PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "bench", "run", WMT14, "--no-progress"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert (tmp_path / "runs" / "wmt14" / "latest" / "leaderboard.md").exists()
    assert not (tmp_path / "cache" / "data").exists()  # nothing was fetched


def test_check_finds_the_committed_baseline_from_another_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, _ = bench(capsys, "check", WMT14, "--predictors", "mean")
    assert rc == 0 and str(ROOT / "reports" / "wmt14" / "results.json") in out


def test_unwritable_default_run_folder_fails_before_running(capsys, tmp_path, monkeypatch):
    (tmp_path / "runs").write_text("a file where the runs folder should be")
    monkeypatch.chdir(tmp_path)
    rc, out, err = bench(capsys, "run", WMT14, "--predictors", "mean", "--no-progress")
    assert rc == 2 and "runs/wmt14: not writable" in one_error(err) and out == ""


@pytest.mark.parametrize("arg,why", [("nonexist.yaml", "suite file not found"), ("suites", "not a file"),
                                     ("README.md", "not valid YAML at line"), ("pyproject.toml", "not valid YAML")])
def test_bad_suite_argument_is_one_line(capsys, monkeypatch, arg, why):
    monkeypatch.chdir(ROOT)
    for cmd in (["run", arg, "--no-write"], ["validate", arg], ["check", arg]):
        rc, _, err = bench(capsys, *cmd)
        assert rc == 2 and one_error(err).startswith(f"error: {arg}: {why}")


def test_every_command_runs_in_one_run_with_its_argv_and_files(tmp_path, monkeypatch):
    """The CLI makes one Run per command: its provenance has the command line and exactly the files it read,
    including those read by runs nested in it (a command that runs several suites)."""
    from bench import provenance
    from bench.invocation import Run, current
    from bench.runner import run_suite
    from bench.suite import load_suite

    assert current() is None
    assert provenance.collect()["data_sha256"] == {}  # outside a run nothing was tracked: nothing claimed
    with Run(argv=["bench", "x"]) as outer:
        run_suite(load_suite(ROOT / "suites" / "wmt19.yaml"), predictors=["mean"], progress=False)
        prov = provenance.collect()
    assert prov["argv"] == ["bench", "x"] and prov["data_sha256"] == outer.files
    assert outer.files and all("wmt19ende" in f for f in outer.files)
    out = tmp_path / "o"
    assert main(["run", str(WMT14), "--predictors", "mean", "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["provenance"]["argv"] == ["bench", "run", str(WMT14), "--predictors", "mean", "--out", str(out),
                                         "--no-progress"]
    assert current() is None  # the command's run ends with it
