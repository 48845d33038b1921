"""A decorator registry of predictor adapters, with lazy modules and parameterised names.

    @register("gp", description="Gaussian process on the arch encoding", requires=("sklearn",))
    class GP(Predictor): ...

A *spec* is a registered name with optional config: ``distill[teacher=gp,steps=5000]``;
values are parsed as YAML scalars, and brackets nest (``distill[teacher=llm-pp[llm=openai:gpt-4o]]``).
Modules are imported on first lookup so that ``bench list`` and the offline suites never
import torch or an SDK unless a predictor that needs it runs.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

# Modules that register predictors; imported lazily, in this order.
PREDICTOR_MODULES = [
    "predictors.baselines",
    "predictors.regressors",
    "predictors.latency",
    "predictors.llm_pp",
    "predictors.zero_cost",
    "predictors.distill",
    "predictors.supernet",
]

_REGISTRY: dict[str, Entry] = {}
_LOADED = False


@dataclass
class Entry:
    name: str
    cls: type
    description: str
    requires: tuple[str, ...]
    family: str

    def availability(self, config: dict | None = None) -> str | None:
        """None when it can run here, else the reason it cannot."""
        hook = getattr(self.cls, "availability", None)
        if hook is not None:
            return hook(config or {})
        return missing_requirements(self.requires)


def missing_requirements(requires) -> str | None:
    missing = []
    for req in requires:
        if req.startswith("env:"):
            if not os.environ.get(req[4:]):
                missing.append(f"environment variable {req[4:]} not set")
        elif req.startswith("file:"):
            if not os.path.exists(req[5:]):
                missing.append(f"file {req[5:]} not found")
        else:
            mod = {"sklearn": "sklearn", "torch": "torch"}.get(req, req)
            if importlib.util.find_spec(mod) is None:
                missing.append(f"python package {req!r} not installed")
    return "; ".join(missing) or None


def register(name: str, *, description: str, requires: tuple[str, ...] = (), family: str = "other") -> Callable:
    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"predictor {name!r} registered twice ({_REGISTRY[name].cls} and {cls})")
        cls.name = name
        _REGISTRY[name] = Entry(name, cls, description, tuple(requires), family)
        return cls
    return deco


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in PREDICTOR_MODULES:
        importlib.import_module(mod)
    _LOADED = True


def entries() -> dict[str, Entry]:
    _load_all()
    return dict(_REGISTRY)


class UnknownPredictor(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get(name: str) -> Entry:
    _load_all()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownPredictor(f"unknown predictor {name!r}{hint} (run `python -m bench list`)")
    return _REGISTRY[name]


class SpecError(ValueError):
    """A predictor spec that cannot be parsed or names options the predictor does not have."""


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``name[k=v,k2=v2]`` -> (name, {k: v}); nested brackets stay inside their value."""
    if not isinstance(spec, str):
        raise SpecError(f"predictor spec {spec!r}: must be a string like name[key=value,...]")
    spec = spec.strip()
    depth = 0
    for ch in spec:
        depth += (ch == "[") - (ch == "]")
        if depth < 0:
            break
    if depth != 0:
        raise SpecError(f"predictor spec {spec!r}: unbalanced brackets; expected name or name[key=value,...]")
    name, _, body = spec.partition("[")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise SpecError(f"predictor spec {spec!r}: {name!r} is not a predictor name; expected name or "
                        f"name[key=value,...] (run `python -m bench list`)")
    if not body:
        return name, {}
    if not body.endswith("]"):
        raise SpecError(f"predictor spec {spec!r}: text after the closing bracket; expected name[key=value,...]")
    config: dict[str, Any] = {}
    for part in split_specs(body[:-1]):
        if "=" not in part:
            raise SpecError(f"predictor spec {spec!r}: {part!r} is not key=value")
        k, v = part.split("=", 1)
        v = v.strip()
        try:
            config[k.strip()] = v if "[" in v or ":" in v else yaml.safe_load(v)
        except yaml.YAMLError:
            config[k.strip()] = v
    return name, config


def check_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Parse a spec and check its name and options against the registry, without building anything.

    Raises SpecError with one line naming the spec, what is wrong and the allowed values."""
    name, config = parse_spec(spec)
    try:
        entry = get(name)
    except UnknownPredictor as exc:
        raise SpecError(f"predictor spec {spec!r}: {exc}") from None
    why = entry.cls.check_config(config) if hasattr(entry.cls, "check_config") else None
    if why:
        raise SpecError(f"predictor spec {spec!r}: {why}")
    if name == "distill" and isinstance(config.get("teacher"), str):
        try:
            check_spec(config["teacher"])
        except SpecError as exc:
            raise SpecError(f"predictor spec {spec!r}: teacher: {exc}") from None
    return name, config


def format_spec(name: str, config: dict[str, Any]) -> str:
    if not config:
        return name
    return name + "[" + ",".join(f"{k}={_scalar(v)}" for k, v in config.items()) + "]"


def _scalar(v: Any) -> str:
    """A value as parse_spec reads it back: YAML's null, and floats YAML 1.1 takes for floats (1.0e-05, not 1e-05)."""
    if v is None:
        return "null"
    if isinstance(v, float):
        if not math.isfinite(v):
            return ".nan" if v != v else (".inf" if v > 0 else "-.inf")
        text = repr(v)
        mant, _, exp = text.partition("e")
        return f"{mant if '.' in mant else mant + '.0'}e{exp}" if exp else text
    return str(v)


def split_specs(text: str) -> list[str]:
    """Split a comma list of specs, respecting brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            if cur.strip():
                out.append(cur.strip())
            cur = ""
            continue
        depth += ch == "["
        depth -= ch == "]"
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def create(spec: str, ctx, **overrides):
    """Instantiate a predictor for one (task, target, seed) context."""
    name, config = parse_spec(spec)
    config.update(overrides)
    entry = get(name)
    obj = entry.cls(ctx, **config)
    obj.spec = format_spec(name, config)
    return obj
