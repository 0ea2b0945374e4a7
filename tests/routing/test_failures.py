"""Failures never crash, hang or leak 5xx: time-outs, dead backends, circuit breaking, bad input, fuzzing."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quorum.llm.local import free_port
from quorum.llm.simulated import SimReply, SimulatedBackend
from tests.routing.conftest import router_spec, serving

TIMEOUT = 1.0


def _answer(text: str = "The answer is \\boxed{7}."):
    return lambda _: SimReply(text=text)


def _spec(models: dict[str, str], **overrides):
    router = {"backendTimeoutSeconds": TIMEOUT, "circuitBreaker": {"failureThreshold": 2, "resetSeconds": 60}}
    return router_spec(models, router=router, **overrides)


async def test_a_hanging_backend_delays_the_answer_by_at_most_its_timeout():
    async with (
        SimulatedBackend(lambda _: SimReply(hang=True)) as hanging,
        SimulatedBackend(_answer()) as healthy,
        serving(_spec({"hangs": hanging.base_url, "works": healthy.base_url})) as router,
    ):
        client = openai.AsyncOpenAI(base_url=router.base_url, api_key="x", max_retries=0)
        started = time.perf_counter()
        completion = await client.chat.completions.create(model="ensemble", messages=[{"role": "user", "content": "q"}])
        elapsed = time.perf_counter() - started
        await client.close()
    assert completion.model_extra["quorum"]["models"] == ["works"]
    assert completion.model_extra["quorum"]["fallbacks"] == ["hangs"]
    assert TIMEOUT <= elapsed < TIMEOUT + 2.0


async def test_a_dead_backend_is_skipped_and_then_left_alone_by_its_circuit_breaker():
    dead = f"http://127.0.0.1:{free_port()}/v1"
    async with (
        SimulatedBackend(_answer()) as healthy,
        serving(_spec({"dead": dead, "works": healthy.base_url})) as router,
        httpx.AsyncClient(base_url=router.base_url, timeout=10) as http,
    ):
        body = {"model": "ensemble", "messages": [{"role": "user", "content": "q"}]}
        first = await http.post("/chat/completions", json=body)
        second = await http.post("/chat/completions", json=body)
        ready = await http.get(router.base_url.removesuffix("/v1") + "/readyz")
        metrics = (await http.get(router.base_url.removesuffix("/v1") + "/metrics")).text
    assert first.status_code == second.status_code == 200
    assert first.json()["quorum"]["fallbacks"] == ["dead"]
    assert second.json()["quorum"]["fallbacks"] == []  # the circuit is open: "dead" is no longer tried
    assert ready.status_code == 200 and ready.json()["backends"] == {"dead": False, "works": True}
    assert 'quorum_router_backend_available{model="dead"} 0.0' in metrics
    assert 'quorum_router_backend_errors_total{model="dead",reason="ConnectionError"}' in metrics


async def test_all_backends_dead_gives_503_and_not_ready():
    dead = {f"dead{i}": f"http://127.0.0.1:{free_port()}/v1" for i in range(2)}
    async with serving(_spec(dead)) as router:
        client = openai.AsyncOpenAI(base_url=router.base_url, api_key="x", max_retries=0)
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as error:
                await client.chat.completions.create(model="ensemble", messages=[{"role": "user", "content": "q"}])
            assert error.value.status_code == 503
            assert error.value.body["type"] == "service_unavailable"
        await client.close()
        async with httpx.AsyncClient() as http:
            assert (await http.get(router.base_url.removesuffix("/v1") + "/readyz")).status_code == 503


async def test_quorum_vote_survives_some_failed_samples():
    calls = iter(range(1000))

    def flaky(_):
        return SimReply(status=500) if next(calls) % 3 == 0 else SimReply(text="\\boxed{4}")

    async with (
        SimulatedBackend(flaky) as sim,
        serving(_spec({"flaky": sim.base_url})) as router,
        httpx.AsyncClient(timeout=10) as http,
    ):
        body = {"model": "ensemble", "messages": [{"role": "user", "content": "2+2"}], "quorum": {"task": "arithmetic"}}
        response = await http.post(router.base_url + "/chat/completions", json=body)
    audit = response.json()["quorum"]
    assert response.status_code == 200
    assert audit["samples"] == {"requested": 3, "received": 2}
    assert audit["votes"] == {"4": 2}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"messages": [{"role": "user", "content": "q"}]}).encode(),
        json.dumps({"model": "ensemble", "messages": "hello"}).encode(),
        json.dumps({"model": "ensemble", "messages": [{"role": "wizard", "content": "q"}]}).encode(),
        json.dumps({"model": "ensemble", "messages": [{"role": "user", "content": "q"}], "n": 0}).encode(),
        json.dumps({"model": "ensemble", "messages": [{"role": "user", "content": "q"}], "max_tokens": -1}).encode(),
        json.dumps({"model": "ensemble", "messages": [{"role": "user", "content": "q"}], "stop": ["a"] * 5}).encode(),
    ],
)
async def test_malformed_requests_get_400_in_openai_shape(body):
    async with (
        SimulatedBackend(_answer()) as sim,
        serving(_spec({"m": sim.base_url})) as router,
        httpx.AsyncClient() as http,
    ):
        response = await http.post(
            router.base_url + "/chat/completions", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert not sim.requests


async def test_many_concurrent_requests_with_one_hanging_backend_all_complete():
    async with (
        SimulatedBackend(lambda _: SimReply(hang=True)) as hanging,
        SimulatedBackend(_answer(), latency_s=0.01) as healthy,
    ):
        spec = _spec({"hangs": hanging.base_url, "works": healthy.base_url}, voting={"samples": 1})
        # aiohttp as the load generator: httpx's own pool would be the bottleneck at 300 concurrent requests
        async with serving(spec) as router, aiohttp.ClientSession() as http:
            body = {"model": "ensemble", "messages": [{"role": "user", "content": "q"}]}

            async def call() -> tuple[int, str]:
                async with http.post(router.base_url + "/chat/completions", json=body) as response:
                    return response.status, await response.text()

            started = time.perf_counter()
            responses = await asyncio.gather(*(call() for _ in range(300)))
            elapsed = time.perf_counter() - started
    assert [status for status, _ in responses] == [200] * 300, {text for status, text in responses if status != 200}
    assert elapsed < 20


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "robot", ""]), "content": st.text(max_size=30) | JSON}
)
REQUEST = st.fixed_dictionaries(
    {},
    optional={
        "model": st.text(max_size=10) | JSON,
        "messages": st.lists(MESSAGE, max_size=3) | JSON,
        "temperature": st.floats(-1, 3) | JSON,
        "max_tokens": st.integers(-5, 5000) | JSON,
        "n": st.integers(-1, 70) | JSON,
        "stop": st.lists(st.text(max_size=5), max_size=6) | JSON,
        "stream": st.booleans() | JSON,
        "quorum": st.fixed_dictionaries({}, optional={"task": st.text(max_size=10)}) | JSON,
    },
)


@pytest.fixture(scope="module")
def fuzz_router():
    """Router + backend in a background loop so hypothesis can drive many examples against one server."""
    loop = asyncio.new_event_loop()
    sim = SimulatedBackend(_answer(), record=False)
    sim.start_in_thread()
    context = serving(_spec({"m": sim.base_url}, voting={"samples": 2}))
    import threading

    holder = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["router"] = loop.run_until_complete(context.__aenter__())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while "router" not in holder:
        time.sleep(0.01)
    yield holder["router"].base_url
    asyncio.run_coroutine_threadsafe(context.__aexit__(None, None, None), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    sim.stop_thread()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=REQUEST)
def test_fuzzed_requests_never_get_a_5xx(fuzz_router, body):
    # Sent as Python's json writes it, NaN and Infinity literals included: the router must refuse them cleanly.
    content = json.dumps(body)
    response = httpx.post(
        fuzz_router + "/chat/completions", content=content, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code in (200, 400, 404), response.text
    if response.status_code == 404:  # a well-formed request naming a model the router does not serve
        assert response.json()["error"]["code"] == "model_not_found", response.text
    if response.status_code in (400, 404):
        assert response.json()["error"]["type"] == "invalid_request_error"
