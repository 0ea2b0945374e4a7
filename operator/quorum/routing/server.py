"""The OpenAI-compatible HTTP face of the router (aiohttp).

`/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/v1/models/{id}`, `/healthz` (process alive),
`/readyz` (a backend can serve and the artifact is loaded when routing needs it), `/metrics` (Prometheus).
Errors are OpenAI-shaped (`{"error": {"message", "type", "param", "code"}}`): 400 bad request, 401 auth, 404
unknown route or model, 503 when no backend can serve.

Two paths:
- pass-through (one sample, no vote: strategy `single`, or a greedy request): the body is forwarded with the
  model name rewritten and the backend's answer is relayed as it comes, streamed or not; `x-quorum-*`
  headers say which model answered.
- voting: every sample is drawn first, the vote decides, and the answer carries a `quorum` field (cluster,
  models, tally, the rule that applied). Streaming such a request starts after the vote: the chosen answer
  comes as one chunk, then usage when `stream_options.include_usage` asked for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from quorum.llm import ModelEndpoint
from quorum.llm.http1 import BackendConnectionError
from quorum.llm.service import AppService
from quorum.routing.backend import usage_counts
from quorum.routing.config import TokenSource
from quorum.routing.engine import (
    BackendRejected,
    ChatRequest,
    Forwarded,
    NoBackendAvailable,
    RoutedAnswer,
    RouterEngine,
)
from quorum.routing.metrics import PUBLISH_SECONDS
from quorum.routing.wire import CHAT, COMPLETIONS, InvalidField, parse_request

log = logging.getLogger("quorum.router")
ENGINE: web.AppKey[RouterEngine] = web.AppKey("engine", RouterEngine)
TOKEN: web.AppKey[TokenSource] = web.AppKey("token", TokenSource)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
HEADER_LIMIT = 1024
MODEL_FIELD = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def with_model(raw: bytes, payload: dict[str, Any], model: str) -> bytes:
    """The client's body bytes with only the model name replaced; re-serialised only when the bytes hold more
    than one `"model"` key (a nested one could be matched first) or the router's own `quorum` options."""
    if "quorum" not in payload and raw.count(b'"model"') == 1:
        found = MODEL_FIELD.search(raw)
        if found is not None:
            return raw[: found.start(1)] + orjson.dumps(model)[1:-1] + raw[found.end(1) :]
    return orjson.dumps({**{k: v for k, v in payload.items() if k != "quorum"}, "model": model})


def stream_usage(tail: bytes) -> tuple[int, int]:
    """Token counts from the last server-sent event that carries a usage object."""
    for line in reversed(tail.split(b"\n")):
        if line.startswith(b"data: {") and b'"usage"' in line:
            try:
                return usage_counts(orjson.loads(line[6:]))
            except orjson.JSONDecodeError:
                return 0, 0
    return 0, 0


def error_response(
    status: int, message: str, kind: str, param: str | None = None, code: str | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json_response(body, status=status)


def bad_request(message: str, param: str | None = None) -> web.Response:
    return error_response(400, message, "invalid_request_error", param)


@web.middleware
async def _errors_and_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    token = request.app[TOKEN].current()
    if token is not None and request.path not in OPEN_PATHS:
        sent = request.headers.get("Authorization", "")
        scheme, _, value = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return error_response(
                401, "missing or invalid bearer token", "authentication_error", code="invalid_api_key"
            )
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status == 404:
            return error_response(
                404, f"no route {request.method} {request.path}", "invalid_request_error", code="not_found"
            )
        if error.status == 405:
            return error_response(
                405, f"method {request.method} not allowed on {request.path}", "invalid_request_error"
            )
        if error.status == 413:
            return bad_request("request body too large")
        raise
    except Exception:  # a bug must cost one request an OpenAI-shaped 500, never the process
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return error_response(500, "internal router error", "server_error")


def _audit(engine: RouterEngine, answer: RoutedAnswer) -> dict[str, Any]:
    decision = answer.decision
    return {
        "strategy": answer.strategy,
        "rule": answer.rule,
        "cluster": answer.cluster,
        "models": answer.models,
        "task": answer.task,
        "answer": decision.answer if decision else None,
        "votes": decision.counts if decision else {},
        "agreement": round(decision.agreement, 4) if decision else None,
        "chosen": {"model": decision.chosen.model, "sample": decision.chosen.index} if decision else None,
        "samples": {"requested": answer.samples_requested, "received": answer.samples_received},
        "fallbacks": answer.fallbacks,
        "artifact": engine.artifact.checksum if engine.artifact is not None else None,
    }


def _headers(audit: dict[str, Any]) -> dict[str, str]:
    votes = orjson.dumps(audit["votes"]).decode()
    return {
        "x-quorum-strategy": audit["strategy"],
        "x-quorum-rule": audit["rule"],
        "x-quorum-cluster": "" if audit["cluster"] is None else str(audit["cluster"]),
        "x-quorum-models": ",".join(audit["models"]),
        "x-quorum-votes": votes if len(votes) <= HEADER_LIMIT else votes[: HEADER_LIMIT - 3] + "...",
    }


def _choice(endpoint: str, index: int, choice: dict[str, Any]) -> dict[str, Any]:
    """A backend's choice re-indexed for this response; every field it had (tool_calls, logprobs) is kept."""
    out = {**choice, "index": index, "finish_reason": choice.get("finish_reason") or "stop"}
    if endpoint == CHAT:
        out["message"] = {"role": "assistant", **(choice.get("message") or {})}
    return out


def _delta(endpoint: str, index: int, choice: dict[str, Any]) -> dict[str, Any]:
    """The whole chosen choice as the first chunk of a stream that starts after the vote."""
    if endpoint != CHAT:
        return {
            "index": index,
            "text": choice.get("text") or "",
            "logprobs": choice.get("logprobs"),
            "finish_reason": None,
        }
    message = choice.get("message") or {}
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": k, **call} for k, call in enumerate(message["tool_calls"])]
    return {"index": index, "delta": delta, "logprobs": choice.get("logprobs"), "finish_reason": None}


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class RouterServer:
    """Request handlers bound to one engine."""

    def __init__(self, engine: RouterEngine) -> None:
        self.engine = engine
        self.strategy = engine.spec.voting.strategy.value
        m = engine.metrics
        self._seconds = {e: m.request_seconds.labels(e) for e in (CHAT, COMPLETIONS)}
        self._first_token = {e: m.first_token_seconds.labels(e) for e in (CHAT, COMPLETIONS)}
        self._statuses: dict[int, Any] = {}
        """Request counters by HTTP status, bound once (every request uses the one strategy label)."""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, CHAT)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, COMPLETIONS)

    async def _serve(self, http: web.Request, endpoint: str) -> web.StreamResponse:
        started = time.perf_counter()
        engine = self.engine
        try:
            raw = await http.read()
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._count(bad_request("the body must be a JSON object"), self.strategy)
        if not isinstance(payload, dict):
            return self._count(bad_request("the body must be a JSON object"), self.strategy)
        try:
            chat = parse_request(payload, endpoint, http.headers.get("x-quorum-task"))
        except InvalidField as error:
            return self._count(bad_request(str(error), error.param), self.strategy)
        if chat.model != engine.name and chat.model not in engine.backends:
            return self._count(self._unknown_model(chat.model), self.strategy)
        stream = payload.get("stream") is True
        try:
            if engine.passes_through(chat):
                response = await self._pass_through(http, chat, raw, stream, started)
            else:
                answer = await engine.answer(chat)
                response = await self._voted(http, chat, answer, stream, started)
        except BackendRejected as error:
            return self._count(bad_request(f"the model rejected the request: {error}"), self.strategy)
        except NoBackendAvailable as error:
            response = error_response(503, str(error), "service_unavailable", code="no_backend")
            return self._count(response, self.strategy)
        self._seconds[endpoint].observe(time.perf_counter() - started)
        return self._count(response, self.strategy)

    def _unknown_model(self, model: str) -> web.Response:
        message = f"The model `{model}` does not exist; this router serves {self.engine.name!r} and its members."
        return error_response(404, message, "invalid_request_error", "model", "model_not_found")

    def _count(self, response: web.StreamResponse, strategy: str) -> web.StreamResponse:
        counter = self._statuses.get(response.status)
        if counter is None:
            counter = self._statuses[response.status] = self.engine.metrics.requests.labels(
                strategy, str(response.status)
            )
        counter.inc()
        return response

    async def _pass_through(
        self, http: web.Request, chat: ChatRequest, raw: bytes, stream: bool, started: float
    ) -> web.StreamResponse:
        payload = chat.body

        def data(endpoint: ModelEndpoint) -> bytes:
            return with_model(raw, payload, endpoint.model)

        async with self.engine.forward(chat, data, stream=stream) as forwarded:
            headers = {
                "x-quorum-strategy": self.strategy,
                "x-quorum-rule": "pass-through",
                "x-quorum-cluster": "" if forwarded.cluster is None else str(forwarded.cluster),
                "x-quorum-models": forwarded.model,
            }
            if stream:
                return await self._relay_stream(http, chat, forwarded, headers, started)
            try:
                answer = await forwarded.response.read()
            except (BackendConnectionError, TimeoutError) as error:
                raise NoBackendAvailable(f"{forwarded.model} failed while answering: {error!r}") from None
            latency = time.perf_counter() - started
            self._first_token[chat.endpoint].observe(latency)
            try:
                prompt_tokens, completion_tokens = usage_counts(orjson.loads(answer))
            except orjson.JSONDecodeError:
                prompt_tokens = completion_tokens = 0
            forwarded.backend.record(latency, prompt_tokens, completion_tokens)
            return web.Response(body=answer, content_type="application/json", headers=headers)

    async def _relay_stream(
        self, http: web.Request, chat: ChatRequest, forwarded: Forwarded, headers: dict[str, str], started: float
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
        )
        await response.prepare(http)
        tail = b""
        pieces = forwarded.response.iter_any().__aiter__()
        while True:
            try:
                piece = await pieces.__anext__()
            except StopAsyncIteration:
                forwarded.backend.record(time.perf_counter() - started, *stream_usage(tail))
                break
            except (BackendConnectionError, TimeoutError) as error:  # the status is already sent: say it in-band
                event = {"error": {"message": f"backend stream failed: {error!r}", "type": "service_unavailable"}}
                piece = _event(event) + b"data: [DONE]\n\n"
                pieces = None
            if not tail:
                self._first_token[chat.endpoint].observe(time.perf_counter() - started)
            try:
                await response.write(piece)
            except ConnectionResetError:  # the client left; the backend response is released by `forward`
                return response
            if pieces is None:
                break
            tail = (tail + piece)[-8192:]
        await response.write_eof()
        return response

    async def _voted(
        self, http: web.Request, chat: ChatRequest, answer: RoutedAnswer, stream: bool, started: float
    ) -> web.StreamResponse:
        audit = _audit(self.engine, answer)
        kind = "chatcmpl" if chat.endpoint == CHAT else "cmpl"
        usage = {**answer.usage, "total_tokens": answer.usage["prompt_tokens"] + answer.usage["completion_tokens"]}
        base = {
            "id": f"{kind}-quorum-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion" if chat.endpoint == CHAT else "text_completion",
            "created": int(time.time()),
            "model": chat.model,
        }
        self._first_token[chat.endpoint].observe(time.perf_counter() - started)
        if stream:
            return await self._stream_whole(http, chat, base, answer, audit, usage)
        choices = [_choice(chat.endpoint, i, c) for i, c in enumerate(answer.choices)]
        body = {**base, "choices": choices, "usage": usage, "quorum": audit}
        return json_response(body, headers=_headers(audit))

    async def _stream_whole(
        self,
        http: web.Request,
        chat: ChatRequest,
        base: dict[str, Any],
        answer: RoutedAnswer,
        audit: dict[str, Any],
        usage: dict[str, int],
    ) -> web.StreamResponse:
        """Voting decides before answering: the stream carries each chosen choice whole, then usage if asked."""
        options = chat.body.get("stream_options") or {}
        with_usage = options.get("include_usage") is True
        base = {**base, "object": "chat.completion.chunk" if chat.endpoint == CHAT else "text_completion"}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **_headers(audit)})
        await response.prepare(http)
        events = []
        for index, choice in enumerate(answer.choices):
            first = {**base, "choices": [_delta(chat.endpoint, index, choice)]}
            finish = {"index": index, "finish_reason": choice.get("finish_reason") or "stop"}
            finish.update({"delta": {}} if chat.endpoint == CHAT else {"text": ""})
            last = {**base, "choices": [finish], "quorum": audit}
            if with_usage:
                first["usage"] = last["usage"] = None
            events += [_event(first), _event(last)]
        if with_usage:
            events.append(_event({**base, "choices": [], "usage": usage}))
        await response.write(b"".join(events) + b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _model_card(self, model: str, created: int) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": created, "owned_by": "quorum"}

    async def models(self, _: web.Request) -> web.Response:
        created = int(time.time())
        ids = [self.engine.name, *self.engine.models]
        return json_response({"object": "list", "data": [self._model_card(i, created) for i in ids]})

    async def model(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if model != self.engine.name and model not in self.engine.backends:
            return self._unknown_model(model)
        return json_response(self._model_card(model, int(time.time())))

    async def healthz(self, _: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        engine = self.engine
        healthy = engine.healthy()
        problems = []
        if not healthy:
            problems.append("no backend available")
        if engine.artifact is None and len(engine.models) > 1 and engine.require_artifact:
            problems.append("no calibration artifact loaded")
        body = {
            "ready": not problems,
            "problems": problems,
            "backends": {m: m in healthy for m in engine.models},
            "artifact": engine.artifact.checksum if engine.artifact is not None else None,
        }
        return json_response(body, status=200 if not problems else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        self.engine.healthy()
        self.engine.metrics.publish()
        response = web.Response(body=generate_latest(self.engine.metrics.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response


def build_app(engine: RouterEngine, token: TokenSource | None = None) -> web.Application:
    app = web.Application(middlewares=[_errors_and_auth], client_max_size=8 * 2**20)
    app[ENGINE] = engine
    app[TOKEN] = token or TokenSource()
    server = RouterServer(engine)
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_post("/v1/completions", server.completions)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/v1/models/{model:.+}", server.model)
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get("/readyz", server.readyz)
    app.router.add_get("/metrics", server.metrics)

    async def close(_: web.Application) -> None:
        await engine.aclose()

    app.on_cleanup.append(close)
    if engine.metrics.shared:
        app.cleanup_ctx.append(_publishing)
    return app


async def _publishing(app: web.Application) -> AsyncIterator[None]:
    """A worker of several publishes its backend figures every `PUBLISH_SECONDS`, so that a scrape answered by
    any worker sees the others' (at most that old)."""
    engine = app[ENGINE]

    async def loop() -> None:
        while True:
            engine.healthy()
            engine.metrics.publish()
            await asyncio.sleep(PUBLISH_SECONDS)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def freeze_after_start(app: web.Application) -> web.Application:
    """Move everything alive after start-up (the app, the embedder, imported modules) out of the collector's
    reach, so full collections stay short: with a few hundred thousand start-up objects in the oldest
    generation each full pass took 40-107 ms of the event loop."""

    async def freeze(_: web.Application) -> None:
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze)
    return app


class RunningRouter(AppService):
    """The router on 127.0.0.1 (or any host) in the current event loop: `async with RunningRouter(...) as r`."""

    def __init__(
        self, engine: RouterEngine, token: TokenSource | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.app = build_app(engine, token)

    def application(self) -> web.Application:
        return self.app
