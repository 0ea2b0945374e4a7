"""The OpenAI-compatible HTTP face of the router (aiohttp).

`/v1/chat/completions`, `/v1/models`, `/healthz` (process alive), `/readyz` (a backend can serve and the
artifact is loaded when routing needs it), `/metrics` (Prometheus). Errors are OpenAI-shaped
(`{"error": {"message", "type", "param", "code"}}`): 400 bad request, 401 auth, 404 unknown route, 503 when no
backend can serve. Every decision is auditable: `x-quorum-*` headers and a `quorum` field in the body carry
the cluster, models, vote tally and strategy.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from quorum.api.ensemble import VotingStrategy
from quorum.llm.service import AppService
from quorum.routing.config import TokenSource
from quorum.routing.engine import BackendRejected, ChatRequest, NoBackendAvailable, RoutedAnswer, RouterEngine

log = logging.getLogger("quorum.router")
ENGINE: web.AppKey[RouterEngine] = web.AppKey("engine", RouterEngine)
TOKEN: web.AppKey[TokenSource] = web.AppKey("token", TokenSource)
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
HEADER_LIMIT = 1024


class MessageBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class QuorumOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str | None = Field(default=None, min_length=1, max_length=128)


class ChatBody(BaseModel):
    """The accepted subset of an OpenAI chat request; unknown fields are tolerated as OpenAI clients send many."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[MessageBody] = Field(min_length=1, max_length=4096)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=64)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stream: bool = False
    quorum: QuorumOptions | None = None

    def to_request(self, task_header: str | None) -> ChatRequest:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        if stop is not None and len(stop) > 4:
            raise ValueError("stop: at most 4 sequences")
        return ChatRequest(
            messages=[m.model_dump(exclude_none=True) for m in self.messages],
            model=self.model,
            temperature=self.temperature,
            max_tokens=self.max_tokens or self.max_completion_tokens,
            stop=stop or None,
            top_p=self.top_p,
            seed=self.seed,
            n=self.n,
            task=(self.quorum.task if self.quorum else None) or task_header,
        )


def error_response(
    status: int, message: str, kind: str, param: str | None = None, code: str | None = None
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


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
    votes = json.dumps(audit["votes"], ensure_ascii=True, separators=(",", ":"))
    return {
        "x-quorum-strategy": audit["strategy"],
        "x-quorum-cluster": "" if audit["cluster"] is None else str(audit["cluster"]),
        "x-quorum-models": ",".join(audit["models"]),
        "x-quorum-votes": votes if len(votes) <= HEADER_LIMIT else votes[: HEADER_LIMIT - 3] + "...",
    }


class RouterServer:
    """Request handlers bound to one engine."""

    def __init__(self, engine: RouterEngine) -> None:
        self.engine = engine

    async def chat(self, request: web.Request) -> web.StreamResponse:
        engine = self.engine
        started = time.perf_counter()
        strategy = engine.spec.voting.strategy.value
        try:
            payload = await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError):
            return self._count(bad_request("the body must be a JSON object"), strategy)
        if not isinstance(payload, dict):
            return self._count(bad_request("the body must be a JSON object"), strategy)
        try:
            body = ChatBody.model_validate(payload)
            chat = body.to_request(request.headers.get("x-quorum-task"))
        except ValidationError as error:
            first = error.errors()[0]
            param = ".".join(str(p) for p in first["loc"])
            return self._count(bad_request(f"{param}: {first['msg']}", param), strategy)
        except ValueError as error:
            return self._count(bad_request(str(error)), strategy)
        try:
            if body.stream and engine.spec.voting.strategy is VotingStrategy.SINGLE and chat.n == 1:
                return await self._stream(request, chat, body.model)
            answer = await engine.answer(chat)
        except BackendRejected as error:
            return self._count(bad_request(f"the model rejected the request: {error}"), strategy)
        except NoBackendAvailable as error:
            return self._count(error_response(503, str(error), "service_unavailable", code="no_backend"), strategy)
        audit = _audit(engine, answer)
        completion_id = f"chatcmpl-quorum-{uuid.uuid4().hex[:24]}"
        usage = {**answer.usage, "total_tokens": answer.usage["prompt_tokens"] + answer.usage["completion_tokens"]}
        if body.stream:
            return await self._stream_whole(request, completion_id, body.model, answer, audit)
        response = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish or "stop"}
                for i, (text, finish) in enumerate(answer.choices)
            ],
            "usage": usage,
            "quorum": audit,
        }
        log.debug("answered in %.3fs via %s", time.perf_counter() - started, answer.models)
        return self._count(web.json_response(response, headers=_headers(audit)), answer.strategy)

    def _count(self, response: web.StreamResponse, strategy: str) -> web.StreamResponse:
        self.engine.metrics.requests.labels(strategy, str(response.status)).inc()
        return response

    async def _stream(self, request: web.Request, chat: ChatRequest, model_name: str) -> web.StreamResponse:
        model, chunks = await self.engine.stream(chat)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "x-quorum-strategy": "single",
                "x-quorum-models": model,
            }
        )
        await response.prepare(request)
        try:
            async for chunk in chunks:
                chunk["model"] = model_name
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        except Exception as error:  # the stream broke mid-way: tell the client in-band, the status is already sent
            event = {"error": {"message": f"backend stream failed: {error}", "type": "service_unavailable"}}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self.engine.metrics.requests.labels("single", "200").inc()
        return response

    async def _stream_whole(
        self, request: web.Request, completion_id: str, model_name: str, answer: RoutedAnswer, audit: dict[str, Any]
    ) -> web.StreamResponse:
        """Voting strategies decide before answering: the stream carries the whole chosen text in one chunk."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **_headers(audit)})
        await response.prepare(request)
        for index, (text, finish) in enumerate(answer.choices):
            base = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model_name,
            }
            first = {
                **base,
                "choices": [{"index": index, "delta": {"role": "assistant", "content": text}, "finish_reason": None}],
            }
            last = {
                **base,
                "choices": [{"index": index, "delta": {}, "finish_reason": finish or "stop"}],
                "quorum": audit,
            }
            await response.write(f"data: {json.dumps(first)}\n\ndata: {json.dumps(last)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        self._count(response, answer.strategy)
        return response

    async def models(self, _: web.Request) -> web.Response:
        created = int(time.time())
        ids = [self.engine.name, *self.engine.models]
        data = [{"id": i, "object": "model", "created": created, "owned_by": "quorum"} for i in ids]
        return web.json_response({"object": "list", "data": data})

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

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
        return web.json_response(body, status=200 if not problems else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        self.engine.healthy()
        response = web.Response(body=generate_latest(self.engine.metrics.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response


def build_app(engine: RouterEngine, token: TokenSource | None = None) -> web.Application:
    app = web.Application(middlewares=[_errors_and_auth], client_max_size=8 * 2**20)
    app[ENGINE] = engine
    app[TOKEN] = token or TokenSource()
    server = RouterServer(engine)
    app.router.add_post("/v1/chat/completions", server.chat)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get("/readyz", server.readyz)
    app.router.add_get("/metrics", server.metrics)

    async def close(_: web.Application) -> None:
        await engine.aclose()

    app.on_cleanup.append(close)
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
