"""Weight-sharing supernets as predictors: score each architecture with the weights it inherits.

``supernet[kind=hat|layer-mos|neuron-mos,checkpoint=PATH,score=metric|loss]`` extracts every architecture's
SubTransformer from a checkpoint written by ``python -m bench supernet train`` and scores it on the task's
``measure:`` data: ``score=metric`` greedy-decodes the target's split (batched, the task's decoding
settings) and computes the target's chrF/BLEU, as the paper's HAT/MoS rows do; ``score=loss`` returns minus
the dev-split per-token NLL (HAT's evolutionary-search proxy; a rank, much cheaper).  It never trains:
without ``checkpoint=`` it takes the suite's committed checkpoint
(``measurements/supernets/<suite>/<task>/<kind>/supernet.pt``) or the cached one ``supernet train`` writes
by default, and otherwise says how to train one.  Scores are cached per (checkpoint sha256, architecture,
score, split, decoding recipe, tokenizer).
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from .base import Predictor
from .registry import missing_requirements, register

SCORES = ("metric", "loss")
_MODELS: dict[str, tuple] = {}  # checkpoint sha256 -> (SuperTransformer, header): one load per process
_PREPARED: dict[tuple, object] = {}  # (suite path, task) -> bench.measure.Prepared


def _kinds():
    return ("hat", "layer-mos", "neuron-mos")


def _roots() -> list[Path]:
    from bench import data
    from bench.provenance import ROOT
    return [ROOT / "measurements" / "supernets", data.cache_dir() / "supernets"]


@register("supernet", description="weight-sharing supernet (HAT, layer-/neuron-wise MoS): inherited-weight "
                                  "chrF/BLEU (score=metric) or minus dev loss (score=loss)",
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
        self._stats = {"computed": 0, "cached": 0, "failed": 0, "compute_s": 0.0}

    @staticmethod
    def _bad_option(config: dict) -> str | None:
        if config.get("kind", "hat") not in _kinds():
            return f"kind={config['kind']!r} is not allowed; allowed values: {list(_kinds())}"
        if config.get("score", "metric") not in SCORES:
            return f"score={config['score']!r} is not allowed; allowed values: {list(SCORES)}"
        return None

    @classmethod
    def availability(cls, config: dict) -> str | None:
        why = missing_requirements(("torch",)) or cls._bad_option(config)
        if why:
            return why
        kind = config.get("kind", "hat")
        if config.get("checkpoint"):
            path = Path(str(config["checkpoint"]))
            return None if path.is_file() else f"checkpoint {path} not found"
        if any(any(root.glob(f"*/*/{kind}/supernet.pt")) for root in _roots() if root.is_dir()):
            return None  # supports() picks the task's own checkpoint or says how to train it
        return (f"no trained {kind} supernet (committed under measurements/supernets/ or cached under "
                f"{_roots()[1]}); train one with `python -m bench supernet train SUITE --task T --kind {kind}` "
                f"or pass checkpoint=PATH")

    # ---- which checkpoint, which split and metric ---------------------------------
    def _checkpoint(self, task) -> Path | None:
        from bench.supernet import find_checkpoint
        if self.config["checkpoint"]:
            return Path(str(self.config["checkpoint"]))
        return find_checkpoint(task.suite, task.name, self.config["kind"])

    def _split_metric(self, task, target: str) -> tuple[str, str] | None:
        tcfg = ((task.cfg.get("source") or {}).get("targets") or {}).get(target) or {}
        text = f"{target} {tcfg.get('column', '') if isinstance(tcfg, dict) else ''}".lower()
        metric = "chrf" if "chrf" in text else "bleu" if "bleu" in text else None
        if metric is None:
            return None
        return ("test" if "test" in text else "valid"), metric

    def supports(self, task, target):
        from bench.supernet import default_dir, read_header, train_command

        if not isinstance(task.cfg.get("measure"), dict):
            return f"task {task.name} has no measure: block (corpus, tokenizer, recipe) to score a supernet on"
        kind = self.config["kind"]
        path = self._checkpoint(task)
        if path is None:
            return (f"no {kind} supernet for task {task.name}: train one with `{train_command(task.suite, task.name, kind)}` "
                    f"(writes {default_dir(task.suite, task.name, kind)}/supernet.pt), or pass checkpoint=PATH")
        try:
            head = read_header(path)
        except (OSError, ValueError) as exc:
            return f"checkpoint {path}: {exc}"
        if head.get("kind") != kind:
            return f"checkpoint {path} holds a {head.get('kind')} supernet, not kind={kind}"
        if head.get("task") != task.name or head.get("space") != task.space.to_config():
            return f"checkpoint {path} was trained on task {head.get('task')} (another task or search space)"
        if self.config["score"] == "metric" and self._split_metric(task, target) is None:
            return f"score=metric computes chrF or BLEU; target {target} is neither (use score=loss)"
        return None

    # ---- scoring -------------------------------------------------------------------
    def _load(self, task):
        from bench.data import sha256_of
        from bench.measure import prepare
        from bench.supernet import load_supernet

        path = self._checkpoint(task)
        sha = sha256_of(path)
        if sha not in _MODELS:
            _MODELS[sha] = load_supernet(path, self.config["device"])
        key = (str(task.suite.path), task.name)
        if key not in _PREPARED:
            _PREPARED[key] = prepare(task)
        model, head = _MODELS[sha]
        prep = _PREPARED[key]
        if head["tokenizer_sha256"] != prep.vocab.sha256:
            raise ValueError(f"checkpoint {path} was trained with another tokenizer than the task's now")
        self._info = {"checkpoint": str(path), "checkpoint_sha256": sha, "kind": head["kind"],
                      "sampling": head["sampling"], "trained_steps": head["steps"], "stopped": head["stopped"],
                      "train_seconds": head["train_seconds"], "code_sha256": head["code_sha256"]}
        return model, head, prep, sha

    def predict(self, archs):
        import torch

        from bench.cache import Cache, make_key
        from bench.mt.train import dev_loss, translate_and_score

        task = self.ctx.task
        model, head, prep, sha = self._load(task)
        score = self.config["score"]
        split, metric = ("valid", None) if score == "loss" else self._split_metric(task, self.ctx.target)
        self._info.update(score=score, split=split, metric=metric)
        cache = Cache(namespace="supernet")
        ident = [self.version, sha, score, split, prep.recipe.sha256, prep.vocab.sha256, prep.data_sha256]
        keys = [make_key("supernet", *ident, a.key()) for a in archs]
        found = cache.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        self._stats["cached"] += len(archs) - len(todo)
        it = todo
        if self.config["progress"] and todo:
            from tqdm import tqdm
            it = tqdm(todo, desc=f"supernet {head['kind']} {score}", unit="arch", file=sys.stderr, leave=False)
        device = self.config["device"]
        for i in it:
            t0 = time.perf_counter()
            try:
                sub = model.extract(archs[i])
                if score == "loss":
                    value = {"loss": dev_loss(sub, prep.dev_pairs, prep.recipe, torch, device)}
                else:
                    res = translate_and_score(sub, prep.vocab, prep.corpus.splits[split], prep.recipe, device)
                    value = {"chrf": res["chrf"], "bleu": res["bleu"], "sample": res["hyps"][:2]}
            except Exception as exc:  # noqa: BLE001 - an architecture the supernet cannot serve is a nan
                value = {"error": f"{type(exc).__name__}: {exc}"}
                self._stats["failed"] += 1
            value["seconds"] = time.perf_counter() - t0
            self._stats["compute_s"] += value["seconds"]
            self._stats["computed"] += 1
            cache.put(keys[i], value)
            found[keys[i]] = value
        out = []
        for k in keys:
            v = found[k]
            if "error" in v:
                out.append(math.nan)
            else:
                out.append(-v["loss"] if score == "loss" else v[metric])
        return np.array(out, dtype=float)

    def cost(self):
        return dict(self._stats)

    def details(self):
        return dict(getattr(self, "_info", {}))
