"""Every OpenAI chat field reaches the chosen backend unchanged, and the reply has the shape the field asks for.

The table: one test per field, through the official `openai` client, on both router paths: pass-through
(strategy single: the body is forwarded as bytes) and voting (self-consistency over three samples: each
sample's body is the client's fields plus the backend's model name). The backend is the simulated server
with a responder that answers from what it received (tool calls for `tools`, JSON for `response_format`,
`logprobs` when asked), so "reached the backend" is read from the body it recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest

from quorum.llm.simulated import SimReply, SimRequest, SimulatedBackend
from quorum.routing.engine import sample_seeds
from tests.routing.conftest import router_spec, serving

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CITY_SCHEMA = {
    "name": "city",
    "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ARGUMENT_ORDERS = ('{"city": "Paris", "unit": "c"}', '{"unit":"c","city":"Paris"}', '{ "city":"Paris" , "unit":"c" }')


def fielded_responder(request: SimRequest) -> SimReply:
    """Answers from the fields it received; the index varies key order so that votes need normalising."""
    body = request.body
    if body.get("tools") and body.get("tool_choice") != "none":
        name = body["tools"][0]["function"]["name"]
        arguments = ARGUMENT_ORDERS[request.index % 3]
        return SimReply(
            tool_calls=[
                {"id": f"call_{request.index}", "type": "function", "function": {"name": name, "arguments": arguments}}
            ]
        )
    response_format = body.get("response_format") or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        return SimReply(text=['{"city": "Paris", "rank": 1}', '{"rank": 1.0, "city": "Paris"}'][request.index % 2])
    logprobs = None
    if body.get("logprobs"):
        top = [{"token": "ok", "logprob": -0.1, "bytes": [111, 107]}] * int(body.get("top_logprobs") or 0)
        logprobs = {"content": [{"token": "ok", "logprob": -0.1, "bytes": [111, 107], "top_logprobs": top}]}
    return SimReply(text="ok " + " ".join(sorted(body)), logprobs=logprobs)


def expected_rule(sent: dict[str, Any]) -> str:
    """Tools vote on calls, structured outputs on values; open text without an embedder: the first sample."""
    if "tools" in sent:
        return "tool-calls"
    return "json-value" if "response_format" in sent else "first-sample"


def _tool_call_made(completion: Any) -> bool:
    call = completion.choices[0].message.tool_calls[0]
    return call.function.name == "get_weather" and json.loads(call.function.arguments)["city"] == "Paris"


def _json_content(completion: Any) -> bool:
    return json.loads(completion.choices[0].message.content) == {"city": "Paris", "rank": 1}


def _logprobs(completion: Any) -> bool:
    return len(completion.choices[0].logprobs.content[0].top_logprobs) == 2


def _text(completion: Any) -> bool:
    return completion.choices[0].message.content.startswith("ok ")


FIELDS: dict[str, tuple[dict[str, Any], Callable[[Any], bool]]] = {
    "tools+tool_choice": ({"tools": [WEATHER_TOOL], "tool_choice": "auto"}, _tool_call_made),
    "tool_choice=function": (
        {"tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        _tool_call_made,
    ),
    "response_format=json_object": ({"response_format": {"type": "json_object"}}, _json_content),
    "response_format=json_schema": (
        {"response_format": {"type": "json_schema", "json_schema": CITY_SCHEMA}},
        _json_content,
    ),
    "logprobs+top_logprobs": ({"logprobs": True, "top_logprobs": 2}, _logprobs),
    "stop": ({"stop": ["\n\n", "END"]}, _text),
    "seed": ({"seed": 1234}, _text),
    "presence_penalty": ({"presence_penalty": 0.5}, _text),
    "frequency_penalty": ({"frequency_penalty": -0.25}, _text),
    "user": ({"user": "user-42"}, _text),
    "max_completion_tokens": ({"max_completion_tokens": 17}, _text),
}
PATHS = {
    "pass-through": {"voting": {"strategy": "single", "samples": 1}},
    "voting": {"voting": {"strategy": "self-consistency", "samples": 3}},
}


@pytest.fixture(params=list(PATHS))
async def gateway(request):
    async with SimulatedBackend(fielded_responder, models=["solo"]) as sim:
        spec = router_spec({"solo": sim.base_url}, **PATHS[request.param])
        async with serving(spec) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            yield request.param, client, sim
            await client.close()


@pytest.mark.parametrize("field", list(FIELDS))
async def test_field_reaches_the_backend_unchanged_and_the_reply_has_its_shape(gateway, field):
    path, client, sim = gateway
    sent, shaped = FIELDS[field]
    raw = await client.chat.completions.with_raw_response.create(
        model="ensemble", messages=[{"role": "user", "content": "Weather in Paris?"}], **sent
    )
    completion = raw.parse()
    assert sim.requests, "the backend was never called"
    for received in sim.requests:
        expected = dict(sent)
        if field == "seed" and path == "voting":  # each voting sample gets its own seed, derived from the client's
            expected = {"seed": received.body["seed"]}
        assert {k: received.body.get(k) for k in sent} == expected  # unchanged, value for value
        assert received.model == "solo"  # the backend's own model name replaced the ensemble's
    if field == "seed" and path == "voting":
        assert sorted(r.body["seed"] for r in sim.requests) == sorted(sample_seeds(1234, "solo", 3))
    assert shaped(completion)
    assert len(sim.requests) == (1 if path == "pass-through" else 3)
    assert raw.headers["x-quorum-rule"] == (expected_rule(sent) if path == "voting" else "pass-through")
    if path == "voting":
        assert completion.model_extra["quorum"]["rule"] == expected_rule(sent)


async def test_stream_options_reach_the_backend_and_usage_comes_back(gateway):
    path, client, sim = gateway
    stream = await client.chat.completions.create(
        model="ensemble",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    usage = [c.usage for c in chunks if c.usage is not None]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(usage) == 1 and usage[0].completion_tokens > 0 and chunks[-1].usage is not None
    assert text.startswith("ok ")
    if path == "pass-through":
        assert sim.requests[0].body["stream_options"] == {"include_usage": True}
        assert sim.requests[0].body["stream"] is True
    else:  # the vote needs whole samples: they are drawn unstreamed, and the stream starts after the vote
        assert len(sim.requests) == 3
        assert all("stream_options" not in r.body and not r.body.get("stream") for r in sim.requests)


async def test_tool_calls_vote_on_the_normalised_call():
    async with SimulatedBackend(fielded_responder) as sim:
        spec = router_spec({"solo": sim.base_url}, voting={"strategy": "self-consistency", "samples": 3})
        async with serving(spec) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            completion = await client.chat.completions.create(
                model="ensemble", messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER_TOOL]
            )
            await client.close()
    audit = completion.model_extra["quorum"]
    assert audit["rule"] == "tool-calls"
    # three argument spellings of one call are one vote of three
    assert list(audit["votes"].values()) == [3] and audit["agreement"] == 1.0
    assert json.loads(next(iter(audit["votes"]))) == {
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}]
    }
    assert completion.choices[0].finish_reason == "tool_calls" and _tool_call_made(completion)


async def test_structured_outputs_vote_on_the_canonical_json_value_and_fall_back_to_the_first_sample():
    replies = iter(['{"a": 1, "b": [1, 2]}', "not json", '{"b":[1.0,2],"a":1}', "nope", "still not", "no"])

    def respond(_: SimRequest) -> SimReply:
        return SimReply(text=next(replies))

    async with SimulatedBackend(respond) as sim:
        spec = router_spec({"solo": sim.base_url}, voting={"strategy": "self-consistency", "samples": 3})
        async with serving(spec) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            voted = await client.chat.completions.create(
                model="ensemble", messages=[{"role": "user", "content": "q"}], response_format={"type": "json_object"}
            )
            fallback = await client.chat.completions.create(
                model="ensemble", messages=[{"role": "user", "content": "q"}], response_format={"type": "json_object"}
            )
            await client.close()
    audit = voted.model_extra["quorum"]
    assert audit["rule"] == "json-value" and audit["votes"] == {'{"a":1,"b":[1,2]}': 2}
    assert json.loads(voted.choices[0].message.content) == {"a": 1, "b": [1, 2]}
    assert fallback.model_extra["quorum"]["rule"] == "first-sample"  # nothing parsed: the top model's first sample
    assert fallback.choices[0].message.content in {"nope", "still not", "no"}
    assert fallback.model_extra["quorum"]["chosen"] == {"model": "solo", "sample": 0}
