"""One candidate sample as the engine keeps it: a typed record with its status, and its one JSON form.

`SampleRunner` makes a `SampleRecord`; shards dedup it and fill its digest; the merge deduplicates across
shards and trims to the target; the funnel counts it; the report plots it. JSON appears only at two edges:
where a record is stored (shard journals and committed rounds, `quorum.gra.store`, through
`SampleRecord.to_json` / `from_json`: camelCase keys, token use keyed by model and scores keyed by rubric
dimension, the format earlier runs wrote, so their journals load and resume) and where it is published
(`quorum.gra.output`: the dataset and rejected.jsonl rows with one provenance schema).

Only what cannot be derived is stored: a review's score is the exact mean of its dimension scores, a round's
outcome follows from its gate and adjudication, and the gate path from the rounds, the error and the status.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction
from typing import Any

from quorum.gra.gate import Verdict, mean_score
from quorum.llm import CallFailed

INSTRUCTION, RESPONSE = "instruction", "response"
ROUNDS = (INSTRUCTION, RESPONSE)
"""Review rounds in order; round `n` is `ROUNDS[n - 1]`."""


class SampleStatus(StrEnum):
    """Where a candidate ended: kept (`accepted`, `adjudicated-accept`) or why not."""

    ACCEPTED = "accepted"
    ADJUDICATED_ACCEPT = "adjudicated-accept"
    REJECTED_ROUND_1 = "rejected-round-1"
    REJECTED_ROUND_2 = "rejected-round-2"
    ADJUDICATED_REJECT_ROUND_1 = "adjudicated-reject-round-1"
    ADJUDICATED_REJECT_ROUND_2 = "adjudicated-reject-round-2"
    FAILED = "failed"
    """A model call failed after its retries; `SampleRecord.error` says which."""
    DUPLICATE = "duplicate"
    """Passed the gates but is a near-duplicate of an earlier sample, a seed or a decontamination item."""
    SURPLUS = "surplus"
    """Passed everything but came after `generation.target` in (round, slot) order."""

    @property
    def is_kept(self) -> bool:
        return self in (SampleStatus.ACCEPTED, SampleStatus.ADJUDICATED_ACCEPT)

    @classmethod
    def gated(cls, review: dict[str, RoundOutcome]) -> SampleStatus:
        """The status the gates give: the first rejecting round rejects, else accepted (via the adjudicator
        when it decided a round)."""
        for number, name in enumerate(ROUNDS, start=1):
            outcome = review.get(name)
            if outcome is not None and not outcome.accepted:
                adjudicated = "adjudicated-reject" if outcome.adjudication is not None else "rejected"
                return cls(f"{adjudicated}-round-{number}")
        if any(outcome.adjudication is not None for outcome in review.values()):
            return cls.ADJUDICATED_ACCEPT
        return cls.ACCEPTED


@dataclass(frozen=True)
class Sample:
    """The task: what the generator wrote (or, in refine mode, the seed under review) and its digest."""

    instruction: str
    input: str
    output: str
    keywords: tuple[str, ...] = ()
    summary: str = ""

    @property
    def has_digest(self) -> bool:
        return len(self.keywords) >= 3 and bool(self.summary)

    def prompt_text(self) -> str:
        """What dedup embeds: the instruction plus its input (as `Seed.prompt_text`)."""
        return f"{self.instruction}\n{self.input}".strip()

    def task(self) -> dict[str, str]:
        """The prompt variables a reviewer, adjudicator or digest call sees."""
        return {"instruction": self.instruction, "input": self.input, "output": self.output}

    def to_json(self) -> dict[str, Any]:
        return {**self.task(), "keywords": list(self.keywords), "summary": self.summary}

    @classmethod
    def from_json(cls, wire: dict[str, Any]) -> Sample:
        return cls(
            wire["instruction"],
            wire.get("input") or "",
            wire.get("output") or "",
            tuple(wire.get("keywords") or ()),
            wire.get("summary") or "",
        )


@dataclass(frozen=True)
class Review:
    """One reviewer's verdict on one round."""

    model: str
    scores: dict[str, int]
    """Per rubric dimension, in rubric order."""
    critique: str
    prompt_copy: float
    """The share of the critique that is the prompt's own text (see `reliability.prompt_copy`)."""
    excluded: bool = False
    """A degenerate reviewer the gate left out (review.excludeDegenerate)."""

    @property
    def exact_score(self) -> Fraction:
        """What the gate uses: the exact mean of the dimension scores."""
        return mean_score(list(self.scores.values()))

    @property
    def score(self) -> float:
        """For display and records."""
        return round(float(self.exact_score), 4)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "scores": dict(self.scores),
            "score": self.score,
            "critique": self.critique,
            "promptCopy": self.prompt_copy,
            "excluded": self.excluded,
        }

    @classmethod
    def from_json(cls, wire: dict[str, Any]) -> Review:
        return cls(
            wire["model"],
            dict(wire["scores"]),
            wire.get("critique", ""),
            wire.get("promptCopy", 0.0),
            bool(wire.get("excluded", False)),
        )


@dataclass(frozen=True)
class Adjudication:
    model: str
    fallback: bool
    """The adjudicator is a reviewer or the generator of the sample (no independent model was left)."""
    decision: Verdict
    score: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fallback": self.fallback,
            "decision": self.decision.value,
            "score": self.score,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, wire: dict[str, Any]) -> Adjudication:
        return cls(wire["model"], bool(wire["fallback"]), Verdict(wire["decision"]), wire["score"], wire["reason"])


@dataclass(frozen=True)
class RoundOutcome:
    """One review round: every reviewer's verdict, μ and σ over those the gate counted, the gate's verdict
    and, when it asked, the adjudicator's."""

    reviews: tuple[Review, ...]
    counted: int
    """Reviews the gate counted (the others are excluded degenerate reviewers)."""
    mu: float | None
    """None when no review could be counted."""
    sigma: float | None
    gate: Verdict
    reason: str
    adjudication: Adjudication | None = None

    @property
    def outcome(self) -> Verdict:
        """ACCEPT or REJECT: the adjudicator's decision when it decided, else the gate's (a gate that asked
        for adjudication with adjudication off rejects)."""
        if self.adjudication is not None:
            return self.adjudication.decision
        return Verdict.ACCEPT if self.gate == Verdict.ACCEPT else Verdict.REJECT

    @property
    def accepted(self) -> bool:
        return self.outcome == Verdict.ACCEPT

    @property
    def step(self) -> str:
        """This round's part of the gate path."""
        if self.adjudication is not None:
            return f"adjudicate-{self.adjudication.decision}"
        if self.gate == Verdict.ADJUDICATE:
            return "adjudicate-disabled-reject"
        return str(self.gate)

    def to_json(self) -> dict[str, Any]:
        return {
            "reviews": [review.to_json() for review in self.reviews],
            "adjudication": None if self.adjudication is None else self.adjudication.to_json(),
            "counted": self.counted,
            "mu": self.mu,
            "sigma": self.sigma,
            "gate": self.gate.value,
            "reason": self.reason,
            "outcome": self.outcome.value,
        }

    @classmethod
    def from_json(cls, wire: dict[str, Any]) -> RoundOutcome:
        reviews = tuple(Review.from_json(r) for r in wire.get("reviews", []))
        adjudication = wire.get("adjudication")
        return cls(
            reviews,
            wire.get("counted", len(reviews)),
            wire.get("mu"),
            wire.get("sigma"),
            Verdict(wire["gate"]),
            wire.get("reason", ""),
            None if adjudication is None else Adjudication.from_json(adjudication),
        )


@dataclass(frozen=True)
class CallError:
    """A model call that failed after its retries, and the stage that made it."""

    stage: str
    endpoint: str
    reason: str
    message: str
    attempts: int
    status: int | None = None
    """The HTTP status, when there was one."""

    @classmethod
    def of(cls, stage: str, failure: CallFailed) -> CallError:
        return cls(stage, failure.endpoint, failure.reason, failure.message, failure.attempts, failure.status)

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "endpoint": self.endpoint,
            "reason": self.reason,
            "message": self.message,
            "attempts": self.attempts,
            "status": self.status,
        }

    @classmethod
    def from_json(cls, wire: dict[str, Any]) -> CallError:
        return cls(
            wire.get("stage", ""),
            wire.get("endpoint", ""),
            wire.get("reason", ""),
            wire.get("message", ""),
            int(wire.get("attempts") or 0),
            wire.get("status"),
        )


@dataclass(frozen=True)
class Neighbour:
    """The dedup check's nearest earlier sample (`sample:<id>`), seed (`seed:<id>`) or decontamination item,
    and its cosine similarity; `label` is None when nothing was near enough to look at."""

    label: str | None
    similarity: float

    def to_json(self) -> dict[str, Any]:
        return {"neighbour": self.label, "similarity": self.similarity}

    @classmethod
    def from_json(cls, wire: dict[str, Any]) -> Neighbour:
        return cls(wire.get("neighbour"), wire["similarity"])


@dataclass(frozen=True)
class TokenUse:
    prompt: int = 0
    completion: int = 0

    def __add__(self, other: TokenUse) -> TokenUse:
        return TokenUse(self.prompt + other.prompt, self.completion + other.completion)


def tokens_to_json(tokens: dict[str, TokenUse]) -> dict[str, list[int]]:
    """`{model: [prompt, completion]}`, the form journals and the digest cache keep."""
    return {model: [used.prompt, used.completion] for model, used in tokens.items()}


def tokens_from_json(wire: dict[str, Any] | None) -> dict[str, TokenUse]:
    return {model: TokenUse(int(used[0]), int(used[1])) for model, used in (wire or {}).items()}


@dataclass
class SampleRecord:
    """A candidate and everything the spec asks a record to carry (gra.md "Every record carries its
    provenance"). Its parts are frozen; after `SampleRunner` makes it, only the dedup and digest steps and
    the merge change it, through the methods below."""

    id: str
    round: int
    slot: int
    """Position within the round, unique across shards."""
    domain: str
    demo_seed_ids: tuple[str, ...]
    source_seed_id: str | None
    """Refine mode: the seed under review."""
    generator: str | None
    """None in refine mode (the seed is the sample)."""
    reviewers: tuple[str, ...]
    independent: bool
    status: SampleStatus
    review: dict[str, RoundOutcome] = field(default_factory=dict)
    """The rounds reached, in order (`ROUNDS`)."""
    sample: Sample | None = None
    """None when generation failed."""
    error: CallError | None = None
    """Why the sample failed (status `failed`)."""
    tokens: dict[str, TokenUse] = field(default_factory=dict)
    """Per model, every call made for this sample."""
    shard: int | None = None
    dedup: Neighbour | None = None
    """Set when the dedup check looked at the sample (it passed the gates and dedup is on)."""
    digest_filled: bool = False
    """The digest (keywords, summary) was completed after acceptance (postprocess.fillDigests)."""
    digest_error: CallError | None = None
    """The digest completion call failed (the sample is kept with the digest it had)."""

    @property
    def is_kept(self) -> bool:
        return self.status.is_kept

    @property
    def adjudicated(self) -> bool:
        return any(outcome.adjudication is not None for outcome in self.review.values())

    def passed(self, round_name: str) -> bool:
        outcome = self.review.get(round_name)
        return outcome is not None and outcome.accepted

    @property
    def gate_path(self) -> str:
        """`instruction:accept>response:adjudicate-reject`: the route the sample took through both gates, then
        whatever took it out after them."""
        steps = [f"{name}:{outcome.step}" for name, outcome in self.review.items()]
        if self.status == SampleStatus.FAILED and self.error is not None:
            steps.append(f"failed:{self.error.stage}")
        elif self.status == SampleStatus.DUPLICATE:
            steps.append("dedup:duplicate")
        elif self.status == SampleStatus.SURPLUS:
            steps.append("target:surplus")
        return ">".join(steps)

    # --- what happens to a record after its gates ----------------------------------------------------------

    def mark_duplicate(self, neighbour: Neighbour) -> None:
        self.status = SampleStatus.DUPLICATE
        self.dedup = neighbour

    def mark_surplus(self) -> None:
        self.status = SampleStatus.SURPLUS

    def fill_digest(self, digest: dict[str, Any], tokens: dict[str, TokenUse]) -> None:
        """Complete the digest from a digest call's (cleaned) answer, keeping what the sample already had."""
        assert self.sample is not None
        sample = self.sample
        keywords = sample.keywords if len(sample.keywords) >= 3 else tuple(digest["keywords"])
        self.sample = replace(sample, keywords=keywords, summary=sample.summary or digest["summary"])
        self.digest_filled = True
        for model, used in tokens.items():
            self.tokens[model] = self.tokens.get(model, TokenUse()) + used

    # --- the one JSON form ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "id": self.id,
            "round": self.round,
            "slot": self.slot,
            "domain": self.domain,
            "demoSeedIds": list(self.demo_seed_ids),
            "sourceSeedId": self.source_seed_id,
            "generator": self.generator,
            "reviewers": list(self.reviewers),
            "independent": self.independent,
            "review": {name: outcome.to_json() for name, outcome in self.review.items()},
        }
        if self.sample is not None:
            wire["sample"] = self.sample.to_json()
        wire["status"] = self.status.value
        if self.error is not None:
            wire["error"] = self.error.to_json()
        wire["gatePath"] = self.gate_path
        wire["tokens"] = tokens_to_json(self.tokens)
        if self.shard is not None:
            wire["shard"] = self.shard
        if self.dedup is not None:
            wire["dedup"] = self.dedup.to_json()
        if self.digest_filled:
            wire["digestFilled"] = True
        if self.digest_error is not None:
            wire["digestError"] = self.digest_error.to_json()
        return wire

    @classmethod
    def from_json(cls, wire: dict[str, Any]) -> SampleRecord:
        """A record as `to_json` wrote it; `gatePath` is derived again, not read."""
        sample, error, dedup, digest_error = (wire.get(k) for k in ("sample", "error", "dedup", "digestError"))
        return cls(
            id=wire["id"],
            round=wire["round"],
            slot=wire["slot"],
            domain=wire["domain"],
            demo_seed_ids=tuple(wire.get("demoSeedIds") or ()),
            source_seed_id=wire.get("sourceSeedId"),
            generator=wire.get("generator"),
            reviewers=tuple(wire.get("reviewers") or ()),
            independent=bool(wire.get("independent", True)),
            status=SampleStatus(wire["status"]),
            review={name: RoundOutcome.from_json(outcome) for name, outcome in (wire.get("review") or {}).items()},
            sample=None if sample is None else Sample.from_json(sample),
            error=None if error is None else CallError.from_json(error),
            tokens=tokens_from_json(wire.get("tokens")),
            shard=wire.get("shard"),
            dedup=None if dedup is None else Neighbour.from_json(dedup),
            digest_filled=bool(wire.get("digestFilled", False)),
            digest_error=None if digest_error is None else CallError.from_json(digest_error),
        )
