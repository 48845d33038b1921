"""Zero-cost proxies as predictors: one score per architecture from a freshly initialised SubTransformer.

The computations and their encoder-decoder decisions are in ``bench.model.proxies``; the batch in
``bench.model.batch``.  Every option that changes a score is part of the spec and of the cache key:
``batch`` (bpe|random), ``batch_size``, ``length``, ``seed`` (random ids), ``init_seed``, ``tensors``
(weights|all|no-embedding), ``label_smoothing``; synflow also ``disable_layernorm`` (default true, the
reference's synflow; false is its ``synflow_bn``), fisher also ``fan_in`` (default true, the reference's
fan-in-weighted channel sum; false sums channels unweighted).  ``share``
only decides whether a cache miss computes every proxy at once (the default) or just this one.
Scores are ranks only (``on_target_scale`` False); non-finite scores stay nan and are counted.
"""
from __future__ import annotations

import math
import re

import numpy as np

from .base import Predictor
from .registry import register

PROXIES = ("grad_norm", "snip", "synflow", "grasp", "fisher", "jacov", "nwot", "l2_norm", "plain")
DESCRIPTIONS = {
    "grad_norm": "sum of per-tensor L2 norms of the label-smoothed CE gradient on a real batch",
    "snip": "connection sensitivity: sum |w * dL/dw| (Lee et al. 2019)",
    "synflow": "log synaptic flow: |w| * dR/dw, all-ones float64 input at the embedding outputs, LayerNorm removed",
    "grasp": "GraSP: sum -w * Hg (Hessian-gradient product of the loss), zero-cost-nas sign",
    "fisher": "Fisher: sum_c fan_in * 0.5 * mean_b (sum_t act * grad)^2 over output features of every linear map",
    "jacov": "Jacobian covariance of decoder states w.r.t. embedding outputs, per sentence",
    "nwot": "NASWOT: log|det K| of binarised FFN fc1 activation codes across sentences",
    "l2_norm": "sum of per-tensor L2 norms of the weights at init",
    "plain": "sum w * dL/dw (signed)",
}


class _ProxyInputs(Predictor):
    """Shared options and batch handling (no torch at import time)."""

    on_target_scale = False
    version = "1"

    @classmethod
    def default_config(cls):
        return {"batch": "bpe", "batch_size": 32, "length": 12, "seed": 0, "init_seed": 0, "tensors": "weights",
                "label_smoothing": 0.1, "share": True}

    def supports(self, task, target):
        if task.vocab_size is None:
            return f"task {task.name} has no vocab_size (the model's vocabulary)"
        if self.config["batch"] == "bpe":
            cfg = task.cfg.get("proxies") or {}
            if not isinstance(cfg, dict) or "src" not in cfg or "tgt" not in cfg:
                return (f"task {task.name} names no proxies: {{src:, tgt:}} batch files; "
                        f"use the variant batch=random")
        return None

    def _batch(self):
        if not hasattr(self, "_batch_obj"):
            from bench.model.batch import make_batch
            c = self.config
            self._batch_obj = make_batch(self.ctx.task, c["batch"], int(c["batch_size"]), int(c["length"]),
                                         int(c["seed"]))
        return self._batch_obj

    def _proxy_config(self):
        from bench.model.proxies import ProxyConfig
        c = self.config
        return ProxyConfig(tensors=c["tensors"], label_smoothing=float(c["label_smoothing"]),
                           init_seed=int(c["init_seed"]), disable_layernorm=_bool(c.get("disable_layernorm", True)),
                           fan_in=_bool(c.get("fan_in", True)))

    def _scores(self, archs, names):
        from bench.model.proxies import score_many
        rows, stats = score_many(self.ctx.task, list(archs), names, self._batch(), self._proxy_config(),
                                 share=bool(self.config["share"]))
        acc = getattr(self, "_stats", {"computed": 0, "cached": 0, "compute_s": 0.0})
        for k in acc:
            acc[k] += stats[k]
        self._stats = acc
        self._rows = getattr(self, "_rows", []) + rows
        return rows

    def cost(self):
        return dict(getattr(self, "_stats", {}))


def _bool(v) -> bool:
    """Spec options may arrive as strings (``synflow[disable_layernorm=false]``)."""
    if isinstance(v, str):
        if v.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"proxy option value {v!r} is not a boolean; allowed values: ['false', 'true']")
        return v.lower() in ("true", "1")
    return bool(v)


def _batch_words(identity) -> str | None:
    return f"{identity['batch_size']} sentences x {identity['length']} tokens" if identity else None


def _transform(name: str, score) -> float:
    """Scores are used as stored (synflow is stored as its log, see ``bench.model.proxies.synflow_log``).
    nan/inf are kept."""
    return float("nan") if score is None else float(score)


class ZeroCostProxy(_ProxyInputs):
    proxy = ""
    higher_is_better = True

    def predict(self, archs):
        rows = self._scores(archs, [self.proxy])
        out = np.array([_transform(self.proxy, r[self.proxy]["score"]) for r in rows], dtype=float)
        self._nonfinite = getattr(self, "_nonfinite", 0) + int((~np.isfinite(out)).sum())
        return np.where(np.isfinite(out), out, np.nan)  # inf is a failure too: shown as nan, counted

    def cost(self):
        return dict(super().cost(), nonfinite=getattr(self, "_nonfinite", 0))

    def details(self):
        rows = getattr(self, "_rows", [])
        patterns = sorted({re.sub(r"\.layers\.\d+\.", ".layers.{i}.", t) for r in rows
                           for t in r[self.proxy]["tensors"]})
        secs = [r[self.proxy]["seconds"] for r in rows]
        inputs = self._batch().identity if rows else None
        return {"proxy": self.proxy, "batch_size": _batch_words(inputs), "inputs": inputs,
                "tensors": patterns, "n_tensors_per_arch": sorted({len(r[self.proxy]["tensors"]) for r in rows}),
                "median_own_seconds": float(np.median(secs)) if secs else None,
                "transform": "natural log" if self.proxy == "synflow" else "none",
                "nonfinite": getattr(self, "_nonfinite", 0)}


for _name in PROXIES:
    _cls = type(f"ZC_{_name}", (ZeroCostProxy,), {"proxy": _name, "__doc__": DESCRIPTIONS[_name]})
    if _name == "synflow":
        _cls.default_config = classmethod(lambda cls: dict(_ProxyInputs.default_config(), disable_layernorm=True))
    if _name == "fisher":
        _cls.default_config = classmethod(lambda cls: dict(_ProxyInputs.default_config(), fan_in=True))
    register(_name, description=DESCRIPTIONS[_name], requires=("torch",), family="zero-cost")(_cls)


@register("zc-vote", description="majority vote of synflow, jacov and snip (pairwise, Copeland score)",
          requires=("torch",), family="zero-cost")
class ZCVote(_ProxyInputs):
    """Abdelfattah et al.'s vote as a ranking: architecture a beats b when at least 2 of the 3 proxies rank
    it higher; an architecture's score is its number of wins among the architectures predicted together.
    An architecture with a non-finite vote is nan (not ranked)."""

    higher_is_better = True
    VOTERS = ("synflow", "jacov", "snip")

    def predict(self, archs):
        rows = self._scores(archs, self.VOTERS)
        s = np.array([[_transform(n, r[n]["score"]) for n in self.VOTERS] for r in rows],
                     dtype=float).reshape(len(rows), len(self.VOTERS))  # also for no architecture
        ok = np.isfinite(s).all(axis=1)
        wins = np.full(len(rows), np.nan)
        for i in np.flatnonzero(ok):
            others = s[ok]
            votes = (s[i][None, :] > others).sum(axis=1)
            wins[i] = float((votes >= 2).sum())
        self._nonfinite = getattr(self, "_nonfinite", 0) + int((~ok).sum())
        return wins

    def details(self):
        inputs = self._batch().identity if getattr(self, "_rows", None) else None
        return {"voters": list(self.VOTERS), "rule": "pairwise majority (>=2 of 3), Copeland wins",
                "batch_size": _batch_words(inputs), "inputs": inputs,
                "nonfinite": getattr(self, "_nonfinite", 0)}


@register("zc-all", description="ridge regression on all 9 proxy scores + log params + log FLOPs (train split)",
          requires=("torch", "sklearn"), family="zero-cost")
class ZCAll(_ProxyInputs):
    """NAS-Bench-Suite-Zero's lesson: proxies are complementary; a regressor on all of them (and the costs)
    fitted on the split's training architectures.  Missing (non-finite) features are imputed with the
    training median (counted in details)."""

    learns = True
    on_target_scale = True

    @classmethod
    def default_config(cls):
        return dict(_ProxyInputs.default_config(), model="ridge", alpha=1.0)

    def _x(self, archs):
        from bench.costs import compute_costs
        rows = self._scores(archs, PROXIES)
        task = self.ctx.task
        x = []
        for a, r in zip(archs, rows):
            c = compute_costs(a, task.vocab_size, task.space.qkv_dim)
            x.append([_transform(n, r[n]["score"]) for n in PROXIES] + [math.log(c.params), math.log(c.total_flops)])
        x = np.array(x, dtype=float).reshape(len(archs), len(PROXIES) + 2)  # also for no architecture
        bad = ~np.isfinite(x)
        self._imputed = getattr(self, "_imputed", 0) + int(bad.sum())
        return np.where(bad, np.nan, x)

    def fit(self, archs, y):
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if self.config["model"] == "ridge":
            from sklearn.linear_model import Ridge
            reg = Ridge(alpha=float(self.config["alpha"]))
        elif self.config["model"] == "gp":
            from sklearn.gaussian_process import GaussianProcessRegressor
            from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
            reg = GaussianProcessRegressor(ConstantKernel() * RBF(3.0) + WhiteKernel(0.1), normalize_y=True,
                                           random_state=self.ctx.seed)
        else:
            raise ValueError(f"zc-all option model={self.config['model']!r} is not allowed; allowed values: "
                             f"['gp', 'ridge']")
        self.model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                                   reg)
        self.model.fit(self._x(archs), np.asarray(y, dtype=float))
        return self

    def predict(self, archs):
        if not len(archs):  # scikit-learn refuses an empty matrix
            return np.zeros(0)
        return np.asarray(self.model.predict(self._x(archs)), dtype=float)

    def details(self):
        inputs = self._batch().identity if getattr(self, "_rows", None) else None
        return {"features": list(PROXIES) + ["log_params", "log_total_flops"], "model": self.config["model"],
                "batch_size": _batch_words(inputs), "inputs": inputs,
                "imputed_values": getattr(self, "_imputed", 0)}
