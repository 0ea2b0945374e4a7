"""How a shard's samples share its models' slots: scheduled by call, not by sample.

Each sample is a dependent chain (generate → review the instruction → review the response → adjudicate), so a
cap on samples alone leaves a model's slots idle while its samples wait on another stage. Instead many samples
are admitted, every call waits for its model's slots (`quorum.llm.Slots`), and a freed slot goes to the ready
call of the latest stage: samples finish in about the order they started, and the admitted ones keep every
model supplied with ready calls. The order of calls never changes a result: every decision draws from the
slot's own seeded generator (see `quorum.gra.pipeline`).
"""

from __future__ import annotations

from collections.abc import Iterable

STAGE_PRIORITY = {"generate": 0, "review-instruction": 1, "review-response": 2, "adjudicate": 3}
"""Higher is served first; calls outside the chain (digests, classification, calibration) keep priority 0."""

SAMPLES_PER_SLOT = 8
"""Samples admitted per model slot. About four calls per sample spread over several models means a few per
slot already keep every queue non-empty; eight leaves room for skewed casts, at a few kB per waiting sample."""


def samples_in_flight(max_concurrency: Iterable[int]) -> int:
    """How many samples a round admits at once, from its models' `maxConcurrency` caps."""
    return max(4, SAMPLES_PER_SLOT * sum(max_concurrency))
