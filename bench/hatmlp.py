"""HAT's MLP (10 features -> 400 -> 3 x [400 -> 400] -> 1, ReLU): the latency predictor and LLM-Distill-PP.

Training follows HAT/llmas: Adam, MSE, batches of 128 drawn without replacement each step, a fixed
number of steps, everything seeded.  Inference is numpy (no torch needed), so a search or a latency
constraint can run it cheaply; ``load_state_dict`` reads HAT's released ``*.pt`` files (legacy format).
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

KEYS = ["first_layer", "layers.0", "layers.1", "layers.2", "predict"]


class HatMLP:
    def __init__(self, feature_dim: int = 10, hidden_dim: int = 400, hidden_layers: int = 3):
        self.feature_dim, self.hidden_dim, self.hidden_layers = feature_dim, hidden_dim, hidden_layers
        self.weights: list[tuple[np.ndarray, np.ndarray]] = []

    # ---- inference (numpy) -------------------------------------------------
    def predict(self, x: np.ndarray) -> np.ndarray:
        from .blas import one_blas_thread

        with one_blas_thread():  # small matmuls: BLAS threads only oversubscribe (see bench/blas.py)
            return self._forward(x)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float32)
        if h.ndim == 1:
            h = h[None, :]
        for i, (w, b) in enumerate(self.weights):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0)
        return h[:, 0].astype(float)

    # ---- weights ------------------------------------------------------------
    def load_state_dict(self, sd: dict) -> HatMLP:
        names = ["first_layer"] + [f"layers.{i}" for i in range(self.hidden_layers)] + ["predict"]
        self.weights = [(np.asarray(sd[f"{n}.weight"], dtype=np.float32), np.asarray(sd[f"{n}.bias"], dtype=np.float32))
                        for n in names]
        return self

    def state_dict(self) -> dict:
        names = ["first_layer"] + [f"layers.{i}" for i in range(self.hidden_layers)] + ["predict"]
        out = {}
        for n, (w, b) in zip(names, self.weights):
            out[f"{n}.weight"], out[f"{n}.bias"] = w, b
        return out

    @classmethod
    def load(cls, path: str | Path) -> HatMLP:
        """HAT's released predictors are legacy (pre-1.6) torch pickles; torch.load still reads them."""
        import torch

        sd = torch.load(str(path), map_location="cpu", weights_only=False)
        return cls().load_state_dict({k: v.numpy() for k, v in sd.items()})

    # ---- training (torch) ---------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray, steps: int = 5000, batch_size: int = 128, lr: float = 1e-5,
            seed: int = 123, replay: int = 0) -> HatMLP:
        """``replay``: advance the seeded RNGs past that many earlier trainings of the same size first, as
        llmas' ``bleu_predictor.py`` does: it seeds once and trains one model per split seed in turn, so
        its k-th model starts where the (k-1)-th left the RNGs (init draws, then ``steps`` samples)."""
        import torch
        from torch import nn

        rng = random.Random(seed)
        torch.manual_seed(seed)

        def build():
            layers: list[nn.Module] = [nn.Linear(self.feature_dim, self.hidden_dim), nn.ReLU()]
            for _ in range(self.hidden_layers):
                layers += [nn.Linear(self.hidden_dim, self.hidden_dim), nn.ReLU()]
            layers.append(nn.Linear(self.hidden_dim, 1))
            return nn.Sequential(*layers)

        for _ in range(replay):
            build()
            for _ in range(steps):
                rng.sample(range(len(x)), min(batch_size, len(x)))
        net = build()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(-1, 1)
        n = len(xt)
        bs = min(batch_size, n)
        with torch.set_grad_enabled(True):
            for _ in range(steps):
                idx = torch.as_tensor(rng.sample(range(n), bs))
                loss = nn.functional.mse_loss(net(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        linears = [m for m in net if isinstance(m, nn.Linear)]
        self.weights = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in linears]
        self.final_loss = float(loss.item())
        return self
