"""Calls are scheduled by sample age, not by stage: with one slot and several samples waiting, an earlier
slot's next call is served before a later slot's, whatever their stages, and the records do not depend on that
order."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from quorum.gra import prompts
from quorum.gra.pipeline import SampleRunner, Slot
from quorum.gra.schedule import call_priority
from quorum.gra.seeds import Seed
from quorum.gra.testing import GraScript, varied_high
from quorum.llm import ClientPool, ModelEndpoint, RetryPolicy
from quorum.llm.simulated import SimReply, SimRequest, SimulatedBackend
from tests.gra.conftest import make_spec, run_simulated

REVIEWS = (prompts.REVIEW_INSTRUCTION, prompts.REVIEW_RESPONSE)

DEMO = Seed(id="math-0", instruction="What is 2 + 2?", output="4", domain="math")


async def run_samples(slots: int, order: list[int]) -> tuple[list[tuple[str, int]], list[dict]]:
    """Samples started in `order` (slot indices) on one model with `slots` slots; (stage, slot) of every
    request in the order the server saw them, and the records in slot order."""
    async with SimulatedBackend(GraScript(), latency_s=0.005, models=["solo"]) as sim:
        spec = make_spec(sim.base_url, ["solo"], review={"reviewers": 2, "allowSameModel": True})
        endpoint = ModelEndpoint("solo", sim.base_url, "solo", None, slots)
        async with ClientPool([endpoint], RetryPolicy.from_spec(spec.calls)) as pool:
            runner = SampleRunner(spec, pool, digests={})
            records = await asyncio.gather(
                *(runner.run(Slot(round=1, index=i, domain=f"topic{i}", demos=(DEMO,))) for i in order)
            )
    seen = [(r.schema_name or "", next(i for i in order if f"topic{i}" in r.prompt)) for r in sim.requests]
    return seen, sorted(records, key=lambda r: r.slot)


async def test_an_earlier_slot_is_served_before_a_later_slot_further_along():
    # slot 3 starts first and takes the only slot; its reviews queue behind the generations of slots 0-2, and
    # ranking by stage would serve them first. By age, slots 0, 1, 2 are generated next, and every call of
    # slot 0 is served before slot 3's first review.
    seen, _ = await run_samples(slots=1, order=[3, 2, 1, 0])
    assert [slot for stage, slot in seen if stage == prompts.GENERATE] == [3, 0, 1, 2]
    first_review_of_3 = next(i for i, (stage, slot) in enumerate(seen) if slot == 3 and stage != prompts.GENERATE)
    assert max(i for i, (_, slot) in enumerate(seen) if slot == 0) < first_review_of_3


async def test_call_order_does_not_change_any_record():
    _, one_slot = await run_samples(slots=1, order=[3, 2, 1, 0])
    _, many_slots = await run_samples(slots=16, order=[0, 1, 2, 3])
    assert one_slot == many_slots


def test_earlier_slots_rank_strictly_higher():
    ranks = [call_priority(index) for index in range(5)]
    assert ranks == sorted(set(ranks), reverse=True)


def test_generation_starts_while_calibration_reviews_are_still_in_flight(seed_dir):
    # every review takes 1.5 s: a run that finished calibrating before its first round would send its first
    # generation at least that long after the first calibration review
    arrivals: list[tuple[str, float]] = []
    script = GraScript(score=varied_high)

    def slow_reviews(request: SimRequest) -> SimReply:
        arrivals.append((request.schema_name or "", time.monotonic()))
        reply = script(request)
        return replace(reply, delay_s=1.5) if request.schema_name in REVIEWS else reply

    manifest, _ = run_simulated(
        seed_dir,
        slow_reviews,
        ["a", "b", "c"],
        generation={"target": 3, "rounds": 1},
        review={"calibrationItems": 3, "reviewers": 2},
    )
    first_review = min(t for name, t in arrivals if name in REVIEWS)
    first_generation = min(t for name, t in arrivals if name == prompts.GENERATE)
    assert first_generation - first_review < 1.0
    assert manifest["counts"]["generated"] == 3


def test_a_sample_waits_for_its_own_seeds_digests_only(seed_dir):
    # the code seeds' digests take 1.5 s: a round-wide barrier would hold the math samples' generations
    # back that long; each sample must still show every demo's digest (keywords) in its prompt
    arrivals: list[tuple[str, float, str]] = []
    script = GraScript(score=varied_high)

    def slow_code_digests(request: SimRequest) -> SimReply:
        arrivals.append((request.schema_name or "", time.monotonic(), request.prompt))
        reply = script(request)
        slow = request.schema_name == prompts.DIGEST and "code seed" in request.prompt
        return replace(reply, delay_s=1.5) if slow else reply

    manifest, _ = run_simulated(
        seed_dir, slow_code_digests, ["a", "b", "c"], generation={"target": 6, "rounds": 1}, review={"reviewers": 2}
    )
    first_digest = min(t for name, t, _ in arrivals if name == prompts.DIGEST)
    generations = [(t, prompt) for name, t, prompt in arrivals if name == prompts.GENERATE]
    math = [t for t, prompt in generations if "new math task" in prompt]
    code = [t for t, prompt in generations if "new code task" in prompt]
    assert math and code
    assert min(math) - first_digest < 1.0 <= min(code) - first_digest
    assert all(prompt.count("Keywords: ") == prompt.count("Example ") > 0 for _, prompt in generations)
    assert manifest["counts"]["generated"] == 6
