"""`bench supernet score`: one run writes every score of a task's architectures to a file the predictor replays
where the checkpoint is absent (the MoS checkpoints are over the 5 MB a committed file may weigh)."""
import json
import math
from pathlib import Path

import pytest
from test_measure import make_suite as make_measure_suite

from bench.cli import main
from bench.data import sha256_of
from bench.space import Arch
from bench.suite import load_suite
from bench.supernet_score import FILE, read_scores, scores_path

SCORED = {"loss/valid", "metric/valid", "metric/test"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny measured suite (5 architectures), in its own folder so its measurements/ is private, and a
    20-step HAT supernet trained on it outside that folder (no committed checkpoint)."""
    root = tmp_path_factory.mktemp("score")
    (root / "suites").mkdir()
    suite = make_measure_suite(root / "suites", heads="[2]", steps=3)
    assert main(["measure", str(suite), "--task", "t", "--n", "5", "--no-progress"]) == 0
    ck = root / "ck"
    assert main(["supernet", "train", str(suite), "--task", "t", "--kind", "hat", "--steps", "20", "--out", str(ck),
                 "--no-progress"]) == 0
    return suite, ck / "supernet.pt"


def _predictions(out: Path) -> dict:
    res = json.loads((out / "results.json").read_text())
    return {(r["target"], "loss" if "score=loss" in r["predictor"] else "metric", r["seed"]): r
            for r in res["runs"] if "predictions" in r}


def test_score_writes_both_scores_and_the_predictor_replays_them(trained, tmp_path, monkeypatch, capsys):
    suite, ck = trained
    specs = f"supernet[kind=hat,checkpoint={ck}],supernet[kind=hat,checkpoint={ck},score=loss]"
    live = tmp_path / "live"
    # the live path first, with its own cache: every score computed from the checkpoint
    assert main(["run", str(suite), "--predictors", specs, "--targets", "all", "--out", str(live),
                 "--no-progress"]) == 0
    capsys.readouterr()

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "fresh-cache"))  # scored again, not copied from a cache
    assert main(["supernet", "score", str(suite), "--task", "t", "--kind", "hat", "--checkpoint", str(ck),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    path = scores_path(load_suite(suite), "t", "hat")
    assert path == suite.parent.parent / "measurements" / "supernets" / "tiny" / "t" / "hat" / FILE
    assert f"{path}: 5 architectures of t scored by hat supernet" in out and "15 scores computed now" in out
    doc = read_scores(path)
    assert doc["suite"] == "tiny" and doc["task"] == "t" and doc["kind"] == "hat"
    assert doc["command"].startswith("python -m bench supernet score ")
    c = doc["checkpoint"]
    assert c["sha256"] == sha256_of(ck) and c["steps"] == 20 and c["sampling"] == "sandwich"
    assert c["command"].startswith("python -m bench ") and c["train_seconds"] > 0  # (train records sys.argv)
    assert c["stopped"] and math.isfinite(c["best_dev_loss_largest"]) and len(c["recipe_sha256"]) == 64
    assert sorted(doc["scoring"]["scores"]) == sorted(SCORED) and len(doc["records"]) == 1
    assert len(doc["archs"]) == 5
    for e in doc["archs"]:
        assert set(e["scores"]) == SCORED and Arch.from_dict(e["arch"]).key() == e["arch_key"]
        for v in e["scores"].values():
            assert "error" not in v and v["seconds"] > 0 and v["cpu_seconds"] > 0
        assert 0 <= e["scores"]["metric/test"]["chrf"] <= 100 and e["scores"]["loss/valid"]["loss"] > 0

    # no checkpoint here (it is not committed nor cached): the file is replayed, giving the live predictions
    replay = tmp_path / "replay"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "empty-cache"))
    assert main(["run", str(suite), "--predictors", "supernet[kind=hat],supernet[kind=hat,score=loss]",
                 "--targets", "all", "--out", str(replay), "--no-progress"]) == 0
    a, b = _predictions(live), _predictions(replay)
    assert a.keys() == b.keys() and len(a) == 8  # (chrf, bleu) x (metric, loss) x 2 seeds
    for k in a:
        assert a[k]["predictions"] == b[k]["predictions"] and a[k]["test_ids"] == b[k]["test_ids"], k
        assert b[k]["coverage"] == 1.0 and b[k]["cost"]["replayed"] > 0 and b[k]["cost"]["computed"] == 0
        d = b[k]["details"]
        assert d["scores_file"] == str(path) and d["checkpoint_sha256"] == sha256_of(ck)
        assert d["note"].startswith(f"scores replayed from {path} (`bench supernet score`), checkpoint sha256 ")
    assert f"Row note, `supernet[kind=hat]`: scores replayed from {path}" in (replay / "leaderboard.md").read_text()
    res = json.loads((replay / "results.json").read_text())
    assert str(path) in res["provenance"]["data_sha256"]

    assert "other scoring code" not in (replay / "leaderboard.md").read_text()
    # a file scored by other scoring code is still replayed, and the row says so
    other = json.loads(path.read_text())
    other["scoring"]["code_sha256"] = "0" * 64
    path.write_text(json.dumps(other))
    assert main(["run", str(suite), "--predictors", "supernet[kind=hat]", "--out", str(tmp_path / "other"),
                 "--no-progress"]) == 0
    assert "scored by other scoring code (code sha256 000000000000…" in (tmp_path / "other" / "leaderboard.md").read_text()
    path.write_text(json.dumps(doc))

    # rerun: resumed from the file, nothing computed; an entry of an earlier run is kept, not recomputed
    doc["archs"][0]["scores"]["loss/valid"]["loss"] = 123.0
    path.write_text(json.dumps(doc))
    assert main(["supernet", "score", str(suite), "--task", "t", "--kind", "hat", "--checkpoint", str(ck),
                 "--no-progress"]) == 0
    assert "0 scores computed now" in capsys.readouterr().out
    assert read_scores(path)["archs"][0]["scores"]["loss/valid"]["loss"] == 123.0


def test_architectures_missing_from_the_file_are_nan_with_the_command_that_scores_them(trained, tmp_path,
                                                                                      monkeypatch, capsys):
    from predictors import registry
    from predictors.base import Context

    suite, ck = trained
    path = scores_path(load_suite(suite), "t", "hat")
    if not path.exists():
        assert main(["supernet", "score", str(suite), "--task", "t", "--kind", "hat", "--checkpoint", str(ck),
                     "--score", "loss", "--no-progress"]) == 0
    doc = read_scores(path)
    gone = Arch.from_dict(doc["archs"].pop(0)["arch"])
    kept = Arch.from_dict(doc["archs"][0]["arch"])
    backup = path.read_text()
    path.write_text(json.dumps(doc))
    try:
        task = load_suite(suite).task("t")
        pred = registry.create("supernet[kind=hat,score=loss]", Context(task=task, target="chrf", seed=0))
        assert pred.supports(task, "chrf") is None
        p = pred.predict([gone, kept])
        assert math.isnan(p[0]) and p[1] == -doc["archs"][0]["scores"]["loss/valid"]["loss"]
        assert pred.details()["missing"] == (f"1 of 2 architectures are not in {path}: score them with `python -m "
                                             f"bench supernet score {suite} --task t --kind hat --checkpoint PATH`")
        assert pred.cost()["missing"] == 1 and pred.cost()["replayed"] == 1
        pred.predict([kept])  # bench run asks the train architectures after the test ones (score=loss ranks)
        assert pred.details()["missing"].startswith(f"1 of 2 architectures are not in {path}: ")  # not dropped
        with pytest.raises(FileNotFoundError, match="no hat supernet checkpoint for task t"):
            pred._load(task)  # bench hsnas loads the checkpoint up front; the scores file is no checkpoint
        live = registry.create(f"supernet[kind=hat,score=loss,checkpoint={ck}]", Context(task=task, target="chrf",
                                                                                          seed=0))
        model, head, prep, sha = live._load(task)
        assert sha == sha256_of(ck) and head["kind"] == "hat" and prep.task_name == "t" and model.kind == "hat"
        # a file without any score of the kind asked (`--score loss`) is not replayed for it: no 0%-coverage row
        metric = registry.create("supernet[kind=hat]", Context(task=task, target="chrf", seed=0))
        for e in doc["archs"]:
            e["scores"].pop("metric/valid", None)
        path.write_text(json.dumps(doc))
        assert "it has no metric/valid score of any of the task's 5 architectures (scored " in \
            metric.supports(task, "chrf")
        # a file of another task's measure recipe is not replayed: supports() says why and how to fix it
        doc["measure_sha256"] = "0" * 64
        path.write_text(json.dumps(doc))
        why = pred.supports(task, "chrf")
        assert why.startswith(f"cannot replay {path}: the task's measure: block (corpus, tokenizer or recipe) "
                              "changed since it was scored; rescore with `python -m bench supernet score ")
        path.write_text("{not json")
        assert "not a readable supernet scores file" in pred.supports(task, "chrf")
    finally:
        path.write_text(backup)


def test_bad_flags_are_one_error_line(trained, capsys):
    suite, ck = trained
    cases = [
        (["--kind", "mos"], "error: --kind: 'mos' is not allowed; allowed values: ['hat', 'layer-mos', 'neuron-mos']"),
        (["--score", "bleu"], "error: --score: 'bleu' is not allowed; allowed values: metric, loss or metric,loss"),
        (["--checkpoint", "/nope.pt"], "error: --checkpoint: /nope.pt not found"),
        (["--kind", "neuron-mos"], "error: --checkpoint: no neuron-mos supernet for task t; train one with "
                                   f"`python -m bench supernet train {suite} --task t --kind neuron-mos` or pass "
                                   "--checkpoint PATH"),
        (["--kind", "layer-mos", "--checkpoint", str(ck)], f"error: --checkpoint: {ck} holds a hat supernet, not "
                                                           "--kind layer-mos"),
        (["--threads", "0"], "error: --threads: must be >= 1, got 0"),
    ]
    for flags, want in cases:
        assert main(["supernet", "score", str(suite), "--task", "t", "--no-progress", *flags]) == 2, flags
        err = capsys.readouterr().err.strip()
        assert err == want and "\n" not in err
    assert main(["supernet", "score", str(suite), "--task", "nope"]) == 2
    assert "no task 'nope'" in capsys.readouterr().err


def test_americasnlp_runs_with_or_without_supernet_files(root, tmp_path, capsys):
    """The suite lists the three supernet rows; a task without a checkpoint or scores file skips them with the
    commands that make one, and the run still succeeds."""
    suite = root / "suites" / "americasnlp.yaml"
    listed = load_suite(suite).predictors
    for kind in ("hat", "layer-mos", "neuron-mos"):
        assert f"supernet[kind={kind}]" in listed
    out = tmp_path / "r"
    assert main(["run", str(suite), "--predictors", "mean,supernet[kind=neuron-mos]", "--tasks", "czn-es",
                 "--targets", "valid_bleu",
                 "--out", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())
    ran = {r["task"] for r in res["runs"] if "supernet" in r["predictor"] and "predictions" in r}
    skipped = {s["task"]: s["reason"] for s in res["skipped"] if "supernet" in s["predictor"]}
    assert ran | set(skipped) == {"czn-es"}
    for reason in skipped.values():
        assert "python -m bench supernet train" in reason and "python -m bench supernet score" in reason
    text = (out / "leaderboard.md").read_text()
    assert "Reference rows — **reported, not measured**" in text and "Neuron-wise MoS (reported)" in text
