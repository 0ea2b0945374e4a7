"""The router's O(1) semaphore keeps asyncio.Semaphore's contract: a cap, first-come first-served, and no slot
lost to a waiter cancelled while it waits or just as it is handed a slot."""

from __future__ import annotations

import asyncio

import pytest

from quorum.routing.backend import Slots


async def test_slots_cap_concurrency_and_serve_waiters_in_arrival_order():
    slots, order, running, peak = Slots(2), [], 0, 0

    async def worker(i: int) -> None:
        nonlocal running, peak
        async with slots:
            running += 1
            peak = max(peak, running)
            order.append(i)
            await asyncio.sleep(0.001)
            running -= 1

    await asyncio.gather(*(worker(i) for i in range(20)))
    assert peak == 2 and order == list(range(20))


async def test_a_cancelled_waiter_loses_no_slot():
    slots = Slots(1)
    await slots.acquire()
    waiting = asyncio.ensure_future(slots.acquire())
    handed = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    waiting.cancel()  # cancelled while queued
    slots.release()  # skips the cancelled waiter, hands the slot to `handed`
    handed.cancel()  # ... which is cancelled before it resumes: the slot must come back
    for task in (waiting, handed):
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.wait_for(slots.acquire(), timeout=1)  # the one slot is free again
