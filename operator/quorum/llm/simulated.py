"""A deterministic OpenAI-compatible server on 127.0.0.1 for exact and performance tests.

It speaks real HTTP (so clients, retries, time-outs and connection pools are exercised for real) while a
`responder` function decides every answer: scripted per-role replies, fixed latency, HTTP errors, hangs and
malformed JSON. It never stands in for the real-model tests; it makes the exact ones possible.

Run standalone (for subprocess tests and benchmarks):
    python -m quorum.llm.simulated --responder package.module:function --latency 0.05 --port 0
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from quorum.llm.service import AppService


@dataclass(frozen=True)
class SimRequest:
    """What the server received, in the shape responders need."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None
    max_tokens: int | None
    n: int
    stop: list[str] | None
    response_format: dict[str, Any] | None
    body: dict[str, Any]
    index: int
    headers: dict[str, str] = field(default_factory=dict)
    endpoint: str = "chat/completions"
    """`chat/completions`, or `completions` (then `messages` holds the prompt as one user message)."""

    @property
    def prompt(self) -> str:
        """All message contents joined, for responders that match on text."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)

    @property
    def schema_name(self) -> str | None:
        """The `json_schema.name` of a structured-output request."""
        fmt = self.response_format or {}
        return (fmt.get("json_schema") or {}).get("name")


@dataclass
class SimReply:
    """What to answer: `texts` (one per choice) or `text`, an error `status`, a `delay_s`, or `hang`."""

    text: str | None = None
    texts: list[str] | None = None
    status: int = 200
    delay_s: float | None = None
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None
    """OpenAI `tool_calls` of every choice (the content is then `text`, usually None)."""
    logprobs: dict[str, Any] | None = None
    """The `logprobs` object of every choice, as the caller wants it echoed."""

    def choices(self, n: int) -> list[str]:
        texts = self.texts if self.texts is not None else [self.text or ""]
        return [texts[i % len(texts)] for i in range(n)]


Responder = Callable[[SimRequest], SimReply | Awaitable[SimReply]]


def echo_responder(request: SimRequest) -> SimReply:
    """Answers with the last user message: the simplest scripted model."""
    last = next((m for m in reversed(request.messages) if m.get("role") == "user"), {"content": ""})
    return SimReply(text=f"echo: {last.get('content')}")


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class SimulatedBackend(AppService):
    """An aiohttp OpenAI-compatible server whose answers come from `responder`."""

    shutdown_timeout = 0.5
    """Hung handlers (`SimReply(hang=True)`) must not hold up shutdown for aiohttp's default 60 s."""

    def __init__(
        self,
        responder: Responder = echo_responder,
        *,
        latency_s: float = 0.0,
        models: Sequence[str] = ("sim",),
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        max_running: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.max_running = max_running
        """Requests answered at once, like vLLM's batch limit; more wait and count in
        `vllm:num_requests_waiting` on `/metrics` (0: no limit, no queue)."""
        self.waiting = 0
        self._slots: asyncio.Semaphore | None = None
        self.responder = responder
        self.latency_s = latency_s
        self.models = list(models)
        self.record = record
        self.requests: list[SimRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        return app

    def start_in_thread(self) -> str:
        """Serve from a background thread with its own event loop, for synchronous callers."""
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="simulated-backend", daemon=True)
        self._thread.start()
        if not ready.wait(timeout=30):
            raise RuntimeError("simulated backend did not start")
        return self.base_url

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._thread = None

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _metrics(self, _: web.Request) -> web.Response:
        """vLLM's queue gauges in Prometheus text format, what a queue-depth scaler reads."""
        model = self.models[0] if self.models else "sim"
        running = self.in_flight - self.waiting
        lines = [
            "# TYPE vllm:num_requests_running gauge",
            f'vllm:num_requests_running{{model_name="{model}"}} {float(running)}',
            "# TYPE vllm:num_requests_waiting gauge",
            f'vllm:num_requests_waiting{{model_name="{model}"}} {float(self.waiting)}',
        ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def _slot(self) -> None:
        """Wait for a batch slot when `max_running` is set; the wait is the queue vLLM reports."""
        if not self.max_running:
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_running)
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1

    async def _models(self, _: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "owned_by": "quorum-simulated"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _completions(self, http_request: web.Request) -> web.StreamResponse:
        return await self._chat(http_request, "completions")

    async def _chat(self, http_request: web.Request, endpoint: str = "chat/completions") -> web.StreamResponse:
        try:
            body = await http_request.json()
            if endpoint == "completions":
                messages = [{"role": "user", "content": str(body["prompt"])}]
            else:
                messages = list(body["messages"])
            request = SimRequest(
                model=str(body.get("model", "")),
                messages=messages,
                temperature=body.get("temperature"),
                max_tokens=body.get("max_tokens"),
                n=int(body.get("n") or 1),
                stop=body.get("stop"),
                response_format=body.get("response_format"),
                body=body,
                index=next(self._counter),
                headers=dict(http_request.headers),
                endpoint=endpoint,
            )
        except (ValueError, KeyError, TypeError) as error:
            return _error(400, f"invalid request: {error}")
        if self.record:
            self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        slotted = False
        try:
            await self._slot()
            slotted = bool(self.max_running)
            reply = self.responder(request)
            if inspect.isawaitable(reply):
                reply = await reply
            if reply.hang:
                await asyncio.sleep(3600)
            delay = self.latency_s if reply.delay_s is None else reply.delay_s
            if delay > 0:
                await asyncio.sleep(delay)
        finally:
            self.in_flight -= 1
            if slotted and self._slots is not None:
                self._slots.release()
        if reply.status != 200:
            return _error(reply.status, reply.text or f"simulated HTTP {reply.status}", reply.headers)
        texts = reply.choices(request.n)
        if body.get("stream"):
            return await _stream(http_request, request, reply, texts[0])
        return web.json_response(
            {
                "id": f"chatcmpl-sim-{request.index}",
                "object": "chat.completion" if endpoint != "completions" else "text_completion",
                "created": int(time.time()),
                "model": request.model,
                "choices": [_choice(request, reply, i, t) for i, t in enumerate(texts)],
                "usage": _usage(request, texts),
            },
            headers=reply.headers,
        )


def _usage(request: SimRequest, texts: list[str]) -> dict[str, int]:
    prompt_tokens = _count_tokens(request.prompt)
    completion_tokens = sum(_count_tokens(t) for t in texts)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _choice(request: SimRequest, reply: SimReply, index: int, text: str) -> dict[str, Any]:
    finish = "tool_calls" if reply.tool_calls else "stop"
    choice: dict[str, Any] = {"index": index, "finish_reason": finish, "logprobs": reply.logprobs}
    if request.endpoint == "completions":
        choice["text"] = text
    else:
        message: dict[str, Any] = {"role": "assistant", "content": None if reply.tool_calls else text}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        choice["message"] = message
    return choice


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "simulated_error", "code": status}}
    return web.json_response(body, status=status, headers=headers or {})


async def _stream(http_request: web.Request, request: SimRequest, reply: SimReply, text: str) -> web.StreamResponse:
    """Word by word; a final usage chunk when `stream_options.include_usage` asks for it, as OpenAI does."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(http_request)
    chat = request.endpoint != "completions"
    with_usage = (request.body.get("stream_options") or {}).get("include_usage") is True
    base = {
        "id": f"chatcmpl-sim-{request.index}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "model": request.model,
        **({"usage": None} if with_usage else {}),
    }
    words = text.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
        chunk = {**base, "choices": [{**choice, "finish_reason": None}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
    finish = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
    last = {**base, "choices": [{**finish, "finish_reason": "stop"}]}
    await response.write(f"data: {json.dumps(last)}\n\n".encode())
    if with_usage:
        usage = {**base, "choices": [], "usage": _usage(request, [text])}
        await response.write(f"data: {json.dumps(usage)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def load_responder(dotted: str) -> Responder:
    """`package.module:function` → the responder function."""
    module_name, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module_name), attribute or "responder")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a simulated OpenAI-compatible model on 127.0.0.1.")
    parser.add_argument("--responder", default="quorum.llm.simulated:echo_responder")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", action="append", default=None)
    args = parser.parse_args(argv)
    backend = SimulatedBackend(
        load_responder(args.responder),
        latency_s=args.latency,
        models=args.model or ["sim"],
        port=args.port,
        record=False,
    )

    serve_forever(backend)


def serve_forever(backend: SimulatedBackend) -> None:
    """Serve until killed, printing the base URL once listening (what a launcher waits for)."""

    async def serve() -> None:
        await backend.start()
        print(backend.base_url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
