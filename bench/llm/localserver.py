"""A local HTTP server that speaks the OpenAI chat-completions and Anthropic messages wire formats.

It stands at the network edge for tests and ``bench llm-bench``: the real SDK clients talk to it over
127.0.0.1.  A *responder* decides each reply (answer text, HTTP status, headers, delay), so tests can script
429s with Retry-After, 500s, slow answers and non-numeric text.  The default responder answers after a fixed
delay with a deterministic number read from the prompt (so predictions are reproducible).

    python -m bench.llm.localserver --delay 0.02      # prints the port, serves until killed
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 408: "Request Timeout",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           529: "Overloaded"}


@dataclass
class Reply:
    text: str = ""  # the assistant's answer (status 200)
    status: int = 200
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


def prompt_of(body: dict) -> str:
    msgs = body.get("messages") or []
    if not msgs:
        return ""
    c = msgs[-1].get("content", "")
    return c if isinstance(c, str) else "".join(p.get("text", "") for p in c)


def default_answer(prompt: str) -> str:
    """A deterministic 'prediction': 20 + 2 x GFLOPS of the query, plus a hash-based wobble < 0.5."""
    m = re.findall(r"GFLOPS: ([0-9.]+)", prompt)
    g = float(m[-1]) if m else 0.0
    wob = int(hashlib.sha256(prompt.encode()).hexdigest()[:6], 16) / 0xFFFFFF / 2
    return f"{20 + 2 * g + wob:.2f}"


class LocalLLMServer:
    def __init__(self, responder=None, delay: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        self.responder = responder or (lambda body, path, n: Reply(default_answer(prompt_of(body)), delay=delay))
        self.host, self.port = host, port
        self.requests: list[dict] = []  # {"path", "body", "headers", "t"}
        self.inflight = self.max_inflight = 0
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._server = None

    # ---- lifecycle ------------------------------------------------------------
    def start(self) -> LocalLLMServer:
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if not self._loop:
            return

        async def shutdown():
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def openai_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def prompts(self) -> list[str]:
        with self._lock:
            return [prompt_of(r["body"]) for r in self.requests]

    # ---- HTTP -------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                keep = await self._respond(writer, method, path, headers, body)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def _respond(self, writer, method, path, headers, raw) -> bool:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        with self._lock:
            n = len(self.requests)
            self.requests.append({"path": path, "body": body, "headers": headers, "t": time.time()})
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if method != "POST" or path.rstrip("/") not in ("/v1/chat/completions", "/v1/messages"):
                reply = Reply(status=404, text=f"no route {method} {path}")
            else:
                reply = self.responder(body, path, n)
            if reply.delay:
                await asyncio.sleep(reply.delay)
        finally:
            with self._lock:
                self.inflight -= 1
        payload = self._payload(path, body, reply)
        data = json.dumps(payload).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        writer.write((f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}\r\n"
                      f"content-type: application/json\r\ncontent-length: {len(data)}\r\n{extra}\r\n").encode() + data)
        await writer.drain()
        return True

    @staticmethod
    def _payload(path: str, body: dict, reply: Reply) -> dict:
        anthropic = path.rstrip("/").endswith("/messages")
        if reply.status != 200:
            if anthropic:
                return {"type": "error", "error": {"type": "api_error", "message": reply.text or "error"}}
            return {"error": {"message": reply.text or "error", "type": "server_error", "code": reply.status}}
        n_in = len(prompt_of(body)) // 4
        n_out = max(1, len(reply.text) // 4)
        model = body.get("model", "local")
        if anthropic:
            return {"id": "msg_local", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": reply.text}], "stop_reason": "end_turn",
                    "stop_sequence": None, "usage": {"input_tokens": n_in, "output_tokens": n_out}}
        return {"id": "chatcmpl-local", "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args(argv)
    srv = LocalLLMServer(delay=a.delay, port=a.port).start()
    print(srv.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
