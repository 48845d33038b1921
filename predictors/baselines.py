"""Baselines that need no model: the mean floor, cost proxies, and the released supernet predictions."""
from __future__ import annotations

import numpy as np

from bench.costs import compute_costs
from bench.sources import record_costs
from bench.sources.release import SUPERNETS

from .base import Predictor
from .registry import register


@register("mean", description="predicts the train split's mean target for every architecture (the honest floor)",
          family="baseline")
class Mean(Predictor):
    learns = True

    def fit(self, archs, y):
        self.value = float(np.mean(y))
        return self

    def predict(self, archs):
        return np.full(len(archs), self.value)


class _CostProxy(Predictor):
    """A cost as a predictor: bigger models score higher BLEU and run slower; it only ranks."""

    on_target_scale = False
    field = ""

    def _value(self, arch) -> float:
        task = self.ctx.task
        rec = task.lookup(arch)
        if rec is not None:
            c = record_costs(task, rec)
        else:
            if task.vocab_size is None:
                return float("nan")
            k = compute_costs(arch, task.vocab_size, task.space.qkv_dim)
            c = {"params_no_emb": k.params_no_emb, "emb_params": k.emb_params, "total_flops": k.total_flops,
                 "last_layer_flops": k.last_layer_flops}
        return float(self._from(c))

    def predict(self, archs):
        return np.array([self._value(a) for a in archs], dtype=float)


@register("params", description="total parameters incl. the shared embedding table (from the data, else computed)",
          family="cost")
class Params(_CostProxy):
    def _from(self, c):
        return c["params_no_emb"] + c["emb_params"]


@register("params-no-emb", description="non-embedding parameters (from the data, else computed)", family="cost")
class ParamsNoEmb(_CostProxy):
    def _from(self, c):
        return c["params_no_emb"]


@register("flops", description="total forward FLOPs, batch 1, 30+30 tokens, incl. output layer (data, else computed)",
          family="cost")
class Flops(_CostProxy):
    def _from(self, c):
        return c["total_flops"]


class _Replay(Predictor):
    """BLEU a weight-sharing supernet gave each architecture, replayed from the release (labels used literally)."""

    key = ""

    def supports(self, task, target):
        rec = task.records[0] if task.records else None
        if rec is None or self.key not in rec.extras:
            return f"the data of task {task.name} carries no {self.key!r} predictions"
        if target not in rec.extras[self.key]:
            return f"the release has no {self.key!r} prediction for target {target!r}"
        return None

    def predict(self, archs):
        out = []
        for a in archs:
            rec = self.ctx.task.lookup(a)
            out.append(rec.extras[self.key][self.ctx.target] if rec is not None and self.key in rec.extras
                       else float("nan"))
        return np.array(out, dtype=float)


for _name, _label in SUPERNETS.items():
    register(_name, description=f"released '{_label}' supernet BLEU, replayed from the data (no GPU)",
             family="supernet")(type(f"Replay_{_name.replace('-', '_')}", (_Replay,), {"key": _name}))


# ---------------------------------------------------------------- same-information baselines
FEATURE_NAMES = ["encoder_embed_dim", "encoder_layer_num", "encoder_ffn_embed_dim_mean",
                 "encoder_self_attention_heads_mean", "decoder_embed_dim", "decoder_layer_num",
                 "decoder_ffn_embed_dim_mean", "decoder_self_attention_heads_mean",
                 "decoder_ende_attention_heads_mean", "decoder_arbitrary_ende_attn_mean"]  # = features.hat_raw order


@register("feature", description="one HAT feature, a least-squares line on the train split (rank=true: the raw "
                                 "feature as a rank-only score); name= one of " + ", ".join(FEATURE_NAMES),
          family="baseline")
class Feature(Predictor):
    """What a predictor that sees the same 10 demonstrations must beat: a straight line on one feature."""

    learns = True

    @classmethod
    def default_config(cls):
        return {"name": "decoder_layer_num", "rank": False}

    def __init__(self, ctx, **config):
        super().__init__(ctx, **config)
        if self.config["name"] not in FEATURE_NAMES:
            raise ValueError(f"predictor 'feature': name={self.config['name']!r} is not allowed; "
                             f"allowed values: {FEATURE_NAMES}")
        self.rank = bool(self.config["rank"])
        self.on_target_scale = not self.rank
        self.learns = not self.rank

    def _x(self, archs) -> np.ndarray:
        from bench.features import hat_raw
        i = FEATURE_NAMES.index(self.config["name"])
        return np.array([hat_raw(a)[i] for a in archs], dtype=float)

    def fit(self, archs, y):
        if not self.rank:
            x, y = self._x(archs), np.asarray(y, float)
            if np.ptp(x) == 0:  # a feature constant on the train split carries no slope: predict the mean
                self.coef_ = np.array([float(np.mean(y)), 0.0])
            else:
                self.coef_ = np.linalg.lstsq(np.column_stack([np.ones_like(x), x]), y, rcond=None)[0]
        return self

    def predict(self, archs):
        x = self._x(archs)
        return x if self.rank else self.coef_[0] + self.coef_[1] * x


# ---------------------------------------------------------------- noise ceiling
@register("noise-ceiling", description="reference, never ranked: a twin measurement of the target as the prediction "
                                       "(valid <-> test score of the same architecture; twin=seed: a second "
                                       "training seed from the records' *.noise.jsonl)", family="reference")
class NoiseCeiling(Predictor):
    """How well the data allow any predictor to do: the target measured again is itself only this good."""

    ceiling = True

    @classmethod
    def default_config(cls):
        return {"twin": "auto"}  # auto: seed repeats where the records have them, else the valid/test twin

    def _split_twin(self, target):
        for a, b in (("valid_", "test_"), ("test_", "valid_")):
            if target.startswith(a):
                return b + target[len(a):]
        return None

    def _seed_twins(self, task, target) -> tuple[dict | None, str]:
        """Each architecture's second-seed value of ``target`` from ``*.noise.jsonl`` beside the records file (the
        first one where ``source.file`` is a list), or None and why there is none."""
        from bench.sources.records import file_specs, noise_twin, row_passes
        src = task.cfg.get("source") or {}
        spec = (file_specs(src) or [None])[0]
        none = f"task {task.name} has no seed repeats (*.noise.jsonl next to its records)"
        if src.get("kind") != "records" or not isinstance(spec, dict) or "path" not in spec:
            return None, none
        if src.get("duplicates") == "mean":  # the repeats are inside the target: a twin would share its seeds
            return None, (f"task {task.name} reads each target as a mean over seeds (source.duplicates: mean): a "
                          f"second seed is part of that mean, not an independent twin; use twin=split")
        from bench.data import resolve
        from bench.sources import read_rows
        from bench.space import parse_arch
        path = resolve(spec, task.suite.path.parent)
        noise = noise_twin(path)
        if not noise.exists():
            return None, none
        col = (src["targets"].get(target) or {}).get("column", target)
        out: dict[str, float] = {}
        rows = [r for r in read_rows(noise) if row_passes(r, src.get("filter") or {})]
        for row in sorted(rows, key=lambda r: r.get("seed", 0)):  # the lowest repeat seed: "a second seed"
            key = task.space.validate(parse_arch(row.get("arch", row))).key()
            if key not in out and row.get(col) is not None:
                out[key] = float(row[col])
        return (out, "") if out else (None, none)

    def supports(self, task, target):
        twin = self.config["twin"]
        if twin not in ("auto", "seed", "split"):
            return f"twin={twin!r} is not allowed; allowed values: ['auto', 'seed', 'split']"
        if twin in ("auto", "seed"):
            self.twins, why = self._seed_twins(task, target)
            if self.twins is not None:
                self.kind = "seed"
                return None
            if twin == "seed":
                return why
        other = self._split_twin(target)
        if other is None or not task.records or other not in task.records[0].targets:
            return f"target {target!r} has no twin measurement in task {task.name}"
        self.kind, self.other = "split", other
        return None

    def predict(self, archs):
        out = []
        for a in archs:
            if self.kind == "seed":
                out.append(self.twins.get(a.key(), float("nan")))
            else:
                rec = self.ctx.task.lookup(a)
                out.append(rec.targets.get(self.other, float("nan")) if rec is not None else float("nan"))
        return np.array(out, dtype=float)

    def details(self):
        return {"twin": self.kind, **({"of": self.other} if self.kind == "split" else {})}
