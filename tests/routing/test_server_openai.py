"""The official `openai` client talks to the router: completions, `n`, streaming, errors, auth, audit trail."""

from __future__ import annotations

from contextlib import AsyncExitStack

import openai
import pytest

from quorum.llm.simulated import SimReply, SimulatedBackend
from tests.routing.conftest import router_spec, serving
from tests.routing.pool import questions, responder_for

CAPITAL_QUESTION = next(q for q in questions() if q["topic"] == "capitals")
SUM_QUESTION = next(q for q in questions() if q["topic"] == "arithmetic")


@pytest.fixture
async def pool_router(full_pool, embedder):
    """The calibrated three-model pool behind a router, with fresh simulated backends."""
    _, _, artifact, _ = full_pool
    async with AsyncExitStack() as stack:
        sims = {
            m: await stack.enter_async_context(SimulatedBackend(responder_for(m), models=[m]))
            for m in ("alpha", "beta", "gamma")
        }
        spec = router_spec({m: s.base_url for m, s in sims.items()})
        router = await stack.enter_async_context(serving(spec, artifact=artifact, embedder=embedder, token="s3cret"))
        client = openai.AsyncOpenAI(base_url=router.base_url, api_key="s3cret", max_retries=0)
        yield client, sims, router
        await client.close()


async def test_chat_completion_is_routed_to_the_topic_specialist_and_audited(pool_router):
    client, sims, _ = pool_router
    raw = await client.chat.completions.with_raw_response.create(
        model="ensemble", messages=[{"role": "user", "content": CAPITAL_QUESTION["question"]}], max_tokens=32
    )
    completion = raw.parse()
    assert raw.headers["x-quorum-strategy"] == "self-consistency"
    assert raw.headers["x-quorum-models"].split(",")[0] == "beta"
    assert raw.headers["x-quorum-cluster"].isdigit()
    audit = completion.model_extra["quorum"]
    assert audit["models"][0] == "beta" and audit["task"] == "trivia"
    assert sum(audit["votes"].values()) == 3  # voting.samples
    assert completion.choices[0].message.content.startswith("[beta]")
    assert len(sims["beta"].requests) == 3 and not sims["alpha"].requests
    assert all(r.max_tokens == 32 for r in sims["beta"].requests)

    math = await client.chat.completions.create(
        model="ensemble", messages=[{"role": "user", "content": SUM_QUESTION["question"]}], temperature=0.3
    )
    assert math.model_extra["quorum"]["models"][0] == "alpha"
    assert {r.temperature for r in sims["alpha"].requests} == {0.3}


async def test_n_returns_that_many_choices_and_stop_is_passed_on(pool_router):
    client, sims, _ = pool_router
    completion = await client.chat.completions.create(
        model="ensemble", messages=[{"role": "user", "content": SUM_QUESTION["question"]}], n=5, stop=["\n\n"]
    )
    assert [c.index for c in completion.choices] == [0, 1, 2, 3, 4]
    assert len(sims["alpha"].requests) == 5  # n above voting.samples draws n samples
    assert all(r.stop == ["\n\n"] for r in sims["alpha"].requests)


async def test_multi_turn_conversation_reaches_the_backend_whole(pool_router):
    client, sims, _ = pool_router
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi."},
        {"role": "user", "content": CAPITAL_QUESTION["question"]},
    ]
    await client.chat.completions.create(model="ensemble", messages=messages)
    sent = [r for s in sims.values() for r in s.requests]
    assert sent and all(r.messages == messages for r in sent)


async def test_missing_or_wrong_token_is_401_and_bad_request_is_400(pool_router):
    _, _, router = pool_router
    for key in ("wrong", ""):
        anonymous = openai.AsyncOpenAI(base_url=router.base_url, api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await anonymous.chat.completions.create(model="ensemble", messages=[{"role": "user", "content": "hi"}])
        await anonymous.close()
    client = openai.AsyncOpenAI(base_url=router.base_url, api_key="s3cret", max_retries=0)
    with pytest.raises(openai.BadRequestError) as error:
        await client.chat.completions.create(model="ensemble", messages=[])
    assert error.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(
            model="ensemble", messages=[{"role": "user", "content": "hi"}], temperature=5
        )
    await client.close()


async def test_models_lists_the_ensemble_and_its_members(pool_router):
    client, _, _ = pool_router
    models = await client.models.list()
    assert [m.id for m in models.data] == ["ensemble", "alpha", "beta", "gamma"]


async def test_strategy_single_streams_the_backend_tokens():
    async with SimulatedBackend(lambda _: SimReply(text="one two three")) as sim:
        spec = router_spec({"solo": sim.base_url}, voting={"strategy": "single", "samples": 1})
        async with serving(spec) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            stream = await client.chat.completions.create(
                model="ensemble", messages=[{"role": "user", "content": "count"}], stream=True
            )
            pieces = [
                chunk.choices[0].delta.content
                async for chunk in stream
                if chunk.choices and chunk.choices[0].delta.content
            ]
            await client.close()
    assert len(pieces) == 3 and "".join(pieces) == "one two three"
    assert sim.requests[0].body["stream"] is True


async def test_completions_are_routed_on_the_prompt_text_and_voted(pool_router):
    client, sims, _ = pool_router
    completion = await client.completions.create(model="ensemble", prompt=CAPITAL_QUESTION["question"], max_tokens=24)
    audit = completion.model_extra["quorum"]
    assert completion.object == "text_completion" and completion.choices[0].text.startswith("[beta]")
    assert audit["models"][0] == "beta" and audit["task"] == "trivia" and audit["rule"] == "majority"
    assert sum(audit["votes"].values()) == 3 and completion.usage.completion_tokens > 0
    assert len(sims["beta"].requests) == 3 and not sims["alpha"].requests
    assert all(
        r.endpoint == "completions" and r.body["prompt"] == CAPITAL_QUESTION["question"] for r in sims["beta"].requests
    )
    assert all(r.body["max_tokens"] == 24 and "messages" not in r.body for r in sims["beta"].requests)


async def test_completions_pass_through_and_stream_with_usage():
    async with SimulatedBackend(lambda _: SimReply(text="once upon a time")) as sim:
        spec = router_spec({"solo": sim.base_url}, voting={"strategy": "single", "samples": 1})
        async with serving(spec) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            whole = await client.completions.create(model="ensemble", prompt="Tell me a story", echo=False, suffix="!")
            stream = await client.completions.create(
                model="solo", prompt="Tell me a story", stream=True, stream_options={"include_usage": True}
            )
            chunks = [chunk async for chunk in stream]
            await client.close()
    assert whole.choices[0].text == "once upon a time"
    assert sim.requests[0].body == {"model": "solo", "prompt": "Tell me a story", "echo": False, "suffix": "!"}
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "once upon a time"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


async def test_unknown_models_get_an_openai_shaped_404_and_members_can_be_retrieved(pool_router):
    client, sims, _ = pool_router
    with pytest.raises(openai.NotFoundError) as chat:
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError) as legacy:
        await client.completions.create(model="gpt-4o", prompt="hi")
    with pytest.raises(openai.NotFoundError) as card:
        await client.models.retrieve("gpt-4o")
    for error in (chat, legacy, card):
        assert error.value.body["code"] == "model_not_found" and error.value.body["param"] == "model"
        assert error.value.body["type"] == "invalid_request_error" and "gpt-4o" in error.value.body["message"]
    assert not any(s.requests for s in sims.values())
    assert (await client.models.retrieve("ensemble")).id == "ensemble"
    assert (await client.models.retrieve("beta")).id == "beta"


async def test_a_member_model_named_in_the_request_answers_alone(pool_router):
    client, sims, _ = pool_router
    completion = await client.chat.completions.create(
        model="gamma", messages=[{"role": "user", "content": CAPITAL_QUESTION["question"]}]
    )
    assert completion.model_extra["quorum"]["models"] == ["gamma"]
    assert sims["gamma"].requests and not sims["alpha"].requests and not sims["beta"].requests
