"""Stage progress with rates, one source for every view: the CLI's bars and log lines, the worker's
`status.shards.<i>.stages` and the job's `status.stages` (their sum).

The engine reports `(stage, done, total)` per shard as absolute numbers; a `StageBook` keeps the latest per
shard and stage, when each stage started, and derives the rate (finished units per second since the stage's
first planned unit). `round` is reported on the same channel: done is the round in progress, total the rounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from quorum.api.synthesis import StageState, StageStatus

ROUND = "round"


@dataclass
class _Meter:
    by_shard: dict[int, tuple[int, int]] = field(default_factory=dict)
    started: float | None = None
    finished: float | None = None

    @property
    def done(self) -> int:
        return sum(d for d, _ in self.by_shard.values())

    @property
    def total(self) -> int:
        return sum(t for _, t in self.by_shard.values())


class StageBook:
    def __init__(self, stages: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.meters = {name: _Meter() for name in (ROUND, *stages)}

    def update(self, shard: int, stage: str, done: int, total: int) -> bool:
        """Record a report; True when the stage started or finished with it (a transition worth a log line)."""
        meter = self.meters.setdefault(stage, _Meter())
        before = self.state(stage)
        meter.by_shard[shard] = (done, total)
        now = self.clock()
        if meter.started is None and (total or done):
            meter.started = now
        meter.finished = now if stage != ROUND and meter.total and meter.done >= meter.total else None
        return self.state(stage) != before

    def state(self, stage: str) -> StageState:
        meter = self.meters[stage]
        if meter.started is None:
            return StageState.PENDING
        return StageState.SUCCEEDED if meter.finished is not None else StageState.RUNNING

    def elapsed(self, stage: str) -> float:
        meter = self.meters[stage]
        if meter.started is None:
            return 0.0
        return (meter.finished or self.clock()) - meter.started

    def rate(self, stage: str) -> float:
        elapsed = self.elapsed(stage)
        return round(self.meters[stage].done / elapsed, 3) if elapsed > 0 else 0.0

    def current_round(self) -> tuple[int, int]:
        """(round in progress, rounds planned): the furthest shard's."""
        reports = self.meters[ROUND].by_shard.values()
        return max((d for d, _ in reports), default=0), max((t for _, t in reports), default=0)

    def snapshot(self) -> list[StageStatus]:
        """Every stage that has started, in pipeline order."""
        return [
            StageStatus(name=name, state=self.state(name), done=meter.done, total=meter.total, rate=self.rate(name))
            for name, meter in self.meters.items()
            if meter.started is not None
        ]


def combine_stages(per_shard: Iterable[list[dict]]) -> list[dict]:
    """The job's view: each stage's done, total and rate summed over the shards' reports (wire dicts)."""
    combined: dict[str, StageStatus] = {}
    for stages in per_shard:
        for wire in stages:
            stage = StageStatus.model_validate(wire)
            seen = combined.get(stage.name)
            if seen is None:
                combined[stage.name] = stage
                continue
            running = StageState.RUNNING in (seen.state, stage.state) or seen.state != stage.state
            combined[stage.name] = StageStatus(
                name=stage.name,
                state=StageState.RUNNING if running else stage.state,
                done=max(seen.done, stage.done) if stage.name == ROUND else seen.done + stage.done,
                total=max(seen.total, stage.total) if stage.name == ROUND else seen.total + stage.total,
                rate=round(seen.rate + stage.rate, 3),
            )
    return [s.to_wire() for s in combined.values()]
