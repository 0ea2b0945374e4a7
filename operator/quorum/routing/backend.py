"""One model backend as the router calls it: HTTP/1.1 straight to the OpenAI-compatible server.

Why not `quorum.llm.ChatClient`: the router forwards whatever the client sent (tools, response_format,
logprobs, ...) and hands back the whole choice, with no retries or JSON repair (its breakers and fan-out decide
instead). Both speak through the same client, `quorum.llm.http1`: a call is one request on a keep-alive
connection of the backend's own pool, the body is serialised once with orjson, and the pass-through path
forwards bytes without parsing the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from quorum.llm import CallFailed, ModelEndpoint
from quorum.llm.http1 import BackendConnectionError, Pool, Response
from quorum.llm.slots import Slots
from quorum.routing.metrics import RouterMetrics


@dataclass(frozen=True)
class BackendAnswer:
    """One sample: the backend's first choice as it sent it, and what the router reads from it."""

    choice: dict[str, Any]
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float


def choice_text(choice: dict[str, Any]) -> str:
    """The text of one OpenAI choice: a chat message's content, or a completion's `text`."""
    message = choice.get("message")
    return (message.get("content") if isinstance(message, dict) else choice.get("text")) or ""


def usage_counts(payload: Any) -> tuple[int, int]:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return 0, 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class Backend:
    """Calls to one model with its concurrency cap, time-out and metrics; the engine owns its circuit breaker."""

    def __init__(self, endpoint: ModelEndpoint, timeout_s: float, metrics: RouterMetrics) -> None:
        self.endpoint = endpoint
        self.name = endpoint.name
        headers = {"Content-Type": "application/json"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        self.pool = Pool(endpoint.base_url, headers)
        self._timeout = timeout_s
        self._slots = Slots(endpoint.max_concurrency)
        self.stats = metrics.backend(endpoint.name, endpoint.base_url)
        self._latency = metrics.backend_latency.labels(self.name)
        self._requests = metrics.model_requests.labels(self.name)
        self._prompt_tokens = metrics.prompt_tokens.labels(self.name)
        self._completion_tokens = metrics.completion_tokens.labels(self.name)
        self._metrics = metrics

    def failed(self, error: CallFailed) -> None:
        self._metrics.backend_errors.labels(self.name, error.reason).inc()

    def record(self, latency_s: float, prompt_tokens: int, completion_tokens: int) -> None:
        """A successful call: latency, tokens, and the production-stack window."""
        self._latency.observe(latency_s)
        self._requests.inc()
        if prompt_tokens:
            self._prompt_tokens.inc(prompt_tokens)
        if completion_tokens:
            self._completion_tokens.inc(completion_tokens)
        self.stats.finished(latency_s, completion_tokens)

    async def open(self, path: str, data: bytes, *, stream: bool) -> Response:
        """POST `data` and return the response with its head read; `close` it (that frees the slot).

        Not streamed, the whole answer must come within `backendTimeoutSeconds`; streamed, the head and each
        later piece must. Raises `CallFailed` when no response came (time-out, refused connection)."""
        self.stats.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.stats.waiting -= 1
        self.stats.running += 1
        try:
            return await self.pool.post(path, data, self._timeout, stream=stream)
        except TimeoutError as error:
            self._free()
            raise CallFailed(self.name, "Timeout", repr(error), 1) from None
        except BackendConnectionError as error:
            self._free()
            raise CallFailed(self.name, "ConnectionError", repr(error), 1) from None
        except BaseException:
            self._free()
            raise

    def close(self, response: Response) -> None:
        response.release()
        self._free()

    def _free(self) -> None:
        self.stats.running -= 1
        self._slots.release()

    async def call(self, path: str, body: dict[str, Any]) -> BackendAnswer:
        """One non-streamed sample; raises `CallFailed` on a time-out, a refused connection, a non-200 status
        or a body that is not an OpenAI answer."""
        started = time.perf_counter()
        response = await self.open(path, orjson.dumps(body), stream=False)
        try:
            raw = await response.read()
        except TimeoutError as error:
            raise CallFailed(self.name, "Timeout", repr(error), 1) from None
        except BackendConnectionError as error:
            raise CallFailed(self.name, "ConnectionError", repr(error), 1) from None
        finally:
            self.close(response)
        status = response.status
        if status != 200:
            raise CallFailed(self.name, f"HTTP{status}", raw[:500].decode("utf-8", "replace"), 1, status=status)
        try:
            payload = orjson.loads(raw)
            choice = min(payload["choices"], key=lambda c: c.get("index", 0))
            text = choice_text(choice)
            prompt_tokens, completion_tokens = usage_counts(payload)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise CallFailed(self.name, "MalformedResponse", repr(error), 1, 200) from None
        latency = time.perf_counter() - started
        self.record(latency, prompt_tokens, completion_tokens)
        return BackendAnswer(
            choice=choice,
            text=text if isinstance(text, str) else str(text),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
        )
