"""An async client for OpenAI-compatible chat endpoints over `quorum.llm.http1`, bodies through orjson.

Why our own and not the `openai` package: the engines need per-endpoint concurrency limits shared by
thousands of concurrent tasks, retries that record what failed instead of raising into a pipeline, a JSON
repair loop, and token accounting — all cheap on the per-sample hot path. The official client is used in tests
to prove our servers speak the same protocol. Why `http1` and not aiohttp's client (nor httpx over it): the
HTTP layers were the largest share of a synthesis worker's CPU (aiohttp's request path and socket writes about
0.55 ms of CPU per call; httpx on top of it doubled that), and a worker needs what the router needs from a
model server: POST a body on a keep-alive connection and read the answer, whole or streamed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import orjson

from quorum.llm.fastcheck import Check, compile_check
from quorum.llm.http1 import BackendConnectionError, Pool, Response
from quorum.llm.slots import Slots

Message = Mapping[str, Any]

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
CHAT_PATH = "chat/completions"


@dataclass(frozen=True)
class ModelEndpoint:
    """Where one model is served. `base_url` includes the API prefix, e.g. `http://qwen:8000/v1`."""

    name: str
    base_url: str
    model: str
    api_key: str | None = None
    max_concurrency: int = 32


@dataclass(frozen=True)
class RetryPolicy:
    """Time-outs, retries with exponential backoff and jitter, and JSON repair attempts."""

    timeout_seconds: float = 120.0
    max_retries: int = 3
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    json_repair_attempts: int = 2

    @classmethod
    def from_spec(cls, calls: Any) -> RetryPolicy:
        """From `quorum.api.common.CallPolicy` (duck-typed so this module stays free of the API layer)."""
        return cls(
            timeout_seconds=calls.timeout_seconds,
            max_retries=calls.max_retries,
            backoff_seconds=calls.backoff_seconds,
            max_backoff_seconds=calls.max_backoff_seconds,
            json_repair_attempts=calls.json_repair_attempts,
        )

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (0-based); honours a server's Retry-After."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff_seconds)
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * (2**retry))
        return random.uniform(ceiling / 2, ceiling)


@dataclass
class TokenUsage:
    """Running totals for one endpoint."""

    requests: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: TokenUsage) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.retries += other.retries
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "retries": self.retries,
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
        }


@dataclass(frozen=True)
class Completion:
    """One successful chat completion; `texts` holds every choice when `n > 1`."""

    text: str
    texts: list[str]
    model: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    attempts: int


@dataclass(eq=False)
class CallFailed(Exception):
    """A call that did not succeed after its retries; engines record it rather than lose the work."""

    endpoint: str
    reason: str
    message: str
    attempts: int
    status: int | None = None
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.endpoint}: {self.reason} after {self.attempts} attempt(s): {self.message}"

    def as_record(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "reason": self.reason,
            "message": self.message,
            "attempts": self.attempts,
            "status": self.status,
        }


@dataclass(eq=False)
class InvalidJson(CallFailed):
    """The model kept answering with text that is not valid JSON for the schema."""

    last_text: str = field(default="")


def _strip_fences(text: str) -> str:
    """Small models often wrap JSON in Markdown fences or add prose; keep the outermost object."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[-1].rsplit("```", 1)[0]
    start, end = stripped.find("{"), stripped.rfind("}")
    return stripped[start : end + 1] if 0 <= start < end else stripped


def parse_json_reply(
    text: str, validator: jsonschema.protocols.Validator, quick: Check | None = None
) -> tuple[dict[str, Any] | None, str]:
    """(value, "") when `text` holds a JSON object valid for the schema, else (None, why not). `quick` (from
    `fastcheck.compile_check`) may accept a plainly valid value first; jsonschema decides everything else."""
    stripped = _strip_fences(text)
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        try:  # the standard parser's verdict, so the repair prompt reads as it always has (and NaN still parses)
            value = json.loads(stripped)
        except json.JSONDecodeError as error:
            return None, f"not valid JSON ({error.msg} at position {error.pos})"
    if not isinstance(value, dict):
        return None, "the reply must be one JSON object"
    if quick is not None and quick(value):
        return value, ""
    problem = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if problem is not None:
        where = "/".join(str(p) for p in problem.absolute_path) or "the object"
        return None, f"{where}: {problem.message}"
    return value, ""


class ChatClient:
    """Chat completions against one endpoint, with a concurrency cap, retries and usage accounting.

    Calls beyond the cap wait for a slot by `priority` (higher first, then in arrival order): an engine with
    dependent calls (the GRA chain generate → review → adjudicate) ranks them by their sample's age
    (`quorum.gra.schedule.call_priority`), so the oldest sample's ready call is served first whatever its stage."""

    def __init__(self, endpoint: ModelEndpoint, policy: RetryPolicy | None = None) -> None:
        """The endpoint's keep-alive connections are its own: at most `max_concurrency` of them are busy, the
        cap its `Slots` enforce. Raises `ValueError` for a base URL that is not http(s)."""
        self.endpoint = endpoint
        self.policy = policy or RetryPolicy()
        self.usage = TokenUsage()
        self._slots = Slots(endpoint.max_concurrency)
        self._validators: dict[int, tuple[Mapping[str, Any], jsonschema.protocols.Validator, Check | None]] = {}
        headers = {"Content-Type": "application/json"}
        if endpoint.api_key:
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        self._pool = Pool(endpoint.base_url, headers)

    async def aclose(self) -> None:
        """Closes the idle connections; a later call opens new ones."""
        self._pool.close()

    async def _open(self, data: bytes) -> Response:
        """POST to the chat endpoint; the time-out applies to the connection attempt and to each read, as it
        always has (`stream=True` in `Pool.post` terms), so a long generation is not cut while bytes still come.
        Raises `TimeoutError` or `BackendConnectionError`."""
        return await self._pool.post(CHAT_PATH, data, self.policy.timeout_seconds, stream=True)

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        n: int = 1,
        stop: Sequence[str] | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        response_format: Mapping[str, Any] | None = None,
        priority: int = 0,
    ) -> Completion:
        """One completion; raises `CallFailed` once retries are exhausted or on a non-retryable error.
        `priority` orders it among the calls waiting for this endpoint's slots (higher first)."""
        body = self._body(messages, temperature, max_tokens, n, stop, top_p, seed, response_format)
        async with self._slots.held(priority):
            return await self._post_with_retries(body)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        priority: int = 0,
    ) -> AsyncIterator[dict[str, Any]]:
        """The chunks (`chat.completion.chunk` objects) of one streamed completion.

        No retries: once tokens have reached the caller a retry would repeat them. Failures before or during
        the stream raise `CallFailed`; the time-out applies to each read."""
        body = self._body(messages, temperature, max_tokens, 1, stop, top_p, seed, None)
        body["stream"] = True
        async with self._slots.held(priority):
            try:
                response = await self._open(_dumps(body))
                try:
                    if response.status != 200:
                        text = (await response.read())[:500].decode("utf-8", "replace")
                        status = response.status
                        raise CallFailed(self.endpoint.name, f"HTTP{status}", text, 1, status=status)
                    async for data in _sse_data(response.iter_any()):
                        if data == b"[DONE]":
                            return
                        yield orjson.loads(data)
                finally:
                    response.release()  # kept only when read to its end
            except TimeoutError as error:
                raise CallFailed(self.endpoint.name, "Timeout", repr(error), 1) from None
            except BackendConnectionError as error:
                raise CallFailed(self.endpoint.name, "ConnectionError", repr(error), 1) from None
            except orjson.JSONDecodeError as error:
                raise CallFailed(self.endpoint.name, "MalformedResponse", repr(error), 1, 200) from None

    def _body(
        self,
        messages: Sequence[Message],
        temperature: float | None,
        max_tokens: int | None,
        n: int,
        stop: Sequence[str] | None,
        top_p: float | None,
        seed: int | None,
        response_format: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.endpoint.model, "messages": list(messages), "n": n}
        optional = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "stop": list(stop) if stop else None,
            "top_p": top_p,
            "seed": seed,
            "response_format": dict(response_format) if response_format else None,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body

    async def chat_json(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any],
        *,
        schema_name: str = "reply",
        **sampling: Any,
    ) -> tuple[dict[str, Any], Completion]:
        """A completion constrained to `schema`; invalid replies are re-asked with the error, then raised as
        `InvalidJson` so the caller can record the sample."""
        validator, quick = self._validator(schema)
        response_format = {"type": "json_schema", "json_schema": {"name": schema_name, "schema": dict(schema)}}
        conversation = list(messages)
        attempts = 0
        for repair in range(self.policy.json_repair_attempts + 1):
            completion = await self.chat(conversation, response_format=response_format, **sampling)
            attempts += completion.attempts
            value, problem = parse_json_reply(completion.text, validator, quick)
            if value is not None:
                return value, completion
            if repair == self.policy.json_repair_attempts:
                break
            conversation = [
                *messages,
                {"role": "assistant", "content": completion.text},
                {
                    "role": "user",
                    "content": f"That reply is invalid: {problem}. Answer again with only the corrected JSON object.",
                },
            ]
        self.usage.failures += 1
        raise InvalidJson(self.endpoint.name, "InvalidJson", problem, attempts, last_text=completion.text)

    def _validator(self, schema: Mapping[str, Any]) -> tuple[jsonschema.protocols.Validator, Check | None]:
        """One validator (and quick check) per schema object: an engine passes the same few schemas on every
        call, and building a validator (and its first validation's compiled checks) is a large share of a call's
        CPU. Keyed by identity, with the schema held so the identity is not reused; callers must not mutate a
        schema."""
        cached = self._validators.get(id(schema))
        if cached is not None and cached[0] is schema:
            return cached[1], cached[2]
        if len(self._validators) >= 64:
            self._validators.clear()
        validator = jsonschema.Draft202012Validator(schema)
        quick = compile_check(schema)
        self._validators[id(schema)] = (schema, validator, quick)
        return validator, quick

    async def _post(self, data: bytes) -> tuple[int, str | None, bytes]:
        """(status, Retry-After, body) of one request; the connection goes back to the pool once read whole."""
        response = await self._open(data)
        try:
            return response.status, response.retry_after, await response.read()
        finally:
            response.release()

    async def _post_with_retries(self, body: dict[str, Any]) -> Completion:
        data = _dumps(body)
        last: CallFailed | None = None
        for attempt in range(self.policy.max_retries + 1):
            if attempt:
                self.usage.retries += 1
                await asyncio.sleep(self.policy.delay(attempt - 1, last.retry_after if last else None))
            started = time.perf_counter()
            try:
                status, retry_after, raw = await self._post(data)
            except TimeoutError as error:
                last = CallFailed(self.endpoint.name, "Timeout", repr(error), attempt + 1)
                continue
            except BackendConnectionError as error:
                last = CallFailed(self.endpoint.name, "ConnectionError", repr(error), attempt + 1)
                continue
            if status != 200:
                last = CallFailed(
                    self.endpoint.name,
                    f"HTTP{status}",
                    raw[:500].decode("utf-8", "replace"),
                    attempt + 1,
                    status=status,
                    retry_after=_seconds(retry_after),
                )
                if status in RETRYABLE_STATUS:
                    continue
                break
            try:
                completion = self._parse(orjson.loads(raw), time.perf_counter() - started, attempt + 1)
            except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
                last = CallFailed(self.endpoint.name, "MalformedResponse", repr(error), attempt + 1, 200)
                continue
            self.usage.requests += 1
            self.usage.prompt_tokens += completion.prompt_tokens
            self.usage.completion_tokens += completion.completion_tokens
            return completion
        assert last is not None
        self.usage.requests += 1
        self.usage.failures += 1
        raise last

    def _parse(self, payload: dict[str, Any], latency: float, attempts: int) -> Completion:
        choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        texts = [(c.get("message") or {}).get("content") or "" for c in choices]
        usage = payload.get("usage") or {}
        return Completion(
            text=texts[0],
            texts=texts,
            model=self.endpoint.name,
            finish_reason=choices[0].get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            latency_s=latency,
            attempts=attempts,
        )


def _seconds(header: str | None) -> float | None:
    """A Retry-After header in its delta-seconds form (the HTTP-date form is treated as absent)."""
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def _dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body, default=_plain)


def _plain(value: object) -> object:
    """orjson's fallback for the read-only mappings and sequences a caller may pass as messages or schema."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


async def _sse_data(pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The `data:` payloads of a server-sent event stream, whatever the chunking."""
    pending = b""
    async for chunk in pieces:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:") and (data := line[5:].strip()):
                yield data
    if pending.startswith(b"data:") and (data := pending[5:].strip()):
        yield data


class ClientPool:
    """One ChatClient per endpoint, each with its own keep-alive connections; `async with` closes them."""

    def __init__(self, endpoints: Sequence[ModelEndpoint], policy: RetryPolicy | None = None) -> None:
        self.clients = {e.name: ChatClient(e, policy) for e in endpoints}

    def __getitem__(self, name: str) -> ChatClient:
        return self.clients[name]

    def __iter__(self) -> Iterator[ChatClient]:
        return iter(self.clients.values())

    @property
    def names(self) -> list[str]:
        return list(self.clients)

    def usage(self) -> dict[str, TokenUsage]:
        return {name: client.usage for name, client in self.clients.items()}

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for client in self.clients.values():
            await client.aclose()
