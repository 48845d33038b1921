"""Latency predictors.  ``hat-latency-released``: HAT's own trained MLPs (latency_dataset/predictors/*.pt),
replayed with a numpy forward pass on HAT's normalised 10 features."""
from __future__ import annotations

import numpy as np

from bench import data
from bench.features import encode
from bench.hatmlp import HatMLP
from .base import Predictor
from .registry import register

HAT_REPO = "mit-han-lab/hardware-aware-transformers/latency_dataset"
LAT_NORM = {"gpu_titanxp": 200.0, "cpu_xeon": 300.0, "cpu_raspberrypi": 5000.0}
RELEASED = {("wmt14ende", d) for d in LAT_NORM} | {("wmt14enfr", d) for d in LAT_NORM} | {("wmt19ende", "gpu_titanxp")}


def hat_task_of(task) -> str | None:
    """The HAT dataset name a task's architectures belong to (``latency.hat_task`` or the llmas source task)."""
    lat = task.cfg.get("latency") or {}
    return lat.get("hat_task") or (task.cfg.get("source") or {}).get("task")


def hat_device_of(task) -> str:
    return (task.cfg.get("latency") or {}).get("device", "gpu_titanxp")


def load_released(hat_task: str, device: str) -> HatMLP:
    if (hat_task, device) not in RELEASED:
        raise ValueError(f"HAT released no latency predictor for {hat_task}/{device}; "
                         f"available: {sorted(f'{t}/{d}' for t, d in RELEASED)}")
    return HatMLP.load(data.fetch(f"{HAT_REPO}/predictors/{hat_task}_{device}.pt"))


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
        return self

    def predict(self, archs):
        return self.mlp.predict(encode(archs, "hat")) * LAT_NORM[self.device]
