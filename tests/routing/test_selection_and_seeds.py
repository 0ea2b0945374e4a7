"""What reaches the backend calls: `routing.modelsSelected` models vote (lower-ranked healthy ones are
fallbacks), every sample carries its own seed derived from the client's seed or a request id, and a pinned
model's request still finds its task."""

from __future__ import annotations

from contextlib import AsyncExitStack

import openai
import pytest

from quorum.llm.local import free_port
from quorum.llm.simulated import SimReply, SimRequest, SimulatedBackend
from quorum.routing.engine import sample_seeds
from tests.routing.conftest import router_spec, serving
from tests.routing.pool import questions, responder_for

CAPITAL = next(q for q in questions() if q["topic"] == "capitals")["question"]
SUM = next(q for q in questions() if q["topic"] == "arithmetic")["question"]
MODELS = ("alpha", "beta", "gamma")


def seeded_responder(request: SimRequest) -> SimReply:
    """Deterministic for a given seed, and a different answer for every seed (like a seeded vLLM)."""
    return SimReply(text=f"Working it out, the answer is \\boxed{{{request.body.get('seed')}}}.")


async def _pool(stack: AsyncExitStack, artifact, embedder, responders=None, urls=None, **overrides):
    responders = responders or {m: responder_for(m) for m in MODELS}
    sims = {m: await stack.enter_async_context(SimulatedBackend(responders[m], models=[m])) for m in responders}
    spec = router_spec({**{m: s.base_url for m, s in sims.items()}, **(urls or {})}, **overrides)
    router = await stack.enter_async_context(serving(spec, artifact=artifact, embedder=embedder))
    client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
    stack.push_async_callback(client.close)
    return client, sims


@pytest.mark.parametrize(
    ("selected", "strategy", "asked"),
    [
        (1, "self-consistency", ["beta"]),
        (2, "self-consistency", ["beta", "gamma"]),
        (3, "self-consistency", ["beta", "gamma", "alpha"]),
        (3, "model-switch", ["beta"]),  # beta's answers agree (share 1.0 ≥ 0.8): the runners-up are not asked
    ],
)
async def test_models_selected_decides_which_backends_are_sampled(full_pool, embedder, selected, strategy, asked):
    _, _, artifact, _ = full_pool
    async with AsyncExitStack() as stack:
        client, sims = await _pool(
            stack, artifact, embedder, routing={"modelsSelected": selected}, voting={"strategy": strategy}
        )
        completion = await client.chat.completions.create(
            model="ensemble", messages=[{"role": "user", "content": CAPITAL}]
        )
    audit = completion.model_extra["quorum"]
    assert audit["models"] == asked
    assert {m: len(s.requests) for m, s in sims.items()} == {m: 3 if m in asked else 0 for m in MODELS}
    assert audit["samples"] == {"requested": 3 * len(asked), "received": 3 * len(asked)}
    assert sum(audit["votes"].values()) == 3 * len(asked)


async def test_model_switch_asks_the_runner_up_when_the_first_majority_is_weak(full_pool, embedder):
    _, _, artifact, _ = full_pool
    responders = {"alpha": seeded_responder, "beta": responder_for("beta"), "gamma": responder_for("gamma")}
    async with AsyncExitStack() as stack:
        client, sims = await _pool(
            stack, artifact, embedder, responders, routing={"modelsSelected": 2}, voting={"strategy": "model-switch"}
        )
        completion = await client.chat.completions.create(model="ensemble", messages=[{"role": "user", "content": SUM}])
    audit = completion.model_extra["quorum"]
    assert audit["models"][0] == "alpha" and len(audit["models"]) == 2  # alpha's three answers all differ
    assert len(sims["alpha"].requests) == 3 and sum(len(sims[m].requests) for m in ("beta", "gamma")) == 3


async def test_healthy_lower_ranked_models_remain_fallbacks_beyond_the_selected(full_pool, embedder):
    _, _, artifact, _ = full_pool
    dead = f"http://127.0.0.1:{free_port()}/v1"
    responders = {"alpha": responder_for("alpha"), "gamma": responder_for("gamma")}
    async with AsyncExitStack() as stack:
        client, sims = await _pool(
            stack, artifact, embedder, responders, urls={"beta": dead}, routing={"modelsSelected": 2}
        )
        completion = await client.chat.completions.create(
            model="ensemble", messages=[{"role": "user", "content": CAPITAL}]
        )
    audit = completion.model_extra["quorum"]
    assert audit["fallbacks"] == ["beta"]
    assert audit["models"] == ["gamma", "alpha"]  # beta's seat goes to the next healthy model
    assert len(sims["gamma"].requests) == len(sims["alpha"].requests) == 3


async def test_every_sample_gets_its_own_seed_derived_from_the_clients_seed(full_pool, embedder):
    _, _, artifact, _ = full_pool
    responders = dict.fromkeys(MODELS, seeded_responder)
    async with AsyncExitStack() as stack:
        client, sims = await _pool(stack, artifact, embedder, responders)
        runs = []
        for seed in (7, 7, 8, None, None):
            before = len(sims["alpha"].requests)
            completion = await client.chat.completions.create(
                model="ensemble", messages=[{"role": "user", "content": SUM}], seed=seed
            )
            sent = sorted(r.body["seed"] for r in sims["alpha"].requests[before:])
            runs.append((sent, completion.model_extra["quorum"]["votes"], completion.choices[0].message.content))
    for sent, votes, _ in runs:
        assert len(set(sent)) == 3 and len(votes) == 3  # independent samples: three different answers voted
    assert runs[0] == runs[1]  # the same client seed reproduces the samples and the answer
    assert runs[0][0] == sorted(sample_seeds(7, "alpha", 3))
    assert runs[2][0] != runs[0][0] and runs[3][0] != runs[4][0]  # another seed, or none: other samples


async def test_a_pinned_model_request_still_embeds_the_query_to_find_its_task(full_pool, embedder):
    _, _, artifact, _ = full_pool
    async with AsyncExitStack() as stack:
        client, sims = await _pool(stack, artifact, embedder)
        completion = await client.chat.completions.create(model="gamma", messages=[{"role": "user", "content": SUM}])
    audit = completion.model_extra["quorum"]
    assert audit["models"] == ["gamma"] and audit["task"] == "arithmetic"
    assert audit["votes"] and audit["cluster"] is not None  # math answers voted on keys, not as open text
    assert len(sims["gamma"].requests) == 3 and not sims["alpha"].requests and not sims["beta"].requests


def test_sample_seeds_are_distinct_reproducible_and_below_2_to_the_31():
    seeds = sample_seeds(42, "m", 64)
    assert len(set(seeds)) == 64 and seeds == sample_seeds(42, "m", 64)
    assert all(0 <= s < 2**31 for s in seeds) and seeds != sample_seeds(43, "m", 64)
    assert sample_seeds("req-1", "m", 4) != sample_seeds("req-2", "m", 4)
