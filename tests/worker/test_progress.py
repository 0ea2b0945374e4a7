"""Shard progress reports: throttled while the shard runs, nothing lost at the end, the final one retried."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from quorum.api.synthesis import StageState, SynthesisCounts
from quorum.worker.progress import ShardReporter


async def test_a_burst_of_progress_is_sent_at_most_once_per_interval_and_the_final_state_always():
    sent: list[dict[str, Any]] = []
    reporter = ShardReporter(sent.append, 3, attempt=1, fingerprint="fp", interval=0.2)
    async with reporter:
        for done in range(1, 501):
            reporter("generate", done, 500, SynthesisCounts(generated=done))
            if done % 50 == 0:
                await asyncio.sleep(0.05)  # 10 pauses of 50 ms: ~0.5 s of work
        await reporter.finish(StageState.SUCCEEDED, SynthesisCounts(generated=500, accepted=321))
    assert 2 <= len(sent) <= 5, len(sent)  # ~0.5 s / 0.2 s plus the first and the final report, not 500
    final = sent[-1]["shards"]["3"]
    assert final["state"] == "Succeeded" and final["done"] == final["total"] == 500
    assert final["counts"]["accepted"] == 321 and final["attempt"] == 1 and final["fingerprint"] == "fp"
    assert final["updated"].endswith("Z")
    assert sent[0]["shards"]["3"]["state"] == "Running"


async def test_the_final_report_is_retried_until_the_api_server_takes_it():
    outcomes: list[Exception | None] = [ConnectionError("apiserver restarting")] * 2 + [None]
    sent: list[dict[str, Any]] = []

    def flaky(report: dict[str, Any]) -> None:
        if (outcome := outcomes.pop(0) if outcomes else None) is not None:
            raise outcome
        sent.append(report)

    reporter = ShardReporter(flaky, 0, interval=60)
    reporter.sent = 0
    reporter.final_retries = 3
    await reporter.finish(StageState.FAILED, SynthesisCounts(failed=2))
    assert [r["shards"]["0"]["state"] for r in sent] == ["Failed"]


async def test_a_final_report_that_never_lands_fails_the_worker():
    def down(report: dict[str, Any]) -> None:
        raise ConnectionError("apiserver down")

    reporter = ShardReporter(down, 0, interval=60, final_retries=1)
    with pytest.raises(ConnectionError):
        await reporter.finish(StageState.SUCCEEDED)


async def test_the_shard_report_carries_every_started_stage_with_its_rate_and_the_round_apart():
    sent: list[dict[str, Any]] = []
    reporter = ShardReporter(sent.append, 0, interval=60)
    async with reporter:
        reporter("round", 2, 5, SynthesisCounts())
        reporter("generate", 0, 4, SynthesisCounts())
        await asyncio.sleep(0.05)
        reporter("generate", 4, 4, SynthesisCounts(generated=4))
        reporter("review-instruction", 1, 4, SynthesisCounts(generated=4))
        await reporter.finish(StageState.SUCCEEDED)
    final = sent[-1]["shards"]["0"]
    stages = {s["name"]: s for s in final["stages"]}
    assert list(stages) == ["round", "generate", "review-instruction"]
    assert stages["round"]["done"] == 2 and stages["round"]["total"] == 5
    assert stages["generate"]["state"] == "Succeeded" and stages["generate"]["rate"] > 0
    assert stages["review-instruction"]["state"] == "Running"
    assert final["stage"] == "review-instruction"  # `round` never replaces the stage in progress
