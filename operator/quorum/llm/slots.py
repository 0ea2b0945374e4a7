"""The counting semaphore every model cap uses: the router's per-backend and per-server caps, and each
`ChatClient`'s `maxConcurrency`.

Why not `asyncio.Semaphore`: on Python 3.11 its `acquire` calls `locked()`, which scans every waiter, so with
1,000 clients queued on a backend's 256 slots each call walked ~750 futures (quadratic in the queue); and it
serves waiters first-come first-served only. A synthesis pipeline queues calls of several stages on one model,
and serving the oldest sample's call first (`quorum.gra.schedule.call_priority`) is what lets samples finish
(bounded memory) while the slots stay full.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class Slots:
    """At most `size` holders; a freed slot goes to the waiter of highest priority, first come first served
    among equal priorities. Acquire and release cost O(log n) in the waiters (O(1) pushes when every caller
    uses one priority, as the router does)."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        """A heap of (-priority, arrival, future); cancelled futures stay until `release` pops them."""
        self._arrivals = itertools.count()

    async def acquire(self, priority: int = 0) -> None:
        # invariant: a free slot implies no waiter (release hands a slot over before it counts one free)
        if self._free > 0:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # a slot was handed over just as the waiter was cancelled: pass it on
            raise  # a cancelled future left in the heap is skipped by `release`

    def release(self) -> None:
        while self._waiters:
            waiter = heapq.heappop(self._waiters)[2]
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the first waiter in priority order
                return
        self._free += 1

    @property
    def waiting(self) -> int:
        """Queued acquires, cancelled ones not yet popped included (for tests and metrics: an upper bound)."""
        return len(self._waiters)

    def held(self, priority: int = 0) -> Held:
        """`async with slots.held(priority):` holds one slot for the block."""
        return Held(self, priority)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class Held:
    """One slot of `Slots` at one priority, for the length of an `async with` block."""

    __slots__ = ("_priority", "_slots")

    def __init__(self, slots: Slots, priority: int) -> None:
        self._slots = slots
        self._priority = priority

    async def __aenter__(self) -> None:
        await self._slots.acquire(self._priority)

    async def __aexit__(self, *exc_info: object) -> None:
        self._slots.release()
