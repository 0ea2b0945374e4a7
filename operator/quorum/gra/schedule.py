"""How a shard's samples share its models' slots: scheduled by call, not by sample.

Each sample is a dependent chain (generate → review the instruction → review the response → adjudicate), so a
cap on samples alone leaves a model's slots idle while its samples wait on another stage. Instead many samples
are admitted, every call waits for its model's slots (`quorum.llm.Slots`), and a freed slot goes to the ready
call of the oldest sample, whatever its stage.

Why the oldest sample and not the latest stage: ranking stages (adjudicate > reviews > generate) feeds back on
itself. A model that gets ahead on its generations floods the other models with reviews, which then outrank
their own generations; they generate less, so the leader gets fewer reviews and generates more, until it has
generated all its samples and idles while the others still hold hundreds of queued calls (measured: each of
three models idle for about a sixth of a 900-sample run). Oldest-first is self-correcting: a model that runs
ahead in slot order is handed the older samples' reviews first, so every model moves through the slots at the
same pace and each keeps its share of ready calls. Samples still finish in about the order they started. The
order of calls never changes a result: every decision draws from the slot's own seeded generator (see
`quorum.gra.pipeline`).
"""

from __future__ import annotations

from collections.abc import Iterable

SAMPLES_PER_SLOT = 8
"""Samples admitted per model slot. About four calls per sample spread over several models means a few per
slot already keep every queue non-empty; eight leaves room for skewed casts, at a few kB per waiting sample."""


def call_priority(slot_index: int) -> int:
    """The priority (higher first, `quorum.llm.Slots`) of every call of the sample in slot `slot_index`: the
    earlier the slot, the sooner its calls are served. Calls outside the chain (digests, classification,
    calibration) keep priority 0, ahead of every sample."""
    return -slot_index


def samples_in_flight(max_concurrency: Iterable[int]) -> int:
    """How many samples a round admits at once, from its models' `maxConcurrency` caps."""
    return max(4, SAMPLES_PER_SLOT * sum(max_concurrency))
