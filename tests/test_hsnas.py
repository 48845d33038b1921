"""bench hsnas: the whole pipeline on a tiny suite and supernet, a rerun that reuses every stage, honest charging."""
import json

import pytest
from test_measure import make_suite as make_measure_suite

from bench.cli import main
from bench.measure import read_records

TINY = ["--seeds", "0,1,2", "--parents", "2", "--mutations", "2", "--crossovers", "2", "--iterations", "4",
        "--pool", "50", "--distill-steps", "50", "--flops-sample", "200", "--candidates", "linear,params",
        "--no-progress"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """test_measure's tiny Bribri suite with 6 measured architectures (12 steps each) and a 20-step HAT supernet."""
    d = tmp_path_factory.mktemp("hsnas")
    suite = make_measure_suite(d, heads="[2]", steps=12)
    assert main(["measure", str(suite), "--task", "t", "--n", "6", "--no-progress"]) == 0
    assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "hat", "--steps", "20",
                 "--out", str(d / "sn"), "--no-progress"]) == 0
    return d, suite, d / "sn" / "supernet.pt"


def _run(suite, ck, out, *extra):
    return main(["hsnas", str(suite), "--task", "t", "--out", str(out), "--checkpoint", str(ck), *TINY, *extra])


def test_end_to_end_then_a_rerun_reuses_every_stage(tiny, capsys):
    d, suite, ck = tiny
    out = d / "hs"
    assert _run(suite, ck, out) == 0
    err = capsys.readouterr().err
    assert "stages this run:" in err and "=cached" not in err.split("stages this run:")[1]
    s = json.loads((out / "summary.json").read_text())
    runs = {(r["mode"], r["seed"]): r for r in s["runs"]}
    assert sorted(runs) == sorted((m, k) for m in ("hybrid", "supernet-only", "random") for k in (0, 1, 2))
    limit = s["constraint"]["gflops_limit"]
    assert 0.3 <= s["constraint"]["sample_rejected_share"] <= 0.7  # the median binds
    for r in runs.values():
        assert r["gflops"] <= limit and r["expensive_evaluations"] > 0 and r["search_seconds"] > 0
        assert r["measured_valid_chrf"] is not None and r["measured_test_chrf"] is not None
        assert r["record"]["file"] == "records.jsonl" and r["record"]["seed"] == 0
        assert r["expensive_evaluations_imputed"] == 0
        assert r["rejected"]["constraint"]["rejected"] > 0  # the constraint rejected candidates in every run
    for k in (0, 1, 2):  # random scores as many architectures as hybrid asked the supernet for
        assert runs[("random", k)]["expensive_evaluations"] == runs[("hybrid", k)]["expensive_evaluations"]
        assert runs[("hybrid", k)]["hat_style_evaluations"] == 6 * 2  # switch at 2 of 4 iterations
        assert runs[("supernet-only", k)]["hat_style_evaluations"] == 6 * 4
    assert s["teacher"]["teacher"] in ("linear", "params") and len(s["teacher"]["leaderboard"]) == 2
    assert s["distill"]["spec"] == f"distill[teacher={s['teacher']['teacher']},pool=50,steps=50]"
    best = s["best"]
    assert best["n_seeds"] == 3 and set(best["seeds"]) == {"0", "1", "2"}
    recs = read_records(out / "records.jsonl")
    found = {json.dumps(r["arch"], sort_keys=True) for r in s["runs"]}
    assert len(recs) == len(found) + 2  # each found architecture once (deduplicated), the best twice more
    assert s["ledger"]["training_cost"]["records"] == len(recs)
    assert s["comparison"]["seeds"] == [0, 1, 2] and s["comparison"]["time_ratio"] > 0
    assert s["provenance"]["git_commit"] and s["provenance"]["suite_sha256"] and "hsnas" in s["provenance"]["command"]
    report = (out / "report.md").read_text()
    for part in ("## Results per mode", "## Hybrid vs supernet-only", "## Ledger", "pareto.png", "## Reproduce",
                 "scaled down proportionally", "score=loss"):
        assert part in report
    assert (out / "pareto.png").stat().st_size > 1000
    assert set(s["diagnostics"]["kendall"]) == {"supernet (−dev loss)", f"student {s['distill']['spec']}"}
    held_out = s["teacher"]["records"]["rows"] - s["teacher"]["records"]["train_size"]  # never the teacher's split
    assert 0 < held_out < 6 and s["diagnostics"]["n"] == held_out and "## Do the scorers rank" in report

    # the same command again: every stage is read back, nothing is searched or trained
    stamps = {p: p.stat().st_mtime_ns for p in [*out.glob("stages/*.json"), *out.glob("runs/*.json"),
                                                 out / "records.jsonl", out / "expensive-seconds.json",
                                                 out / "teacher-records.jsonl"]}
    assert _run(suite, ck, out) == 0
    err = capsys.readouterr().err
    tail = err.split("stages this run:")[1]
    assert "=ran" not in tail and tail.count("=cached") == 3 + 9 + 1 + 2  # constraint, teacher, distill; searches; diagnostics; training
    assert "training" not in err and "search hybrid seed 0..." not in err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "summary.json").read_text())["runs"] == s["runs"]

    # another setting into the same folder is refused, naming the stage and what differs
    assert _run(suite, ck, out, "--flops-quantile", "0.3") == 2
    assert "constraint.json was computed with other settings (quantile)" in capsys.readouterr().err


def test_a_warm_score_cache_is_still_charged_uncached(tiny, capsys):
    """A second folder finds every supernet score in the cache; its runs are charged retimed computations."""
    d, suite, ck = tiny
    first = d / "hs1"
    assert _run(suite, ck, first, "--modes", "supernet-only", "--seeds", "0", "--no-train") == 0
    second = d / "hs2"
    assert _run(suite, ck, second, "--modes", "supernet-only", "--seeds", "0", "--no-train") == 0
    capsys.readouterr()
    a = json.loads((first / "runs" / "supernet-only-seed0.json").read_text())
    b = json.loads((second / "runs" / "supernet-only-seed0.json").read_text())
    assert a["arch"] == b["arch"] and a["queried"] == b["queried"]
    table = json.loads((second / "expensive-seconds.json").read_text())
    assert all(table[k] and table[k].get("retimed") for k in b["queried"])
    s = json.loads((second / "summary.json").read_text())
    assert s["runs"][0]["expensive_evaluations_imputed"] == 0 and s["runs"][0]["measured_valid_chrf"] is None


@pytest.mark.parametrize("flags, message", [
    (["--modes", "hybrid,bogus"], "--modes hybrid,bogus: ['bogus'] not allowed"),
    (["--modes", "random"], "--modes: random draws as many architectures as the hybrid run"),
    (["--seeds", "a"], "--seeds a: must be a comma list of integers"),
    (["--flops-quantile", "1.5"], "--flops-quantile 1.5: must lie strictly between 0 and 1"),
    (["--iterations", "1"], "--switch-at"),
    (["--checkpoint", "/nonexistent/supernet.pt"], "--checkpoint /nonexistent/supernet.pt: no such file"),
    (["--task", "nope"], "no task 'nope'; allowed values: ['t']"),
    (["--out", "/proc/hsnas/out"], "--out /proc/hsnas/out: not writable"),
])
def test_bad_input_is_one_error_line(tiny, capsys, flags, message):
    d, suite, ck = tiny
    argv = ["hsnas", str(suite), "--task", "t", "--out", str(d / "bad"), "--checkpoint", str(ck), *TINY, *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_charging_and_the_paired_comparison():
    from bench.hsnas import charge
    from bench.hsnas_report import paired

    table = {"a": {"wall": 2.0, "cpu": 1.0}, "b": {"wall": 4.0, "cpu": 3.0}, "c": None}
    assert charge(["a", "b"], table) == {"wall": 6.0, "cpu": 4.0, "imputed": 0}
    assert charge(["a", "c", "z"], table) == {"wall": 8.0, "cpu": 5.0, "imputed": 2}  # median 3.0 / 2.0
    p = paired([15.0, 14.0, 13.0], [14.0, 14.5, 12.0])
    assert p["differences"] == [1.0, -0.5, 1.0] and (p["wins"], p["losses"], p["ties"]) == (2, 1, 0)
    assert p["sign_p"] == 1.0 and 0.25 <= p["wilcoxon_p"] <= 1 and 0 < p["t_p"] < 1
    assert paired([15.0, None], [14.0, 13.0])["n"] == 1


def test_a_retiming_is_not_charged_twice(monkeypatch):
    """A cache hit retimed outside the cache is charged from the table, so it must not also stay in the as-run
    overhead (as-run wall minus the expensive calls' wall) that build_summary adds to it."""
    import time

    from bench.hsnas import TimedScorer
    from bench.space import Arch

    class Cached:  # a predictor whose cache serves every architecture: cost()["computed"] never moves
        higher_is_better = True

        def predict(self, archs):
            return [1.0] * len(archs)

        def cost(self):
            return {"computed": 0}

    def retime(self, a):
        time.sleep(0.2)
        return {"wall": 0.2, "cpu": 0.0, "retimed": True}

    monkeypatch.setattr(TimedScorer, "_retime", retime)
    table = {}
    ts = TimedScorer(Cached(), table, task=None)
    arch = Arch.from_dict({"encoder_embed_dim": 64, "encoder_layer_num": 1, "encoder_ffn_embed_dim": [128],
                           "encoder_self_attention_heads": [2], "decoder_embed_dim": 64, "decoder_layer_num": 1,
                           "decoder_ffn_embed_dim": [128], "decoder_self_attention_heads": [2],
                           "decoder_ende_attention_heads": [2], "decoder_arbitrary_ende_attn": [-1]})
    t0 = time.perf_counter()
    ts.predict([arch])
    as_run = time.perf_counter() - t0
    assert table[arch.key()]["retimed"]
    assert as_run - ts.calls_wall < 0.1  # the 0.2 s retiming is inside the expensive calls, not the overhead


def test_a_resumed_hybrid_search_does_not_time_the_student_fit(tiny, monkeypatch, capsys):
    """With the distill stage cached, the student is refitted in the new process; that refit is the
    distillation (shown amortised), so it must happen before the hybrid search's clock starts."""
    import bench.hsnas as hs

    d, suite, ck = tiny
    out = d / "resume"
    assert _run(suite, ck, out, "--modes", "hybrid", "--seeds", "0", "--no-train") == 0
    (out / "runs" / "hybrid-seed0.json").unlink()  # a run killed after the distill stage, resumed
    depth = {"now": 0, "at_student_fit": []}

    class Clock(hs.Clock):
        def __enter__(self):
            depth["now"] += 1
            return super().__enter__()

        def __exit__(self, *exc):
            depth["now"] -= 1
            return super().__exit__(*exc)

    fit = hs.Pipeline.fit

    def spy(self, spec, rt, target):
        if spec.startswith("distill[") and spec not in self._fitted:
            depth["at_student_fit"].append(depth["now"])
        return fit(self, spec, rt, target)

    monkeypatch.setattr(hs, "Clock", Clock)
    monkeypatch.setattr(hs.Pipeline, "fit", spy)
    assert _run(suite, ck, out, "--modes", "hybrid", "--seeds", "0", "--no-train") == 0
    capsys.readouterr()
    assert depth["at_student_fit"] == [0]  # fitted once, outside every clock (the distill stage was cached)


def test_the_report_says_which_found_architectures_clear_the_floors(tiny, capsys):
    """bzd-es's copied-source floor (b) lies above the shuffled-reference floor (a); a found architecture between
    them clears (a) but not every floor, and the report must say so, not only list the numbers."""
    from bench.hsnas_report import floor_verdict

    fl = {"shuffled": 13.38, "copy": 14.81, "constant": 4.31}
    runs = [{"mode": "hybrid", "seed": 0, "v": 15.1}, {"mode": "supernet-only", "seed": 0, "v": 14.0},
            {"mode": "random", "seed": 0, "v": 11.5}, {"mode": "random", "seed": 1, "v": None}]
    assert floor_verdict(fl, runs, "v") == ("above floor (a) (13.38): 2 of 3 runs (not: random/0); above the "
                                            "highest floor (copy 14.81): 1 of 3 (not: supernet-only/0, random/0)")
    assert floor_verdict({"shuffled": 20.0, "copy": 13.0}, runs, "v") == \
        "above floor (a) (20.00): 0 of 3 runs (not: hybrid/0, supernet-only/0, random/0)"
    assert floor_verdict({}, runs, "v") == ""

    # and report.md carries it under Floors (the tiny suite has no floors file: one is set in its summary)
    from bench.hsnas_report import markdown

    d, suite, ck = tiny
    assert _run(suite, ck, d / "hs") == 0  # the first test's folder: every stage cached
    capsys.readouterr()
    s = json.loads((d / "hs" / "summary.json").read_text())
    s["floors"] = {"file": "t.floors.json", "valid": {"shuffled": -1.0, "copy": 1000.0, "constant": 0.0},
                   "test": {"shuffled": -1.0, "copy": -2.0, "constant": -3.0}}
    text = markdown(s, False)
    assert "- Measured valid chrF above floor (a) (-1.00): 9 of 9 runs; above the highest floor (copy 1000.00): " \
           "0 of 9 (not: " in text
    assert "- Measured test chrF above floor (a) (-1.00): 9 of 9 runs." in text


def test_the_teacher_snapshot_holds_every_file_a_list_source_reads(tmp_path):
    """source.file as a list read as a seed mean: the snapshot task must read the same means, not the first file's
    seed-0 values alone."""
    from test_data_suite import SPACE, _arch, _suite

    from bench.hsnas import Pipeline
    from bench.suite import load_suite

    for name, seed, add in (("r.jsonl", 0, 0.0), ("r.noise.jsonl", 1, 4.0)):
        (tmp_path / name).write_text("".join(json.dumps({"arch": _arch(n), "seed": seed, "bleu": 20.0 + n + add}) + "\n"
                                             for n in (1, 2)))
    body = ("name: mine\ntasks:\n  - name: a\n    vocab_size: 1000\n    source: {kind: records, file: [{path: r.jsonl}, "
            "{path: r.noise.jsonl}], targets: {bleu: {unit: BLEU}}, train_size: 1, duplicates: mean}" + SPACE)
    pipe = Pipeline.__new__(Pipeline)  # only what the snapshot needs: no measure block, no training
    pipe.suite = load_suite(_suite(tmp_path, body))
    pipe.task, pipe.out = pipe.suite.tasks[0], tmp_path / "hs"
    pipe.out.mkdir()
    pairs = pipe.snapshots()
    assert [sn.name for _, sn in pairs] == ["teacher-records.jsonl", "teacher-records.1.jsonl"]
    for orig, sn in pairs:
        sn.write_bytes(orig.read_bytes())
    want = [r.targets["bleu"] for r in pipe.task.records]
    (tmp_path / "r.noise.jsonl").write_text("")  # the originals move on; the snapshot does not
    rt = pipe.records_task()
    assert want == [23.0, 24.0] and [r.targets["bleu"] for r in rt.records] == want
    pipe.task.cfg["measure"] = {"records": "r.jsonl"}  # bench measure fills the list's first file (americasnlp)
    assert [sn.name for _, sn in pipe.snapshots()] == ["teacher-records.jsonl", "teacher-records.1.jsonl"]
    pipe.task.cfg["measure"] = {"records": "new.jsonl"}  # a set re-measured while the suite reads the old one
    assert [sn.name for _, sn in pipe.snapshots()] == ["teacher-records.jsonl"]
