"""The shared slot limiter keeps asyncio.Semaphore's contract (a cap, no slot lost to a cancelled waiter) and
serves waiters by priority, first come first served within one priority."""

from __future__ import annotations

import asyncio

import pytest

from quorum.llm.slots import Slots


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


async def test_waiters_are_served_highest_priority_first_then_in_arrival_order():
    slots, order, running, peak = Slots(3), [], 0, 0

    async def call(name: str, priority: int) -> None:
        nonlocal running, peak
        async with slots.held(priority):
            running += 1
            peak = max(peak, running)
            order.append(name)
            await asyncio.sleep(0.001)
            running -= 1

    holders = [asyncio.ensure_future(call(f"first{i}", 0)) for i in range(3)]
    await asyncio.sleep(0)  # the three slots are taken; everything below queues
    queued = [("g1", 0), ("r1", 1), ("a1", 3), ("g2", 0), ("r2", 1), ("q1", 2), ("a2", 3), ("g3", 0)]
    await asyncio.gather(*holders, *(call(name, priority) for name, priority in queued))
    assert order[:3] == ["first0", "first1", "first2"]
    assert order[3:] == ["a1", "a2", "q1", "r1", "r2", "g1", "g2", "g3"]
    assert peak == 3


async def test_a_late_high_priority_call_overtakes_earlier_waiters_but_not_holders():
    slots = Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def call(name: str, priority: int) -> None:
        await slots.acquire(priority)
        order.append(name)
        slots.release()

    low = asyncio.ensure_future(call("low", 0))
    await asyncio.sleep(0)
    high = asyncio.ensure_future(call("high", 5))
    await asyncio.sleep(0)
    assert order == [] and slots.waiting == 2  # the holder keeps its slot whatever arrives
    slots.release()
    await asyncio.gather(low, high)
    assert order == ["high", "low"]


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


async def test_cancelling_a_waiter_frees_no_extra_slot():
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    doomed = [asyncio.ensure_future(slots.acquire(priority)) for priority in (3, 0, 1)]
    patient = asyncio.ensure_future(slots.acquire(0))
    await asyncio.sleep(0)
    for task in doomed:
        task.cancel()
    await asyncio.gather(*doomed, return_exceptions=True)
    await asyncio.sleep(0)
    assert not patient.done()  # both slots are still held: cancelling waiters handed nothing over
    third = asyncio.ensure_future(slots.acquire(9))
    await asyncio.sleep(0)
    assert not third.done()
    slots.release()  # one slot freed: the highest live waiter gets it, the other still waits
    await asyncio.wait_for(third, timeout=1)
    assert not patient.done()
    slots.release()
    await asyncio.wait_for(patient, timeout=1)
