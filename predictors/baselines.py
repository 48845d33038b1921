"""Baselines that need no model: the mean floor, cost proxies, and the released supernet predictions."""
from __future__ import annotations

import numpy as np

from bench.costs import compute_costs
from bench.sources import record_costs
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


for _name, _label in {"hat": "HAT", "sandwich": "Supernet (Sandwich)", "layer-mos": "Layer-wise MoS",
                      "neuron-mos": "Neuron-wise MoS"}.items():
    register(_name, description=f"released '{_label}' supernet BLEU, replayed from the data (no GPU)",
             family="supernet")(type(f"Replay_{_name.replace('-', '_')}", (_Replay,), {"key": _name}))
