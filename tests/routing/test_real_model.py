"""The router in front of the real packaged tiny model (SmolLM2 via xllamacpp), driven by the openai client."""

from __future__ import annotations

import json

import openai
import pytest

from quorum.llm.local import LocalModelServer
from tests.routing.conftest import router_spec, serving

pytestmark = [pytest.mark.model, pytest.mark.timeout(600)]


async def test_openai_client_gets_a_voted_answer_from_the_tiny_model():
    with LocalModelServer(parallel=2) as server:
        spec = router_spec({"smollm": server.base_url}, voting={"samples": 2, "temperature": 0.7})
        async with serving(spec) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            completion = await client.chat.completions.create(
                model="ensemble",
                messages=[{"role": "user", "content": "What is 2 plus 3? Put the number in \\boxed{}."}],
                max_tokens=24,
                extra_body={"quorum": {"task": "arithmetic"}},
            )
            await client.close()
    audit = completion.model_extra["quorum"]
    assert completion.choices[0].message.content.strip()
    assert audit["models"] == ["smollm"] and audit["samples"] == {"requested": 2, "received": 2}
    assert audit["task"] == "arithmetic" and completion.usage.completion_tokens > 0


CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
}


async def test_response_format_reaches_the_tiny_model_on_both_router_paths():
    """json_schema through pass-through (strategy single) and json_object through a vote on the JSON value."""
    with LocalModelServer(parallel=2) as server:
        patient = {"backendTimeoutSeconds": 400}  # a CPU model on a busy machine: tens of seconds per answer
        single = router_spec({"smollm": server.base_url}, voting={"strategy": "single", "samples": 1}, router=patient)
        voted = router_spec({"smollm": server.base_url}, voting={"samples": 2, "temperature": 0.7}, router=patient)
        question = [{"role": "user", "content": "Name the capital of France and its country as JSON."}]
        async with serving(single) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            schema = await client.chat.completions.with_raw_response.create(
                model="ensemble",
                messages=question,
                max_tokens=64,
                response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA}},
            )
            await client.close()
        async with serving(voted) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            # A seeded request (each sample's seed derived from it): SmolLM2 under a bare json_object grammar
            # loops until max_tokens on about 3 seeds in 10, and a vote where both samples did so falls back
            # to the first sample. Client seed 2 derives two seeds that both close their JSON.
            value = await client.chat.completions.create(
                model="ensemble", messages=question, max_tokens=64, response_format={"type": "json_object"}, seed=2
            )
            await client.close()
    assert schema.headers["x-quorum-rule"] == "pass-through"
    constrained = json.loads(schema.parse().choices[0].message.content)  # grammar-constrained by the server
    assert set(constrained) == {"city", "country"} and all(isinstance(v, str) for v in constrained.values())
    audit = value.model_extra["quorum"]
    assert audit["samples"] == {"requested": 2, "received": 2}
    assert audit["rule"] == "json-value"  # the server constrains json_object output, so the samples vote on it
    assert isinstance(json.loads(value.choices[0].message.content), dict)
