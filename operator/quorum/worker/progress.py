"""Shard progress for `status.shards.<index>`: throttled while the shard runs, always sent at the end.

The engine calls back on every finished unit (hundreds per second on a fast backend); the API server should
see at most one patch per `interval` plus the final one. Each patch carries the whole latest `ShardStatus`,
so skipping intermediate ones loses nothing, and the final report is retried: the operator's counts come
from it.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from quorum.api.synthesis import ShardStatus, StageState, SynthesisCounts
from quorum.gra.progress import ROUND, StageBook

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], None]
"""Sends `{"shards": {index: report}}` (blocking; run in a thread)."""


class ShardReporter:
    """The engine's progress callback plus the task that publishes it; use as `async with reporter:`."""

    def __init__(
        self,
        publish: Publish,
        shard_index: int,
        *,
        attempt: int = 0,
        fingerprint: str = "",
        interval: float = 1.0,
        final_retries: int = 5,
    ) -> None:
        self.publish = publish
        self.key = str(shard_index)
        self.interval = interval
        self.final_retries = final_retries
        self.status = ShardStatus(state=StageState.RUNNING, attempt=attempt, fingerprint=fingerprint)
        from quorum.gra.shard import STAGES

        self.book = StageBook(STAGES)
        self.sent = 0
        self._dirty = True
        self._task: asyncio.Task[None] | None = None

    def __call__(self, stage: str, done: int, total: int, counts: SynthesisCounts) -> None:
        self.book.update(0, stage, done, total)
        update: dict[str, Any] = {"counts": counts.model_copy()}
        if stage != ROUND:
            update |= {"stage": stage, "done": done, "total": total}
        self.status = self.status.model_copy(update=update)
        self._dirty = True

    async def __aenter__(self) -> ShardReporter:
        self._task = asyncio.create_task(self._publish_periodically())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def finish(
        self, state: StageState, counts: SynthesisCounts | None = None, *, degenerate_reviewers: list[str] | None = None
    ) -> None:
        """The last report: retried with backoff, and an error if it never lands (the pod then fails and the
        Job retries the shard, which finds its output committed and reports again)."""
        await self.__aexit__(None, None, None)
        update: dict[str, Any] = {"state": state}
        if counts is not None:
            update["counts"] = counts.model_copy()
        if degenerate_reviewers is not None:
            update["degenerate_reviewers"] = list(degenerate_reviewers)
        if state == StageState.SUCCEEDED:
            update["done"] = max(self.status.done, self.status.total)
        self.status = self.status.model_copy(update=update)
        for attempt in range(self.final_retries + 1):
            try:
                await asyncio.to_thread(self._send)
                return
            except Exception as error:
                if attempt == self.final_retries:
                    raise
                log.warning("final shard report failed (%s); retrying", error)
                await asyncio.sleep(min(0.5 * 2**attempt, 8.0))

    async def _publish_periodically(self) -> None:
        while True:
            started = time.monotonic()
            if self._dirty:
                try:
                    await asyncio.to_thread(self._send)
                except Exception as error:  # progress is advisory; the final report is the one that counts
                    log.warning("shard progress report failed: %s", error)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    def _send(self) -> None:
        self._dirty = False
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        report = self.status.model_copy(update={"updated": now, "stages": self.book.snapshot()}).to_wire()
        try:
            self.publish({"shards": {self.key: report}})
        except Exception:
            self._dirty = True
            raise
        self.sent += 1
