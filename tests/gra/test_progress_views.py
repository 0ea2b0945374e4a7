"""Stage progress as people and the cluster see it: rates from one `StageBook`, the job's stages summed over
shards, and off a terminal one line per stage transition plus a heartbeat line while nothing else happens."""

from __future__ import annotations

import time

import pytest

from quorum.api.synthesis import SynthesisCounts
from quorum.cli.synth import StageBoard
from quorum.gra.progress import StageBook, combine_stages


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_stage_rate_is_units_per_second_since_it_started_and_freezes_when_it_finishes() -> None:
    clock = Clock()
    book = StageBook(["generate"], clock=clock)
    assert book.update(0, "generate", 0, 10) is True  # started
    clock.now += 2
    assert book.update(0, "generate", 4, 10) is False
    assert book.rate("generate") == 2.0
    book.update(1, "generate", 6, 6)  # a second shard: done and total add up
    clock.now += 3
    assert book.update(0, "generate", 10, 10) is True  # finished
    clock.now += 100
    status = {s.name: s for s in book.snapshot()}["generate"]
    assert (status.state, status.done, status.total, status.rate) == ("Succeeded", 16, 16, round(16 / 5, 3))


def test_the_job_stages_sum_the_shard_reports() -> None:
    shard_a = [
        {"name": "round", "state": "Running", "done": 1, "total": 2},
        {"name": "generate", "done": 3, "total": 4, "rate": 1.5, "state": "Running"},
    ]
    shard_b = [
        {"name": "round", "state": "Running", "done": 2, "total": 2},
        {"name": "generate", "done": 4, "total": 4, "rate": 2.0, "state": "Succeeded"},
    ]
    combined = {s["name"]: s for s in combine_stages([shard_a, shard_b])}
    assert combined["generate"] == {"name": "generate", "state": "Running", "done": 7, "total": 8, "rate": 3.5}
    assert (combined["round"]["done"], combined["round"]["total"]) == (2, 2)


def test_off_a_terminal_each_transition_is_one_line_and_a_quiet_run_still_logs(capsys: pytest.CaptureFixture) -> None:
    board = StageBoard(10, terminal=False, heartbeat=0.2)
    with board:
        board(0, "round", 1, 3, SynthesisCounts())
        board(0, "generate", 0, 2, SynthesisCounts())
        board(0, "generate", 1, 2, SynthesisCounts(generated=1))  # no transition: no line
        board(0, "generate", 2, 2, SynthesisCounts(generated=2, accepted=1))
        time.sleep(0.5)  # nothing reported for a while: heartbeat lines
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("synth:")]
    events = [line.split(";")[0] for line in lines]
    assert events[:3] == ["synth: round running", "synth: generate running", "synth: generate succeeded"]
    assert "synth: progress" in events and events[-1] == "synth: finished"
    assert "round 1/3, accepted 1/10; generate 2/2" in lines[-1]
