"""The typed sample record: its JSON form is the journal format earlier runs wrote (so their journals resume),
its status strings are the ones every output uses, and what it derives (scores, outcomes, the gate path)
matches what was stored."""

from __future__ import annotations

import json

import pytest

from quorum.gra.gate import Verdict
from quorum.gra.sample import (
    Adjudication,
    CallError,
    Neighbour,
    Review,
    RoundOutcome,
    Sample,
    SampleRecord,
    SampleStatus,
    TokenUse,
)

# Lines as the engine wrote them before the record was typed (a committed round of a simulated run).
DUPLICATE = (
    '{"id": "r01-000008", "round": 1, "slot": 8, "domain": "code", "demoSeedIds": ["code-1", "code-0"], '
    '"sourceSeedId": null, "generator": "c", "reviewers": ["b", "a"], "independent": true, "review": '
    '{"instruction": {"reviews": [{"model": "b", "scores": {"clarity": 8, "domain relevance": 8}, "score": 8.0, '
    '"critique": "Notes: budget protein.", "promptCopy": 0.0, "excluded": false}, {"model": "a", "scores": '
    '{"clarity": 2, "domain relevance": 3}, "score": 2.5, "critique": "Notes: market letter.", "promptCopy": 0.25, '
    '"excluded": true}], "adjudication": {"model": "d", "fallback": false, "decision": "accept", "score": 8, '
    '"reason": "settled"}, "counted": 1, "mu": 5.0, "sigma": 3.0, "gate": "adjudicate", "reason": "std 3.00 > '
    'maxStd 1.5", "outcome": "accept"}, "response": {"reviews": [{"model": "b", "scores": {"correctness": 9, '
    '"coherence": 8}, "score": 8.5, "critique": "Notes: bridge string.", "promptCopy": 0.0, "excluded": false}], '
    '"adjudication": null, "counted": 1, "mu": 8.5, "sigma": 0.0, "gate": "accept", "reason": "mean 8.50 >= '
    'acceptAtLeast 7.0", "outcome": "accept"}}, "sample": {"instruction": "Explain what a prime number is.", '
    '"input": "", "output": "Answer 950.", "keywords": ["code", "prime", "sum"], "summary": "A code task."}, '
    '"status": "duplicate", "gatePath": "instruction:adjudicate-accept>response:accept>dedup:duplicate", '
    '"tokens": {"c": [121, 26], "b": [446, 42], "a": [446, 42], "d": [119, 6]}, "shard": 0, "dedup": '
    '{"neighbour": "sample:r01-000000", "similarity": 1.0}}'
)
FAILED = (
    '{"id": "r01-000005", "round": 1, "slot": 5, "domain": "code", "demoSeedIds": ["code-1"], "sourceSeedId": '
    'null, "generator": "a", "reviewers": ["b", "d"], "independent": true, "review": {}, "status": "failed", '
    '"error": {"stage": "generate", "endpoint": "a", "reason": "HTTP500", "message": "generator down", '
    '"attempts": 2, "status": 500}, "gatePath": "failed:generate", "tokens": {}, "shard": 1}'
)


@pytest.mark.parametrize("line", [DUPLICATE, FAILED], ids=["duplicate", "failed"])
def test_a_journal_line_of_an_earlier_run_reads_back_and_writes_the_same_bytes(line: str) -> None:
    record = SampleRecord.from_json(json.loads(line))
    assert json.dumps(record.to_json(), ensure_ascii=False) == line


def test_the_typed_record_derives_what_the_line_stored() -> None:
    record = SampleRecord.from_json(json.loads(DUPLICATE))
    assert record.status == SampleStatus.DUPLICATE and not record.is_kept and record.adjudicated
    instruction = record.review["instruction"]
    assert instruction.outcome == Verdict.ACCEPT and instruction.step == "adjudicate-accept"
    assert [r.score for r in instruction.reviews] == [8.0, 2.5] and instruction.reviews[1].excluded
    assert record.passed("instruction") and record.passed("response")
    assert record.tokens["b"] == TokenUse(446, 42) and record.dedup == Neighbour("sample:r01-000000", 1.0)
    failed = SampleRecord.from_json(json.loads(FAILED))
    assert failed.sample is None and failed.error == CallError("generate", "a", "HTTP500", "generator down", 2, 500)


def test_statuses_are_the_strings_every_output_uses() -> None:
    assert {s.value for s in SampleStatus} == {
        "accepted",
        "adjudicated-accept",
        "rejected-round-1",
        "rejected-round-2",
        "adjudicated-reject-round-1",
        "adjudicated-reject-round-2",
        "failed",
        "duplicate",
        "surplus",
    }
    assert {s for s in SampleStatus if s.is_kept} == {SampleStatus.ACCEPTED, SampleStatus.ADJUDICATED_ACCEPT}


def outcome(gate: Verdict, decision: Verdict | None = None) -> RoundOutcome:
    review = Review("r", {"clarity": 7}, "fine", 0.0)
    adjudication = None if decision is None else Adjudication("adj", False, decision, 5, "why")
    return RoundOutcome((review,), 1, 7.0, 0.0, gate, "reason", adjudication)


ACCEPT, REJECT, ADJUDICATE = Verdict.ACCEPT, Verdict.REJECT, Verdict.ADJUDICATE


@pytest.mark.parametrize(
    ("rounds", "status", "path"),
    [
        ([outcome(ACCEPT), outcome(ACCEPT)], "accepted", "instruction:accept>response:accept"),
        ([outcome(REJECT)], "rejected-round-1", "instruction:reject"),
        ([outcome(ACCEPT), outcome(REJECT)], "rejected-round-2", "instruction:accept>response:reject"),
        ([outcome(ADJUDICATE)], "rejected-round-1", "instruction:adjudicate-disabled-reject"),
        ([outcome(ADJUDICATE, REJECT)], "adjudicated-reject-round-1", "instruction:adjudicate-reject"),
        (
            [outcome(ACCEPT), outcome(ADJUDICATE, REJECT)],
            "adjudicated-reject-round-2",
            "instruction:accept>response:adjudicate-reject",
        ),
        (
            [outcome(ADJUDICATE, ACCEPT), outcome(ACCEPT)],
            "adjudicated-accept",
            "instruction:adjudicate-accept>response:accept",
        ),
    ],
)
def test_the_gates_give_the_status_and_the_path(rounds: list[RoundOutcome], status: str, path: str) -> None:
    review = dict(zip(("instruction", "response"), rounds, strict=False))
    record = SampleRecord("s", 1, 0, "math", (), None, "gen", ("r",), True, SampleStatus.gated(review), review)
    assert (record.status, record.gate_path) == (status, path)


def kept_record() -> SampleRecord:
    review = {"instruction": outcome(ACCEPT), "response": outcome(ACCEPT)}
    record = SampleRecord("s", 1, 0, "math", (), None, "gen", ("r",), True, SampleStatus.ACCEPTED, review)
    record.sample = Sample("Add 2 and 2.", "", "4", ("math",), "")
    record.tokens = {"gen": TokenUse(10, 5)}
    return record


def test_what_happens_after_the_gates_extends_the_path() -> None:
    filled = kept_record()
    filled.fill_digest({"keywords": ["add", "sum", "numbers"], "summary": "Adds."}, {"gen": TokenUse(3, 2)})
    assert filled.sample is not None and filled.sample.keywords == ("add", "sum", "numbers")
    assert filled.sample.summary == "Adds." and filled.digest_filled and filled.tokens == {"gen": TokenUse(13, 7)}
    assert filled.is_kept and filled.to_json()["digestFilled"] is True
    surplus = kept_record()
    surplus.mark_surplus()
    assert surplus.gate_path == "instruction:accept>response:accept>target:surplus" and not surplus.is_kept
    duplicate = kept_record()
    duplicate.mark_duplicate(Neighbour("seed:x", 0.97))
    assert duplicate.gate_path.endswith("response:accept>dedup:duplicate") and not duplicate.is_kept
    assert SampleRecord.from_json(duplicate.to_json()) == duplicate
