"""ChatClient against the simulated server over real HTTP: retries, time-outs, JSON repair, limits, usage; and
against raw servers: keep-alive reuse, dropped connections, TLS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from quorum.llm import CallFailed, ChatClient, ClientPool, InvalidJson, ModelEndpoint, RetryPolicy
from quorum.llm.simulated import SimReply, SimRequest, SimulatedBackend
from tests.llm.raw import Script, raw_server, read_request, server_tls

FAST = RetryPolicy(timeout_seconds=2.0, max_retries=2, backoff_seconds=0.01, max_backoff_seconds=0.05)
USER = [{"role": "user", "content": "hi"}]


def endpoint(sim: SimulatedBackend, **overrides: object) -> ModelEndpoint:
    return ModelEndpoint(**{"name": "m", "base_url": sim.base_url, "model": "sim", **overrides})  # type: ignore[arg-type]


async def test_completion_carries_text_and_token_usage() -> None:
    async with SimulatedBackend(lambda r: SimReply(text="one two three")) as sim:
        client = ChatClient(endpoint(sim), FAST)
        completion = await client.chat(USER, temperature=0.3, max_tokens=7, stop=["\n"])
        await client.aclose()
    assert completion.text == "one two three"
    assert completion.completion_tokens == 3
    assert client.usage.requests == 1 and client.usage.completion_tokens == 3
    sent = sim.requests[0].body
    assert (sent["temperature"], sent["max_tokens"], sent["stop"]) == (0.3, 7, ["\n"])


async def test_n_choices_come_back_in_order() -> None:
    async with SimulatedBackend(lambda r: SimReply(texts=["a", "b", "c"])) as sim:
        client = ChatClient(endpoint(sim), FAST)
        completion = await client.chat(USER, n=3)
        await client.aclose()
    assert completion.texts == ["a", "b", "c"]


async def test_server_errors_are_retried_then_succeed() -> None:
    def flaky(request: SimRequest) -> SimReply:
        return SimReply(status=500) if request.index < 2 else SimReply(text="ok")

    async with SimulatedBackend(flaky) as sim:
        client = ChatClient(endpoint(sim), FAST)
        completion = await client.chat(USER)
        await client.aclose()
    assert completion.text == "ok" and completion.attempts == 3
    assert client.usage.retries == 2 and client.usage.failures == 0


async def test_persistent_errors_raise_call_failed_after_all_retries() -> None:
    async with SimulatedBackend(lambda r: SimReply(status=503, text="overloaded")) as sim:
        client = ChatClient(endpoint(sim), FAST)
        with pytest.raises(CallFailed) as caught:
            await client.chat(USER)
        await client.aclose()
    assert caught.value.reason == "HTTP503" and caught.value.attempts == FAST.max_retries + 1
    assert len(sim.requests) == FAST.max_retries + 1
    assert client.usage.failures == 1


async def test_client_errors_are_not_retried() -> None:
    async with SimulatedBackend(lambda r: SimReply(status=400, text="bad")) as sim:
        client = ChatClient(endpoint(sim), FAST)
        with pytest.raises(CallFailed, match="HTTP400"):
            await client.chat(USER)
        await client.aclose()
    assert len(sim.requests) == 1


async def test_a_hanging_server_times_out_and_is_recorded() -> None:
    policy = RetryPolicy(timeout_seconds=0.2, max_retries=1, backoff_seconds=0.01)
    async with SimulatedBackend(lambda r: SimReply(hang=True)) as sim:
        client = ChatClient(endpoint(sim), policy)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(CallFailed) as caught:
            await client.chat(USER)
        elapsed = loop.time() - started
        await client.aclose()
    assert caught.value.reason == "Timeout"
    assert elapsed < 2.0


async def test_invalid_json_is_repaired_with_the_error_in_the_conversation() -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}

    def sloppy(request: SimRequest) -> SimReply:
        if request.index == 0:
            return SimReply(text="Sure! Here it is: {score: nine}")
        return SimReply(text='```json\n{"score": 9}\n```')

    async with SimulatedBackend(sloppy) as sim:
        client = ChatClient(endpoint(sim), FAST)
        value, _ = await client.chat_json(USER, schema, schema_name="review")
        await client.aclose()
    assert value == {"score": 9}
    repair = sim.requests[1].messages
    assert repair[-1]["role"] == "user" and "invalid" in repair[-1]["content"]
    assert sim.requests[0].schema_name == "review"


async def test_json_that_never_fits_the_schema_raises_invalid_json() -> None:
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}
    async with SimulatedBackend(lambda r: SimReply(text=json.dumps({"score": "high"}))) as sim:
        client = ChatClient(endpoint(sim), FAST)
        with pytest.raises(InvalidJson) as caught:
            await client.chat_json(USER, schema)
        await client.aclose()
    assert "score" in caught.value.message and caught.value.last_text
    assert len(sim.requests) == FAST.json_repair_attempts + 1


async def test_concurrency_per_endpoint_is_capped() -> None:
    async with (
        SimulatedBackend(lambda r: SimReply(text="x"), latency_s=0.05) as sim,
        ClientPool([endpoint(sim, max_concurrency=3)], FAST) as pool,
    ):
        await asyncio.gather(*(pool["m"].chat(USER) for _ in range(12)))
    assert sim.max_in_flight == 3


async def test_waiting_calls_reach_the_server_by_priority_and_priority_is_not_sent() -> None:
    async with (
        SimulatedBackend(lambda r: SimReply(text="x"), latency_s=0.05) as sim,
        ClientPool([endpoint(sim, max_concurrency=1)], FAST) as pool,
    ):
        client = pool["m"]
        first = asyncio.ensure_future(client.chat([{"role": "user", "content": "first"}]))
        await asyncio.sleep(0.01)  # holds the one slot
        queued = [("late-stage", 2), ("early", 0), ("middle", 1), ("early-2", 0), ("late-2", 2)]
        await asyncio.gather(
            first, *(client.chat([{"role": "user", "content": name}], priority=p) for name, p in queued)
        )
    served = [r.messages[0]["content"] for r in sim.requests]
    assert served == ["first", "late-stage", "late-2", "middle", "early", "early-2"]
    assert all("priority" not in r.body for r in sim.requests)


async def test_bearer_token_is_sent_when_configured() -> None:
    async with SimulatedBackend(lambda r: SimReply(text="x")) as sim:
        client = ChatClient(endpoint(sim, api_key="s3cret"), FAST)
        await client.chat(USER)
        await client.aclose()
    assert sim.requests[0].headers["Authorization"] == "Bearer s3cret"


async def test_a_stream_yields_every_chunk_of_the_completion() -> None:
    async with SimulatedBackend(lambda r: SimReply(text="one two three")) as sim:
        client = ChatClient(endpoint(sim), FAST)
        chunks = [chunk async for chunk in client.stream(USER, max_tokens=5)]
        await client.aclose()
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "one two three"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert sim.requests[0].body["stream"] is True


async def test_a_stream_refused_by_the_server_raises_call_failed_with_its_status() -> None:
    async with SimulatedBackend(lambda r: SimReply(status=503, text="busy")) as sim:
        client = ChatClient(endpoint(sim), FAST)
        with pytest.raises(CallFailed) as caught:
            _ = [chunk async for chunk in client.stream(USER)]
        await client.aclose()
    assert (caught.value.reason, caught.value.status) == ("HTTP503", 503)
    assert "busy" in caught.value.message


async def test_a_servers_retry_after_is_read_and_kept_on_the_failure() -> None:
    async with SimulatedBackend(lambda r: SimReply(status=429, text="slow down", headers={"Retry-After": "7"})) as sim:
        client = ChatClient(endpoint(sim), FAST)
        with pytest.raises(CallFailed) as caught:
            await client.chat(USER)
        await client.aclose()
    assert (caught.value.reason, caught.value.retry_after, caught.value.attempts) == ("HTTP429", 7.0, 3)


def chat_answer(text: str) -> bytes:
    """A whole chat completion as a server sends it, framed by Content-Length."""
    body = json.dumps(
        {
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1},
        }
    ).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def answering_each(*answers: bytes | None) -> Script:
    """Answers requests in turn with `answers`, on whichever connection they come (the last one repeats once the
    others are used); None drops the connection instead of answering."""
    queue = list(answers)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if answer is None:
                return  # the server closes the connection mid-call
            writer.write(answer)
            await writer.drain()

    return script


async def test_calls_in_turn_share_one_keep_alive_connection() -> None:
    async with raw_server(answering_each(*(chat_answer(f"a{i}") for i in range(3)))) as (url, accepted):
        client = ChatClient(ModelEndpoint("m", url, "sim"), FAST)
        texts = [(await client.chat(USER)).text for _ in range(3)]
        await client.aclose()
    assert texts == ["a0", "a1", "a2"] and len(accepted) == 1


async def test_a_connection_dropped_mid_call_is_retried_on_a_new_one() -> None:
    async with raw_server(answering_each(None, chat_answer("ok"))) as (url, accepted):
        client = ChatClient(ModelEndpoint("m", url, "sim"), FAST)
        completion = await client.chat(USER)
        await client.aclose()
    assert (completion.text, completion.attempts, client.usage.retries) == ("ok", 2, 1)
    assert len(accepted) == 2


async def test_a_server_that_keeps_dropping_calls_is_recorded_as_a_connection_error() -> None:
    async with raw_server(answering_each(None)) as (url, accepted):
        client = ChatClient(ModelEndpoint("m", url, "sim"), FAST)
        with pytest.raises(CallFailed) as caught:
            await client.chat(USER)
        await client.aclose()
    assert (caught.value.reason, caught.value.attempts) == ("ConnectionError", FAST.max_retries + 1)
    assert (client.usage.requests, client.usage.failures, len(accepted)) == (1, 1, FAST.max_retries + 1)


async def test_an_https_endpoint_is_verified_against_the_ca_in_ssl_cert_file(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    async with raw_server(answering_each(chat_answer("secure")), tls=server_tls(certificate)) as (url, _):
        client = ChatClient(ModelEndpoint("m", url, "sim", api_key="s3cret"), FAST)
        completion = await client.chat(USER)
        await client.aclose()
    assert url.startswith("https://") and completion.text == "secure"


async def test_an_https_endpoint_with_an_untrusted_certificate_fails_without_being_dropped(
    certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    async with raw_server(answering_each(chat_answer("never")), tls=server_tls(certificate)) as (url, _):
        client = ChatClient(ModelEndpoint("m", url, "sim"), FAST)
        with pytest.raises(CallFailed, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await client.chat(USER)
        await client.aclose()
    assert caught.value.reason == "ConnectionError" and client.usage.failures == 1
