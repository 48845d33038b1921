"""LLM-PP (Jawahar et al. 2024): an LLM reads the paper's prompt (role, instructions, hyperparameter
definitions, task sentence pairs, 10 measured demonstrations) and answers the target of a new architecture.

Options: ``llm-pp[llm=openai:gpt-4o,template=gpt_scorer_concentrate_statement,demos=10,samples=1,
temperature=0,max_tokens=25,probe=none]``; the backend may also come from ``bench run --llm``.
Temperature defaults to 0 for repeatability; the paper left the provider default (1.0): pass temperature=1
to reproduce it.  SDKs are imported only when a prediction is made.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from bench.space import Arch

from .base import Predictor
from .registry import format_spec, register

# A value outside its unit's range is not a prediction (negative BLEU, 1e308 ms): a failure, re-askable.
PLAUSIBLE = {"bleu": (0.0, 100.0), "chrf": (0.0, 100.0), "ms": (0.0, 1e6), "s": (0.0, 1e3)}


def plausible_range(task, target: str):
    t = getattr(task, "targets", {}).get(target)
    unit = str(getattr(t, "unit", "") or "").lower()
    if unit in PLAUSIBLE:
        return PLAUSIBLE[unit]
    return (0.0, 1e6) if getattr(t, "kind", "") == "latency" else None


@register("llm-pp", family="llm",
          description="LLM performance predictor: the paper's prompt through OpenAI/Anthropic/compatible/local LLMs",
          requires=("an LLM: OPENAI_API_KEY, ANTHROPIC_API_KEY, OPENAI_BASE_URL or llama_cpp",))
class LLMPP(Predictor):
    learns = True  # the demonstrations are the training split's labelled architectures
    version = "1"

    @classmethod
    def default_config(cls) -> dict:
        return {"llm": None, "template": "gpt_scorer_concentrate_statement", "demos": 10, "samples": None,
                "temperature": 0.0, "max_tokens": 25, "probe": "none", "parse": "strict", "reask": 2,
                "max_attempts": 6, "backoff": 1.0, "timeout": 60.0, "concurrency": None, "rpm": None,
                "base_url": None, "chat": True, "flops_vocab": None, "price_in": None, "price_out": None, "cache": None,
                "progress": True}

    @classmethod
    def availability(cls, config: dict) -> str | None:
        from bench.llm.backends import BackendError, unavailable

        if config.get("llm"):
            try:
                return unavailable(str(config["llm"]), config.get("base_url"))
            except BackendError as exc:
                return str(exc)
        # The backend may still come from `bench run --llm`; supports() checks the resolved one.
        import importlib.util

        if any(os.environ.get(v) for v in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL")) \
                or importlib.util.find_spec("llama_cpp") is not None:
            return None
        return ("no LLM backend: set OPENAI_API_KEY or ANTHROPIC_API_KEY (or OPENAI_BASE_URL for a compatible "
                "server), or install the local extra")

    # ---- setup ------------------------------------------------------------
    @property
    def llm(self) -> str:
        from bench.llm.backends import DEFAULT_LLM

        return str(self.config["llm"] or self.ctx.options.get("llm") or DEFAULT_LLM)

    @property
    def samples(self) -> int:
        """Answers per architecture: the spec's samples=, else `bench run --samples`, else 1."""
        return int(self.config["samples"] or self.ctx.options.get("samples") or 1)

    def supports(self, task, target: str) -> str | None:
        from bench.llm.backends import BackendError, unavailable
        from bench.llm.prompt import PromptError

        if self.config["template"] == "default_flops":
            return "default_flops is the paper's architecture generator prompt, not a predictor prompt"
        try:
            why = unavailable(self.llm, self.config["base_url"], bool(self.config["chat"]))
            if why:
                return f"{self.llm}: {why}"
            self._builder()
        except (PromptError, BackendError) as exc:
            return str(exc)
        extra = {}  # name the run options that change the answers in the leaderboard row
        if not self.config["llm"]:
            extra["llm"] = self.llm
        if not self.config["samples"] and self.samples > 1:
            extra["samples"] = self.samples
        if extra:
            self.spec = format_spec(self.name, dict(self._spec_config(), **extra))
        return None

    def _spec_config(self) -> dict:
        from predictors.registry import parse_spec

        return parse_spec(self.spec or self.name)[1]

    def _builder(self):
        if getattr(self, "_pb", None) is None:
            from bench.llm.prompt import PromptBuilder

            c = self.config
            self._pb = PromptBuilder(self.ctx.task, self.ctx.target, self.ctx.seed, template=c["template"],
                                     demos=int(c["demos"]), probe=str(c["probe"]), flops_vocab=c["flops_vocab"])
            self._pb.demos_from_split()
        return self._pb

    # ---- estimator API ------------------------------------------------------
    def fit(self, archs: Sequence[Arch], y: np.ndarray) -> LLMPP:
        """Demonstrations: the first ``demos`` training architectures, in the order given (file order)."""
        self._builder().set_demos(archs, y)
        return self

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        from bench.cache import Cache
        from bench.llm import backends as B
        from bench.llm import client as C

        c, opts = self.config, self.ctx.options
        pb = self._builder()
        provider, model = B.parse_llm(self.llm)
        base_url = B.base_url_of(provider, c["base_url"])
        params = {"temperature": float(c["temperature"]), "max_tokens": int(c["max_tokens"])}
        K = self.samples
        if K < 1:
            raise ValueError(f"llm-pp: samples={K} must be >= 1")
        tsha = pb.template_sha()
        reqs, keys = [], []
        sampling = dict(params, parse=c["parse"], chat=bool(c["chat"]))
        for a in archs:
            msgs = [{"role": "user", "content": pb.query(a)}]
            row = []
            for k in range(K):
                key = C.request_key(provider, model, base_url, msgs, sampling, k, tsha)
                reqs.append(C.Request(key, msgs, params["temperature"], params["max_tokens"],
                                      {"provider": provider, "model": model, "sample": k, "template": c["template"]}))
                row.append(key)
            keys.append(row)
        # llama.cpp generations are serialised anyway: one at a time keeps per-arch latencies honest
        conc = 1 if provider == "local" else int(c["concurrency"] or opts.get("concurrency") or 8)
        settings = C.Settings(concurrency=conc,
                              max_attempts=int(c["max_attempts"]), reask=int(c["reask"]), backoff=float(c["backoff"]),
                              parse=str(c["parse"]), rpm=c["rpm"], progress=bool(c["progress"]),
                              valid_range=plausible_range(self.ctx.task, self.ctx.target),
                              refresh_failures=bool(opts.get("refresh_failures")))
        cache = Cache(c["cache"], namespace="llm-pp") if c["cache"] else C.default_cache()
        if not hasattr(self, "ledger"):
            self.ledger = C.Ledger()
        self.budget = C.run_budget(opts)
        price = C.price_for(model, provider, c["price_in"], c["price_out"])
        engine = C.Engine(lambda: B.make_backend(self.llm, c["base_url"], float(c["timeout"]), self.ctx.seed,
                                                 bool(c["chat"])),
                          cache, settings, self.budget, self.ledger, price, provider)
        found = engine.resolve(reqs)
        out, stds = np.full(len(archs), np.nan), []
        for i, row in enumerate(keys):
            vals = [found[k]["value"] for k in row if k in found and found[k].get("value") is not None]
            if vals:
                out[i] = float(np.mean(vals))
                if K > 1 and len(vals) > 1:
                    stds.append(float(np.std(vals)))
        self._stds = stds
        self._prompt_chars = len(pb.query(archs[0])) if len(archs) else 0
        return out

    # ---- reporting ------------------------------------------------------------
    def cost(self) -> dict:
        led = getattr(self, "ledger", None)
        if led is None:
            return {}
        out = {"llm": self.llm, **led.as_dict()}
        out["run"] = self.budget.ledger.as_dict()
        out["budget_exhausted"] = self.budget.exhausted
        if self.samples > 1:
            out["samples"] = self.samples
            out["mean_std_per_arch"] = self._mean_std()
        return out

    def describe(self) -> dict:
        """With the resolved backend and sample count, so caches keyed on it (distill labels) tell models apart."""
        d = super().describe()
        d["config"] = dict(d["config"], llm=self.llm, samples=self.samples)
        return d

    def _mean_std(self):
        s = getattr(self, "_stds", [])
        return float(np.mean(s)) if s else math.nan

    def details(self) -> dict:
        pb = getattr(self, "_pb", None)
        d = {"llm": self.llm, "samples": self.samples, "temperature": float(self.config["temperature"]),
             "template": self.config["template"], "probe": self.config["probe"]}
        if pb is not None:
            d["template_sha256_16"] = pb.template_sha()
            d["demos"] = len(pb.demo_archs)
            d["prompt_chars"] = getattr(self, "_prompt_chars", None)
        if self.samples > 1:
            d["mean_std_per_arch"] = self._mean_std()
        return d
