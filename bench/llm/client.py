"""Ask an LLM many questions at once: cache first, then bounded async concurrency, retries with exponential
backoff and jitter (honouring Retry-After), bounded re-asks of non-numeric answers, a run-level budget and a
cost ledger.  Every finished answer is committed to the SQLite cache as it arrives, so a killed run resumes
where it stopped and a re-run costs zero calls.  Transient failures are not cached (a later run retries them);
a non-numeric answer after the re-asks is cached as a failure (it is the model's answer).
"""
from __future__ import annotations

import asyncio
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass, field

from ..cache import Cache, make_key
from ..data import cache_dir
from .backends import Backend, Retryable

KEY_VERSION = "llm-pp-response/1"
# Dollars per million (input, output) tokens; list prices of the providers when written; override with the
# predictor options price_in= / price_out=.  Unknown models cost None (unknown), local models 0.
PRICES = {
    "gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60), "gpt-4.1": (2.00, 8.00), "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4": (30.00, 60.00), "gpt-4-turbo": (10.00, 30.00), "gpt-3.5-turbo": (0.50, 1.50),
    "claude-sonnet-4-6": (3.00, 15.00), "claude-sonnet-4-5": (3.00, 15.00), "claude-sonnet-4-0": (3.00, 15.00),
    "claude-opus-4-1": (15.00, 75.00), "claude-haiku-4-5": (1.00, 5.00), "claude-3-5-haiku-latest": (0.80, 4.00),
}
_KEYLIKE = re.compile(r"(sk-|sk_|key-)[A-Za-z0-9_\-*.]{6,}")


class LLMError(RuntimeError):
    """A failure that makes every further call pointless (bad key, no access, unknown model)."""


def redact(text: str) -> str:
    """Error texts end up in results.json: strip the keys (providers echo them, partly masked, in 401s)."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        key = os.environ.get(var)
        if key:
            text = text.replace(key, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def default_cache() -> Cache:
    """The response cache: ``$BENCH_CACHE_DIR/llm.sqlite`` (default ~/.cache/bench/llm.sqlite)."""
    return Cache(cache_dir() / "llm.sqlite", namespace="llm-pp")


def parse_value(text: str, mode: str = "strict") -> float | None:
    """strict (the paper's rule): the first whitespace token must be a number ("25.3" ok; "25.3." and
    "BLEU: 25.3" fail).  lenient: the first number anywhere.  Non-finite values ("nan", "inf") always fail:
    that is this project's rule, not the paper's (its ``float()`` accepts them)."""
    t = (text or "").strip()
    if not t:
        return None
    if mode == "strict":
        try:
            v = float(t.split()[0])
        except ValueError:
            return None
    elif mode == "lenient":
        m = _NUMBER.search(t)
        if not m:
            return None
        v = float(m.group(0))
    else:
        raise ValueError(f"parse={mode!r} is not allowed; allowed values: ['lenient', 'strict']")
    return v if math.isfinite(v) else None


def price_for(model: str, provider: str, price_in: float | None = None, price_out: float | None = None):
    if price_in is not None and price_out is not None:
        return float(price_in), float(price_out)
    if provider == "local":
        return 0.0, 0.0
    return PRICES.get(model)


@dataclass
class Settings:
    concurrency: int = 8
    max_attempts: int = 6  # per request: 1 + 5 retries on 429 / 5xx / timeouts
    reask: int = 2  # extra asks after a non-numeric answer
    backoff: float = 1.0  # seconds; doubled per attempt, capped, full jitter in [0.5, 1]x
    backoff_cap: float = 60.0
    parse: str = "strict"
    rpm: float | None = None  # optional requests-per-minute limit
    progress: bool = True
    valid_range: tuple | None = None  # (lo, hi): a parsed value outside is implausible (negative BLEU, 1e308)
    refresh_failures: bool = False  # re-ask requests whose cached answer is a failure
    claim_wait: float = 300.0  # seconds to wait for another process's answer to a request it claimed


@dataclass
class Ledger:
    """Counters of one predictor (or of a whole run)."""

    requests: int = 0  # answers asked for (architectures x samples)
    cache_hits: int = 0
    calls: int = 0  # HTTP calls / local generations actually made, retries and re-asks included
    retries: int = 0
    reasks: int = 0
    failures: int = 0  # non-numeric after re-asks, or transient errors after max_attempts, or budget stop
    budget_stopped: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    dollars: float | None = 0.0
    wall_s: float = 0.0
    live_query_s: list = field(default_factory=list)

    def as_dict(self) -> dict:
        q = self.live_query_s
        return {"requests": self.requests, "cache_hits": self.cache_hits, "calls": self.calls,
                "retries": self.retries, "reasks": self.reasks, "failures": self.failures,
                "budget_stopped": self.budget_stopped, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "dollars": None if self.dollars is None else round(self.dollars, 6), "wall_s": round(self.wall_s, 4),
                "query_s_per_arch_live": round(sum(q) / len(q), 4) if q else None}

    def add_tokens(self, n_in: int, n_out: int, price) -> None:
        self.input_tokens += n_in
        self.output_tokens += n_out
        if price is None:
            self.dollars = None
        elif self.dollars is not None:
            self.dollars += (n_in * price[0] + n_out * price[1]) / 1e6


class Budget:
    """A run-level limit on calls and dollars, shared by every LLM predictor of a run."""

    def __init__(self, max_calls: int | None = None, max_dollars: float | None = None):
        self.max_calls, self.max_dollars = max_calls, max_dollars
        self.calls, self.dollars, self.reserved = 0, 0.0, 0.0
        self.exhausted = False
        self.ledger = Ledger()

    def reserve(self, est_dollars: float | None) -> bool:
        if self.max_calls is not None and self.calls >= self.max_calls:
            return self._stop()
        if self.max_dollars is not None:
            if est_dollars is None:
                raise ValueError("--max-dollars needs a price for this model: pass price_in=/price_out= "
                                 "($ per million tokens)")
            if self.dollars + self.reserved + est_dollars > self.max_dollars:
                return self._stop()
        self.calls += 1
        self.reserved += est_dollars or 0.0
        return True

    def settle(self, est_dollars: float | None, actual: float | None) -> None:
        self.reserved -= est_dollars or 0.0
        self.dollars += actual or 0.0

    def _stop(self) -> bool:
        if not self.exhausted:
            print(f"llm-pp: run budget reached (max_calls={self.max_calls}, max_dollars={self.max_dollars}); "
                  f"stopping with partial results", file=sys.stderr)
        self.exhausted = True
        return False


def run_budget(options: dict) -> Budget:
    """The run's one Budget, held by the active ``bench.invocation.Run`` (every LLM predictor of the run draws
    from it); outside a run (a predictor used directly) a Budget of the caller's own.  No module state: two runs
    in one process never share a budget."""
    from ..invocation import current

    run = current()
    if run is None:
        return Budget(options.get("max_calls"), options.get("max_dollars"))
    if run.llm_budget is None:
        limits = {**options, **run.budget}
        run.llm_budget = Budget(limits.get("max_calls"), limits.get("max_dollars"))
    return run.llm_budget


class _RateLimiter:
    def __init__(self, rpm: float | None):
        self.gap = 60.0 / rpm if rpm else 0.0
        self.next = 0.0

    async def wait(self) -> None:
        if not self.gap:
            return
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.gap
        if slot > now:
            await asyncio.sleep(slot - now)


@dataclass
class Request:
    key: str
    messages: list
    temperature: float
    max_tokens: int
    meta: dict


def request_key(provider: str, model: str, base_url: str, messages: list, params: dict, sample: int,
                template_sha: str) -> str:
    """Everything that determines the answer: provider, model, endpoint, full request, sample index."""
    return make_key(KEY_VERSION, provider, model, base_url, messages, params, sample, template_sha)


class Engine:
    """Resolves requests: cache hits at once, misses through the backend with bounded concurrency.

    Answers: an empty answer (a 200 with no choices or no text) is transient (retried, never cached); a value
    outside ``valid_range`` is a failure like a non-numeric one (re-asked, then cached as the model's failure);
    cached failures are asked again with ``refresh_failures``.  Before sending, a request is claimed in the
    cache, so a second process sharing the cache waits for that answer instead of paying for it again."""

    def __init__(self, backend_factory, cache: Cache, settings: Settings, budget: Budget, ledger: Ledger,
                 price, provider: str):
        self.backend_factory, self.cache, self.s = backend_factory, cache, settings
        self.budget, self.ledger, self.price, self.provider = budget, ledger, price, provider
        self.run_ledger = budget.ledger
        self._fatal: BaseException | None = None
        import socket

        self.owner = f"{socket.gethostname()}:{os.getpid()}-{id(self)}-{random.random():.12f}"

    def plausible(self, value: float | None) -> bool:
        lo, hi = self.s.valid_range or (-math.inf, math.inf)
        return value is not None and math.isfinite(value) and lo <= value <= hi

    def _usable(self, entry: dict) -> dict:
        """A cached entry as this run reads it: an implausible value counts as a failure."""
        if entry.get("value") is not None and not self.plausible(entry["value"]):
            return dict(entry, value=None, ok=False, reason="implausible value")
        return entry

    def resolve(self, requests: list[Request]) -> dict[str, dict]:
        """key -> cache entry ({"value": float|None, "text": ..., ...}); missing keys failed transiently."""
        t0 = time.perf_counter()
        unique = {r.key: r for r in requests}
        found = {k: self._usable(v) for k, v in self.cache.get_many(list(unique)).items()}
        if self.s.refresh_failures:  # --refresh-failures: ask again what failed before
            found = {k: v for k, v in found.items() if v.get("value") is not None}
        hits = sum(1 for r in requests if r.key in found)
        for led in (self.ledger, self.run_ledger):
            led.requests += len(requests)
            led.cache_hits += hits
        todo = [r for k, r in unique.items() if k not in found]
        if todo:
            found.update(_run(self._resolve_all(todo)))
        for led in (self.ledger, self.run_ledger):
            led.failures += sum(1 for r in requests if (found.get(r.key) or {}).get("value") is None)
            led.wall_s += time.perf_counter() - t0
        return found

    async def _resolve_all(self, todo: list[Request]) -> dict[str, dict]:
        sem = asyncio.Semaphore(max(1, int(self.s.concurrency)))
        limiter = _RateLimiter(self.s.rpm)
        backend = self.backend_factory()
        out: dict[str, dict] = {}
        bar = None
        if self.s.progress and len(todo) > 20:
            from tqdm import tqdm
            bar = tqdm(total=len(todo), desc="llm-pp", unit="call", file=sys.stderr, leave=False)

        async def one(req: Request):
            async with sem:
                entry = None if self._fatal else await self._ask(backend, limiter, req)
            if entry is not None:
                out[req.key] = entry
            if bar:
                bar.update(1)

        self._fatal = None
        try:
            for res in await asyncio.gather(*(one(r) for r in todo), return_exceptions=True):
                if isinstance(res, BaseException):
                    self._fatal = self._fatal or res
        finally:
            if bar:
                bar.close()
            await backend.aclose()
        if self._fatal:
            raise self._fatal
        return out

    async def _ask(self, backend: Backend, limiter: _RateLimiter, req: Request) -> dict | None:
        """Claim the request, ask it, release the claim (also on failure or Ctrl-C)."""
        waited = 0.0
        while not self.cache.claim(req.key, self.owner, ttl=self.s.claim_wait):
            entry = self.cache.get(req.key)  # another process is asking: wait for its answer
            if entry is not None and (entry.get("value") is not None or not self.s.refresh_failures):
                self._count("cache_hits")
                return self._usable(entry)
            if waited >= self.s.claim_wait:
                break
            await asyncio.sleep(0.2)
            waited += 0.2
        try:
            entry = self.cache.get(req.key)  # answered while we waited for the claim
            if entry is not None and waited and (entry.get("value") is not None or not self.s.refresh_failures):
                self._count("cache_hits")
                return self._usable(entry)
            return await self._ask_claimed(backend, limiter, req)
        finally:
            self.cache.release(req.key, self.owner)

    async def _ask_claimed(self, backend: Backend, limiter: _RateLimiter, req: Request) -> dict | None:
        t0 = time.perf_counter()
        n_in = n_out = 0
        text, value, calls, served, reason = "", None, 0, "", None
        for ask in range(self.s.reask + 1):
            if ask:
                self._count("reasks")
            comp = await self._call(backend, limiter, req)
            if comp is None:
                return None  # transient failure or budget: not cached, a later run retries
            calls += 1
            n_in, n_out = n_in + comp.input_tokens, n_out + comp.output_tokens
            text, served = comp.text, comp.served_model
            value = parse_value(text, self.s.parse)
            reason = None if value is not None else "not a number"
            if value is not None and not self.plausible(value):
                value, reason = None, "implausible value"
            if value is not None:
                break
        latency = time.perf_counter() - t0
        self.ledger.live_query_s.append(latency)
        entry = {"value": value, "text": text[:500], "ok": value is not None, "asks": calls,
                 **({"reason": reason} if reason else {}),
                 "usage": {"input_tokens": n_in, "output_tokens": n_out}, "latency_s": round(latency, 4),
                 "served_model": served,
                 **req.meta}
        self.cache.put(req.key, entry)
        return entry

    async def _call(self, backend, limiter, req: Request):
        est = None
        if self.price is not None:
            chars = sum(len(m["content"]) for m in req.messages)
            est = (chars / 3 * self.price[0] + req.max_tokens * self.price[1]) / 1e6
        for attempt in range(self.s.max_attempts):
            if self._fatal:
                return None
            if not self.budget.reserve(est):
                self._count("budget_stopped")
                return None
            await limiter.wait()
            self._count("calls")
            try:
                comp = await backend.complete(req.messages, req.temperature, req.max_tokens)
                if not (comp.text or "").strip():  # a 200 with no choices / no text: the server's hiccup
                    raise Retryable("empty answer (no choices or no text)")
            except Retryable as exc:
                self.budget.settle(est, 0.0)
                if attempt == self.s.max_attempts - 1:
                    print(f"llm-pp: giving up after {self.s.max_attempts} attempts ({redact(str(exc))})",
                          file=sys.stderr)
                    return None
                self._count("retries")
                delay = min(self.s.backoff_cap, self.s.backoff * 2 ** attempt) * random.uniform(0.5, 1.0)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.s.backoff_cap))
                await asyncio.sleep(delay)
                continue
            except Exception as exc:
                self.budget.settle(est, 0.0)
                msg = redact(f"{type(exc).__name__}: {exc}")
                if getattr(exc, "status_code", None) in (401, 403, 404):
                    self._fatal = LLMError(msg)
                    raise self._fatal from None  # bad key, no access, unknown model: every call would fail
                print(f"llm-pp: request failed ({msg})", file=sys.stderr)
                return None
            cost = None if self.price is None else (
                comp.input_tokens * self.price[0] + comp.output_tokens * self.price[1]) / 1e6
            self.budget.settle(est, cost)
            for led in (self.ledger, self.run_ledger):
                led.add_tokens(comp.input_tokens, comp.output_tokens, self.price)
            return comp
        return None

    def _count(self, name: str) -> None:
        for led in (self.ledger, self.run_ledger):
            setattr(led, name, getattr(led, name) + 1)


def _run(coro):
    """asyncio.run, also from inside a running loop (notebooks): then in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()
