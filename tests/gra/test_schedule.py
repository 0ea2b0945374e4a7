"""Calls are scheduled by stage, not by sample: with one slot and several samples waiting, samples' later
stages are served before generations queued earlier, and the records do not depend on that order."""

from __future__ import annotations

import asyncio

from quorum.gra import prompts
from quorum.gra.pipeline import SampleRunner, Slot
from quorum.gra.schedule import STAGE_PRIORITY
from quorum.gra.seeds import Seed
from quorum.gra.testing import GraScript
from quorum.llm import ClientPool, ModelEndpoint, RetryPolicy
from quorum.llm.simulated import SimulatedBackend
from tests.gra.conftest import make_spec

DEMO = Seed(id="math-0", instruction="What is 2 + 2?", output="4", domain="math")


async def run_samples(slots: int, samples: int) -> tuple[list[str], list[dict]]:
    """`samples` samples at once on one model with `slots` slots; the stages in the order the server saw them."""
    async with SimulatedBackend(GraScript(), latency_s=0.005, models=["solo"]) as sim:
        spec = make_spec(sim.base_url, ["solo"], review={"reviewers": 2, "allowSameModel": True})
        endpoint = ModelEndpoint("solo", sim.base_url, "solo", None, slots)
        async with ClientPool([endpoint], RetryPolicy.from_spec(spec.calls)) as pool:
            runner = SampleRunner(spec, pool, digests={})
            records = await asyncio.gather(
                *(runner.run(Slot(round=1, index=i, domain="math", demos=(DEMO,))) for i in range(samples))
            )
    return [r.schema_name for r in sim.requests], list(records)


async def test_later_stages_overtake_generations_queued_before_them():
    stages, _ = await run_samples(slots=1, samples=4)
    generates = [i for i, stage in enumerate(stages) if stage == prompts.GENERATE]
    assert len(generates) == 4
    # the slot freed by the first generation goes to the second (nothing else waits yet); from then on the
    # first two samples' reviews, queued behind the other two generations, are served before them
    assert generates[:2] == [0, 1]
    between = stages[2 : generates[2]]
    assert between.count(prompts.REVIEW_INSTRUCTION) == 4 and prompts.REVIEW_RESPONSE in between


async def test_call_order_does_not_change_any_record():
    _, one_slot = await run_samples(slots=1, samples=4)
    _, many_slots = await run_samples(slots=16, samples=4)
    assert one_slot == many_slots


def test_each_later_stage_ranks_strictly_higher():
    ranks = [STAGE_PRIORITY[stage] for stage in ("generate", "review-instruction", "review-response", "adjudicate")]
    assert ranks == sorted(set(ranks))
