"""Weight-sharing supernets as predictors: score each architecture with the weights it inherits.

``supernet[kind=hat|layer-mos|neuron-mos,checkpoint=PATH,score=metric|loss]`` extracts every architecture's
SubTransformer from a checkpoint written by ``python -m bench supernet train`` and scores it on the task's
``measure:`` data: ``score=metric`` greedy-decodes the target's split (batched, the task's decoding
settings) and computes the target's chrF/BLEU, as the paper's HAT/MoS rows do; ``score=loss`` returns minus
the dev-split per-token NLL (HAT's evolutionary-search proxy; a rank, much cheaper).  It never trains.

Without ``checkpoint=`` it takes the suite's committed checkpoint
(``measurements/supernets/<suite>/<task>/<kind>/supernet.pt``) or the cached one ``supernet train`` writes by
default.  Scores come from one place in this order: the committed scores file ``supernet score`` writes beside
it (``scores.json``; only a file of this checkpoint's sha256, or, with no checkpoint here, the file alone:
the scores are replayed, and ``details()`` says so), then the score cache, then the checkpoint.  An
architecture none of them has is a nan (coverage < 100%), with the command that scores it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.supernet_score import shown

from .base import Predictor
from .registry import missing_requirements, register

SCORES = ("metric", "loss")


def _kinds():
    return ("hat", "layer-mos", "neuron-mos")


@register("supernet", description="weight-sharing supernet (HAT, layer-/neuron-wise MoS): inherited-weight "
                                  "chrF/BLEU (score=metric) or minus dev loss (score=loss); replays committed "
                                  "scores (`bench supernet score`) where the checkpoint is absent",
          requires=("torch",), family="supernet")
class Supernet(Predictor):
    learns = False
    higher_is_better = True
    version = "1"

    @classmethod
    def default_config(cls) -> dict:
        return {"kind": "hat", "checkpoint": None, "score": "metric", "device": "cpu", "progress": True}

    def __init__(self, ctx, **config):
        super().__init__(ctx, **config)
        why = self._bad_option(self.config)
        if why:
            raise ValueError(f"predictor 'supernet': {why}")
        self.on_target_scale = self.config["score"] == "metric"  # minus a loss only ranks
        self._stats = {"computed": 0, "cached": 0, "replayed": 0, "missing": 0, "failed": 0, "compute_s": 0.0}
        self._info: dict = {}
        self._asked: set[str] = set()  # arch keys over every predict() call (bench run asks test, then train)
        self._absent: set[str] = set()  # those the scores file lacked, with no checkpoint here

    @staticmethod
    def _bad_option(config: dict) -> str | None:
        if config.get("kind", "hat") not in _kinds():
            return f"kind={config['kind']!r} is not allowed; allowed values: {list(_kinds())}"
        if config.get("score", "metric") not in SCORES:
            return f"score={config['score']!r} is not allowed; allowed values: {list(SCORES)}"
        return None

    @classmethod
    def availability(cls, config: dict) -> str | None:
        """Only what holds for every task; whether a task has a checkpoint or scores is ``supports()``'s."""
        why = missing_requirements(("torch",)) or cls._bad_option(config)
        if why:
            return why
        if config.get("checkpoint") and not Path(str(config["checkpoint"])).is_file():
            return f"checkpoint {config['checkpoint']} not found"
        return None

    # ---- where the scores come from ------------------------------------------------
    def _checkpoint(self, task) -> Path | None:
        from bench.supernet import find_checkpoint
        if self.config["checkpoint"]:
            return Path(str(self.config["checkpoint"]))
        return find_checkpoint(task.suite, task.name, self.config["kind"])

    def _scores_file(self, task) -> tuple[Path, dict | None, str | None]:
        """(path, its contents or None, why it cannot be replayed for this task or None)."""
        from bench.suite import SuiteError
        from bench.supernet_score import read_scores, scores_path, stale

        path = scores_path(task.suite, task.name, self.config["kind"])
        if not path.is_file():
            return path, None, "absent"
        try:
            doc = read_scores(path)
        except SuiteError as exc:
            return path, None, str(exc)
        return path, doc, stale(doc, task, self.config["kind"])

    def supports(self, task, target):
        from bench.supernet import read_header, train_command
        from bench.supernet_score import lookup, split_metric

        if not isinstance(task.cfg.get("measure"), dict):
            return f"task {task.name} has no measure: block (corpus, tokenizer, recipe) to score a supernet on"
        kind, score = self.config["kind"], self.config["score"]
        if score == "metric" and split_metric(task, target) is None:
            return f"score=metric computes chrF or BLEU; target {target} is neither (use score=loss)"
        path = self._checkpoint(task)
        if path is not None:
            try:
                head = read_header(path)
            except (OSError, ValueError) as exc:
                return f"checkpoint {path}: {exc}"
            if head.get("kind") != kind:
                return f"checkpoint {path} holds a {head.get('kind')} supernet, not kind={kind}"
            if head.get("task") != task.name or head.get("space") != task.space.to_config():
                return f"checkpoint {path} was trained on task {head.get('task')} (another task or search space)"
            return None
        score_cmd = f"python -m bench supernet score {task.suite.path} --task {task.name} --kind {kind}"
        spath, doc, why = self._scores_file(task)
        if doc is not None and why is None:
            split = "valid" if score == "loss" else split_metric(task, target)[0]
            have = lookup(doc, [r.arch for r in task.records], score, split)
            if any(v is not None for v in have):
                return None  # those it lacks are nan, with the command that scores them (details()["missing"])
            why = (f"it has no {score}/{split} score of any of the task's {len(have)} architectures (scored "
                   f"{', '.join(doc['scoring']['scores']) or 'nothing'})")
        if why == "absent":
            return (f"cannot run here: no {kind} supernet and no scores file for task {task.name}: train one with "
                    f"`{train_command(task.suite, task.name, kind)}`, then `{score_cmd}` (commit its {spath.name}), "
                    f"or pass checkpoint=PATH")
        return f"cannot replay {shown(spath)}: {why}; rescore with `{score_cmd} --checkpoint PATH`"

    # ---- scoring: the file, then the cache, then the checkpoint ---------------------
    def predict(self, archs):
        from bench import data
        from bench.supernet_score import Scorer, lookup, split_metric, stale, value_of

        task, kind, score = self.ctx.task, self.config["kind"], self.config["score"]
        split, metric = ("valid", None) if score == "loss" else split_metric(task, self.ctx.target)
        path = self._checkpoint(task)
        scorer = Scorer(path, task, self.config["device"]) if path is not None else None
        spath, doc, why = self._scores_file(task)
        if doc is not None and why is None and scorer is not None:
            why = stale(doc, task, kind, scorer.sha)
        info = {"score": score, "split": split, "metric": metric, "kind": kind}
        if scorer is not None:
            h = scorer.head
            info.update(checkpoint=str(path), checkpoint_sha256=scorer.sha, sampling=h["sampling"],
                        trained_steps=h["steps"], stopped=h["stopped"], train_seconds=h["train_seconds"],
                        code_sha256=h["code_sha256"])
        values = [None] * len(archs)
        if doc is not None and why is None:
            data.resolve({"path": shown(spath)})  # its sha256 goes into the run's provenance
            values = lookup(doc, archs, score, split)
            c = doc["checkpoint"]
            self._stats["replayed"] += sum(v is not None for v in values)
            info.update(scores_file=shown(spath), checkpoint_sha256=c["sha256"], sampling=c["sampling"],
                        trained_steps=c["steps"], stopped=c["stopped"], train_seconds=c["train_seconds"],
                        code_sha256=c["code_sha256"], scored_by=doc["command"])
            if scorer is None:
                from bench.supernet_score import code_sha256
                info["note"] = (f"scores replayed from {shown(spath)} (`bench supernet score`), checkpoint sha256 "
                                f"{c['sha256'][:12]}…, {c['steps']} steps; the checkpoint itself is not here")
                then = (doc.get("scoring") or {}).get("code_sha256")
                if then != code_sha256():  # replayed, not refused: the file is still what that code measured
                    info["note"] += (f"; scored by other scoring code (code sha256 {str(then)[:12]}…, this checkout "
                                     f"{code_sha256()[:12]}…): rescore to be sure")
        todo = [i for i, v in enumerate(values) if v is None]
        if todo and scorer is not None:
            got = scorer.values([archs[i] for i in todo], score, split, progress=self.config["progress"])
            self._stats["cached"] += scorer.cached
            self._stats["computed"] += len(todo) - scorer.cached
            self._stats["compute_s"] += scorer.compute_s
            for i, v in zip(todo, got):
                values[i] = v
        elif todo:
            self._stats["missing"] += len(todo)
            self._absent.update(archs[i].key() for i in todo)
        self._asked.update(a.key() for a in archs)
        if self._absent:  # over every call: a later call that misses nothing must not drop the note
            info["missing"] = (f"{len(self._absent)} of {len(self._asked)} architectures are not in {shown(spath)}: "
                               f"score them with `python -m bench supernet score {task.suite.path} --task {task.name} "
                               f"--kind {kind} --checkpoint PATH`")
        self._stats["failed"] += sum(v is not None and "error" in v for v in values)
        self._info = info
        return np.array([value_of(v, score, metric) for v in values], dtype=float)

    def _load(self, task):
        """(SuperTransformer, header, prepared task data, checkpoint sha256): what a caller timing one score
        (``bench hsnas``) loads up front, so the load is no architecture's cost."""
        from bench.supernet_score import Scorer
        path = self._checkpoint(task)
        if path is None:
            raise FileNotFoundError(f"no {self.config['kind']} supernet checkpoint for task {task.name}")
        sc = Scorer(path, task, self.config["device"])
        return sc.model, sc.head, sc.prep, sc.sha

    def cost(self):
        return dict(self._stats)

    def details(self):
        return dict(self._info)
