"""Latency predictors.  ``hat-latency-released``: HAT's own trained MLPs (latency_dataset/predictors/*.pt),
replayed with a numpy forward pass on HAT's normalised 10 features.  ``hat-latency``: the same network
trained on the split's training architectures with HAT's recipe (paper-system.md §5.3)."""
from __future__ import annotations

import math

import numpy as np

from bench import data
from bench.features import encode
from bench.hatmlp import HatMLP
from bench.sources.release import HAT_LAT_NORM as LAT_NORM
from bench.sources.release import HAT_RELEASED as RELEASED
from bench.sources.release import hat_predictor_path

from .base import Predictor
from .registry import register


def hat_task_of(task) -> str | None:
    """The HAT dataset name a task's architectures belong to (``latency.hat_task`` or the llmas source task)."""
    lat = getattr(task, "latency", None)
    return (lat and lat.hat_task) or (task.cfg.get("source") or {}).get("task")


def hat_device_of(task) -> str:
    """``latency.device``, else the source's ``device`` (hat-latency-csv), else TITAN Xp (the llmas suites)."""
    lat = getattr(task, "latency", None)
    return (lat and lat.device) or (task.cfg.get("source") or {}).get("device") or "gpu_titanxp"


def load_released(hat_task: str, device: str) -> HatMLP:
    if (hat_task, device) not in RELEASED:
        raise ValueError(f"HAT released no latency predictor for {hat_task}/{device}; "
                         f"available: {sorted(f'{t}/{d}' for t, d in RELEASED)}")
    return HatMLP.load(data.fetch(hat_predictor_path(hat_task, device)))


@register("hat-latency-released", description="HAT's released latency-predictor MLP weights (numpy forward; ms)",
          requires=("torch",), family="latency")
class HatLatencyReleased(Predictor):
    @classmethod
    def default_config(cls):
        return {"device": None, "hat_task": None}

    def _where(self, task):
        return self.config["hat_task"] or hat_task_of(task), self.config["device"] or hat_device_of(task)

    def supports(self, task, target):
        if task.targets[target].kind != "latency":
            return "predicts latency, not quality"
        where = self._where(task)
        if where not in RELEASED:
            return f"no released HAT predictor for {where[0]}/{where[1]}"
        return None

    def fit(self, archs, y):
        self.hat_task, self.device = self._where(self.ctx.task)
        self.mlp = load_released(self.hat_task, self.device)
        # HAT fitted these weights on 80% of the very CSVs the hat-latency-csv source reads: scored there, the
        # row is mostly training error, so it is reported apart and never ranked.
        self.in_sample = getattr(self.ctx.task.source, "kind", "") == "hat-latency-csv"
        return self

    def predict(self, archs):
        return self.mlp.predict(encode(archs, "hat")) * LAT_NORM[self.device]


def lat_norm_for(task, device: str, y_train) -> float:
    """HAT's ``lat-norm``: ``latency.lat_norm`` if the task sets it, HAT's value for its devices, else the train
    mean rounded up to one significant digit (which gives HAT's 200 for the TITAN Xp's 166 ms mean)."""
    lat = getattr(task, "latency", None)
    given = lat.lat_norm if lat else None
    if given:
        return float(given)
    if device in LAT_NORM:
        return LAT_NORM[device]
    m = float(np.mean(y_train))
    if not m > 0:
        raise ValueError(f"cannot derive lat_norm from a train mean of {m}; set latency.lat_norm in the task")
    unit = 10.0 ** math.floor(math.log10(m))
    return math.ceil(m / unit) * unit


@register("hat-latency", description="HAT's latency MLP (10->400x3->1) trained on the split: Adam lr 1e-5, "
          "batch 128, 5,000 steps, MSE on latency/lat_norm", requires=("torch",), family="latency")
class HatLatency(Predictor):
    """HAT's ``latency_predictor.py`` on the harness's train split (HAT: 1,600 rows of an unseeded 80/10/10 split)."""

    learns = True

    @classmethod
    def default_config(cls):
        return {"steps": 5000, "batch_size": 128, "lr": 1e-5, "lat_norm": None, "device": None, "threads": 1}

    def supports(self, task, target):
        if task.targets[target].kind != "latency":
            return "predicts latency, not quality"
        return None

    def fit(self, archs, y):
        y = np.asarray(y, dtype=float)
        device = self.config["device"] or hat_device_of(self.ctx.task)
        self.lat_norm = float(self.config["lat_norm"] or lat_norm_for(self.ctx.task, device, y))
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(int(self.config["threads"]))  # 1: reproducible, and 7x faster on a busy 2-core box
        try:
            self.mlp = HatMLP().fit(encode(archs, "hat"), y / self.lat_norm, steps=int(self.config["steps"]),
                                    batch_size=int(self.config["batch_size"]), lr=float(self.config["lr"]),
                                    seed=self.ctx.seed)
        finally:
            torch.set_num_threads(before)
        return self

    def predict(self, archs):
        return self.mlp.predict(encode(archs, "hat")) * self.lat_norm

    def details(self):
        return {"lat_norm": self.lat_norm, "final_train_loss": getattr(self.mlp, "final_loss", None)}
