"""A timeline of one pipeline run against a real model server, for `synth_throughput.py`: every call's stage,
the time it became ready (the pipeline asked for it), the time it got one of the model's slots and the time it
gave the slot back; slot occupancy over the run; and the idle slot-time split by what kept the slots empty.

Why in the bench and not the product: it wraps the client pool's calls and a few of the shard worker's steps
from outside (the product's code paths are unchanged), so the figures describe the code that ships.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from quorum.gra import prompts
from quorum.gra import shard as shard_module
from quorum.gra.pipeline import SampleRunner
from quorum.llm import ClientPool
from quorum.llm.slots import Slots

STAGE_OF_SCHEMA = {
    prompts.GENERATE: "generate",
    prompts.REVIEW_INSTRUCTION: "review-instruction",
    prompts.REVIEW_RESPONSE: "review-response",
    prompts.ADJUDICATE: "adjudicate",
    prompts.DIGEST: "digest",
    prompts.CLASSIFY: "classify",
}

_PHASE: contextvars.ContextVar[str | None] = contextvars.ContextVar("phase", default=None)
_SAMPLE: contextvars.ContextVar[int | None] = contextvars.ContextVar("sample", default=None)
_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("call", default=None)


@contextlib.contextmanager
def labelled(stage: str) -> Iterator[None]:
    """The calls made inside the block are recorded under `stage`."""
    token = _PHASE.set(stage)
    try:
        yield
    finally:
        _PHASE.reset(token)


@dataclass
class Call:
    stage: str
    sample: int | None
    ready: float
    start: float = float("nan")
    end: float = float("nan")
    completion_tokens: int = 0
    prompt_tokens: int = 0


@dataclass
class Timeline:
    slots: int
    calls: list[Call] = field(default_factory=list)
    samples: dict[int, list[float]] = field(default_factory=dict)
    """slot index → [started, finished] of its chain."""
    gate_waits: list[tuple[float, float]] = field(default_factory=list)
    """(from, to) of every gate that waited for calibration's verdict."""
    digests_done: float = float("nan")
    calibration_done: float = float("nan")
    started: float = 0.0
    finished: float = 0.0

    # --- recording ---------------------------------------------------------------------------------------

    def attach(self, pool: ClientPool) -> None:
        """Every call of the pool's clients is recorded: ready when `chat` is called, started when it holds a
        model slot, ended when it releases it."""
        for client in pool:
            client._slots = _TimedSlots(client.endpoint.max_concurrency)
            chat = client.chat

            async def timed(messages: Any, *, chat: Any = chat, **sampling: Any) -> Any:
                name = ((sampling.get("response_format") or {}).get("json_schema") or {}).get("name", "")
                call = Call(_PHASE.get() or STAGE_OF_SCHEMA.get(name, "free"), _SAMPLE.get(), time.perf_counter())
                self.calls.append(call)
                token = _CALL.set(call)
                try:
                    completion = await chat(messages, **sampling)
                finally:
                    _CALL.reset(token)
                call.completion_tokens, call.prompt_tokens = completion.completion_tokens, completion.prompt_tokens
                return completion

            client.chat = timed  # type: ignore[method-assign]

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Wraps the shard worker's steps whose timing explains idle slots: each sample's chain, the gate's
        wait for calibration, the seed digests before generation, calibration itself."""
        timeline = self
        run, digest_demos, calibrate = SampleRunner.run, shard_module._ShardWorker._digest_demos, None
        calibrate = shard_module._ShardWorker._calibrate
        init = SampleRunner.__init__

        async def sample_run(runner: SampleRunner, slot: Any) -> Any:
            _SAMPLE.set(slot.index)
            span = timeline.samples[slot.index] = [time.perf_counter(), float("nan")]
            try:
                return await run(runner, slot)
            finally:
                span[1] = time.perf_counter()

        def digests(worker: Any, *args: Any) -> Any:
            started = digest_demos(worker, *args)
            if asyncio.iscoroutine(started):  # a round-wide barrier (the code before per-sample waits), for A/B runs
                return _stamped(started, timeline)
            calls, whole = started
            whole.add_done_callback(lambda _: setattr(timeline, "digests_done", time.perf_counter()))
            return calls, whole

        async def calibration(worker: Any, *args: Any) -> Any:
            _PHASE.set("calibrate")
            try:
                return await calibrate(worker, *args)
            finally:
                timeline.calibration_done = time.perf_counter()

        def runner_init(runner: SampleRunner, *args: Any, **kwargs: Any) -> None:
            init(runner, *args, **kwargs)
            exclusions = runner.exclusions

            async def timed_exclusions() -> frozenset[str]:
                began = time.perf_counter()
                try:
                    return await exclusions()
                finally:
                    if (ended := time.perf_counter()) - began > 1e-3:
                        timeline.gate_waits.append((began, ended))

            runner.exclusions = timed_exclusions

        patches = [
            (SampleRunner, "run", sample_run),
            (SampleRunner, "__init__", runner_init),
            (shard_module._ShardWorker, "_digest_demos", digests),
            (shard_module._ShardWorker, "_calibrate", calibration),
        ]
        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        self.started = time.perf_counter()
        try:
            yield
        finally:
            self.finished = time.perf_counter()
            for owner, name, original in originals:
                setattr(owner, name, original)

    # --- analysis ----------------------------------------------------------------------------------------

    @property
    def wall(self) -> float:
        return self.finished - self.started

    def tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    def token_rate(self, steady: bool = False) -> float:
        """Completion tokens per second over the whole run, or (`steady`) between the 10th and the 90th
        percentile of the calls' ends, each call's tokens spread over the time it held a slot (ramp-up and tail
        left out, as part 1 does for the simulated backends)."""
        if not steady:
            return self.tokens() / self.wall
        ends = sorted(c.end for c in self.calls)
        low, high = ends[len(ends) // 10], ends[(len(ends) * 9) // 10]
        inside = sum(
            c.completion_tokens * max(0.0, min(c.end, high) - max(c.start, low)) / max(c.end - c.start, 1e-9)
            for c in self.calls
        )
        return inside / (high - low)

    def occupancy(self, low: float | None = None, high: float | None = None) -> float:
        """Time-weighted calls holding a slot ÷ slots, between `low` and `high` (default: the whole run)."""
        low, high = low if low is not None else self.started, high if high is not None else self.finished
        busy = sum(max(0.0, min(c.end, high) - max(c.start, low)) for c in self.calls)
        return busy / (self.slots * (high - low))

    def idle(self) -> dict[str, float]:
        """Idle slot-seconds by cause. At every moment with fewer calls in flight than slots, no call is queued
        (a freed slot goes straight to a waiter), so the cause is what keeps the pipeline from asking:"""
        edges = sorted(
            {self.started, self.finished, *(t for c in self.calls for t in (c.start, c.end))}
            | {t for span in self.samples.values() for t in span}
            | {t for wait in self.gate_waits for t in wait}
        )
        causes: dict[str, float] = {}
        for low, high in itertools.pairwise(edges):
            middle = (low + high) / 2
            empty = self.slots - sum(1 for c in self.calls if c.start <= middle < c.end)
            if empty > 0:
                cause = self._cause(middle)
                causes[cause] = causes.get(cause, 0.0) + empty * (high - low)
        return dict(sorted(causes.items(), key=lambda item: -item[1]))

    def _cause(self, moment: float) -> str:
        first_call = min((c.start for c in self.calls), default=self.finished)
        last_call = max((c.end for c in self.calls), default=self.started)
        if moment < first_call:
            return "start-up, before the first call"
        if moment >= last_call:
            return "after the last call (dedup, digests, write)"
        if moment < self.digests_done and any(began > moment for began, _ in self.samples.values()):
            return "samples not started: they wait for their seeds' digests"
        if any(low <= moment < high for low, high in self.gate_waits):
            return "a sample's gate waits for calibration"
        unfinished = [index for index, (began, ended) in self.samples.items() if began <= moment < ended]
        busy = {c.sample for c in self.calls if c.sample is not None and c.start <= moment < c.end}
        if any(index not in busy for index in unfinished):
            return "a sample between calls (client CPU, gate)"
        if len(unfinished) * 2 < self.slots:
            return "the tail: too few unfinished samples to fill the slots"
        return "every unfinished sample has its next call in flight (dependent chain)"

    def report(self, tokens_middle: tuple[float, float] | None = None) -> list[str]:
        wall = self.finished - self.started
        lines = [f"  slot occupancy {self.occupancy():.3f} over the run ({wall:.1f}s, {self.slots} slots)"]
        by_stage: dict[str, list[Call]] = {}
        for call in self.calls:
            by_stage.setdefault(call.stage, []).append(call)
        for stage, calls in by_stage.items():
            first, last = min(c.ready for c in calls) - self.started, max(c.end for c in calls) - self.started
            held = sum(c.end - c.start for c in calls)
            queued = sum(c.start - c.ready for c in calls)
            lines.append(
                f"    {stage:<19}{len(calls):>4} calls, {first:6.1f}s..{last:6.1f}s, slot-seconds {held:6.1f}, "
                f"queued {queued / len(calls):5.2f}s per call, {sum(c.completion_tokens for c in calls):>6} "
                f"completion / {sum(c.prompt_tokens for c in calls):>6} prompt tokens"
            )
        if self.digests_done == self.digests_done:
            lines.append(f"    seed digests done at {self.digests_done - self.started:.1f}s")
        if self.calibration_done == self.calibration_done:
            lines.append(f"    calibration done at {self.calibration_done - self.started:.1f}s")
        idle = self.idle()
        total = self.slots * wall
        lines.append(f"  idle slot-seconds {sum(idle.values()):.1f} of {total:.1f}, by cause:")
        lines += [f"    {seconds:6.1f} ({seconds / total:5.1%})  {cause}" for cause, seconds in idle.items()]
        return lines


async def _stamped(digests: Any, timeline: Timeline) -> Any:
    try:
        return await digests
    finally:
        timeline.digests_done = time.perf_counter()


class _TimedSlots(Slots):
    """A model's slots that stamp the current call when it gets a slot and when it gives it back."""

    async def acquire(self, priority: int = 0) -> None:
        await super().acquire(priority)
        if (call := _CALL.get()) is not None:
            call.start = time.perf_counter()

    def release(self) -> None:
        if (call := _CALL.get()) is not None:
            call.end = time.perf_counter()
        super().release()
