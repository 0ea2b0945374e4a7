"""Stages 3–7 for one sample: generate, review the instruction, gate, review the response, gate, adjudicate.

Every decision draws from a generator seeded by (spec seed, round, slot), so a sample comes out the same
whichever shard, order or attempt produces it; that is what lets a killed run resume without duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from quorum.api.synthesis import SynthesisJobSpec
from quorum.gra import prompts
from quorum.gra.gate import Verdict, gate
from quorum.gra.reliability import copied_share, prompt_words
from quorum.gra.roles import Cast, cast_sample, pick_adjudicator, pick_generator, rng_for
from quorum.gra.sample import (
    INSTRUCTION,
    ROUNDS,
    Adjudication,
    CallError,
    Review,
    RoundOutcome,
    Sample,
    SampleRecord,
    SampleStatus,
    TokenUse,
)
from quorum.gra.schedule import call_priority
from quorum.gra.seeds import Seed
from quorum.llm import CallFailed, ClientPool, Completion

StageHook = Callable[[str, int], None]
"""(stage, +planned) when work enters a stage; (stage, -1) when one unit of it finishes."""


@dataclass(frozen=True)
class Slot:
    round: int
    index: int
    """Position within the round, unique across shards."""
    domain: str
    demos: tuple[Seed, ...] = ()
    seed: Seed | None = None
    """Refine mode: the seed under review."""

    @property
    def id(self) -> str:
        if self.seed is not None:
            return f"refine-{self.seed.id}"
        return f"r{self.round:02d}-{self.index:06d}"


class SampleFailed(Exception):
    def __init__(self, stage: str, failure: CallFailed) -> None:
        super().__init__(str(failure))
        self.stage = stage
        self.failure = failure


@dataclass
class Tokens:
    by_model: dict[str, TokenUse] = field(default_factory=dict)

    def add(self, completion: Completion) -> None:
        used = TokenUse(completion.prompt_tokens, completion.completion_tokens)
        self.by_model[completion.model] = self.by_model.get(completion.model, TokenUse()) + used


class SampleRunner:
    """Runs the per-sample stages against a client pool; one instance per shard."""

    def __init__(
        self,
        spec: SynthesisJobSpec,
        pool: ClientPool,
        digests: dict[str, dict[str, Any] | None],
        hook: StageHook | None = None,
        *,
        book: prompts.PromptBook | None = None,
        exclusions: Callable[[], Awaitable[frozenset[str]]] | None = None,
        shard: int | None = None,
    ) -> None:
        self.spec = spec
        self.pool = pool
        self.digests = digests
        self.hook = hook or (lambda stage, delta: None)
        self.book = book or prompts.PromptBook.built_in()
        self.exclusions = exclusions or _no_exclusions
        """The reviewer models whose verdicts the gate leaves out (degenerate by calibration): awaited at each
        gate, so samples generate and are reviewed while the calibration that decides them is still running."""
        self.shard = shard
        review = spec.review
        self.generate_schema = prompts.generate_schema(spec.generation.max_tokens)
        self.adjudicate_schema = prompts.adjudicate_schema(review.scale, spec.adjudication.max_tokens)

    async def run(self, slot: Slot) -> SampleRecord:
        rng = rng_for(self.spec.generation.seed, "slot", slot.round, slot.index, slot.seed.id if slot.seed else "")
        tokens = Tokens()
        generator = pick_generator(self.spec, rng) if slot.seed is None else None
        cast = cast_sample(self.spec, rng, generator)
        review: dict[str, RoundOutcome] = {}
        sample: Sample | None = None
        error: CallError | None = None
        try:
            sample = await self._sample(slot, generator, rng.randrange(2**31), tokens)
            for round_name in ROUNDS:
                outcome = await self._review_round(slot, sample, cast, round_name, rng, tokens)
                review[round_name] = outcome
                if not outcome.accepted:
                    break
            status = SampleStatus.gated(review)
        except SampleFailed as failed:
            status = SampleStatus.FAILED
            error = CallError.of(failed.stage, failed.failure)
        return SampleRecord(
            id=slot.id,
            round=slot.round,
            slot=slot.index,
            domain=slot.domain,
            demo_seed_ids=tuple(s.id for s in slot.demos),
            source_seed_id=slot.seed.id if slot.seed else None,
            generator=generator,
            reviewers=tuple(cast.reviewers),
            independent=cast.independent,
            status=status,
            review=review,
            sample=sample,
            error=error,
            tokens=tokens.by_model,
            shard=self.shard,
        )

    async def _sample(self, slot: Slot, generator: str | None, call_seed: int, tokens: Tokens) -> Sample:
        if slot.seed is not None:
            digest = self.digests.get(slot.seed.id) or {}
            return Sample(
                slot.seed.instruction,
                slot.seed.input,
                slot.seed.output,
                tuple(digest.get("keywords", [])),
                digest.get("summary", ""),
            )
        assert generator is not None
        generation = self.spec.generation
        demos = [(seed, self.digests.get(seed.id)) for seed in slot.demos]
        self.hook("generate", 0)
        try:
            value, completion = await self.pool[generator].chat_json(
                self.book.messages(prompts.GENERATE, domain=slot.domain, demos=prompts.demo_variables(demos)),
                self.generate_schema,
                schema_name=prompts.GENERATE,
                temperature=generation.temperature,
                top_p=generation.top_p,
                max_tokens=generation.max_tokens,
                seed=call_seed,
                priority=call_priority(slot.index),
            )
        except CallFailed as failure:
            raise SampleFailed("generate", failure) from failure
        finally:
            self.hook("generate", -1)
        tokens.add(completion)
        digest = prompts.clean_digest(value)
        return Sample(
            value["instruction"].strip(),
            value.get("input", "").strip(),
            value["output"].strip(),
            tuple(digest["keywords"]),
            digest["summary"],
        )

    async def _review_round(
        self, slot: Slot, sample: Sample, cast: Cast, round_name: str, rng: Any, tokens: Tokens
    ) -> RoundOutcome:
        stage = f"review-{round_name}"
        seeds = [rng.randrange(2**31) for _ in cast.reviewers]
        priority = call_priority(slot.index)
        prompt = ReviewPrompt.build(self.spec, self.book, round_name, slot.domain, sample.task())
        self.hook(stage, len(cast.reviewers))

        async def one(model: str, seat: int) -> Review:
            try:
                return await review_once(self.spec, self.pool, model, prompt, seeds[seat], tokens, priority)
            finally:
                self.hook(stage, -1)

        reviews = await asyncio.gather(*(one(m, seat) for seat, m in enumerate(cast.reviewers)))
        excluded = await self.exclusions()
        reviews = [replace(review, excluded=review.model in excluded) for review in reviews]
        counted = [r for r in reviews if not r.excluded]
        outcome = self._gate(tuple(reviews), counted)
        if outcome.gate == Verdict.ADJUDICATE:
            if not self.spec.adjudication.enabled:
                outcome = replace(outcome, reason=outcome.reason + "; adjudication disabled")
            else:
                verdict = await self._adjudicate(slot, sample, cast, round_name, counted, rng, tokens)
                outcome = replace(outcome, adjudication=verdict)
        return outcome

    def _gate(self, reviews: tuple[Review, ...], counted: list[Review]) -> RoundOutcome:
        """The gate on the exact scores of the reviewers it may count; a panel of degenerate reviewers only
        is rejected (there is no verdict to trust)."""
        if not counted:
            reason = f"all {len(reviews)} reviewers are degenerate and excluded (review.excludeDegenerate)"
            return RoundOutcome(reviews, 0, None, None, Verdict.REJECT, reason)
        result = gate([r.exact_score for r in counted], self.spec.review)
        excluded = len(reviews) - len(counted)
        reason = result.reason + (f"; {excluded} degenerate reviewer(s) excluded" if excluded else "")
        return RoundOutcome(reviews, len(counted), round(result.mu, 4), round(result.sigma, 4), result.verdict, reason)

    async def _adjudicate(
        self,
        slot: Slot,
        sample: Sample,
        cast: Cast,
        round_name: str,
        reviews: list[Review],
        rng: Any,
        tokens: Tokens,
    ) -> Adjudication:
        choice = pick_adjudicator(self.spec, rng, cast)
        self.hook("adjudicate", 1)
        try:
            value, completion = await self.pool[choice.model].chat_json(
                self.book.messages(
                    prompts.ADJUDICATE,
                    domain=slot.domain,
                    **prompts.task_variables(sample.task()),
                    round=round_name,
                    reviews=[{"score": r.score, "critique": r.critique} for r in reviews],
                    scale=self.spec.review.scale,
                ),
                self.adjudicate_schema,
                schema_name=prompts.ADJUDICATE,
                temperature=self.spec.adjudication.temperature,
                max_tokens=self.spec.adjudication.max_tokens,
                seed=rng.randrange(2**31),
                priority=call_priority(slot.index),
            )
        except CallFailed as failure:
            raise SampleFailed("adjudicate", failure) from failure
        finally:
            self.hook("adjudicate", -1)
        tokens.add(completion)
        return Adjudication(
            choice.model, choice.fallback, Verdict(value["decision"]), value["score"], value["reason"].strip()
        )


async def _no_exclusions() -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True)
class ReviewPrompt:
    """One round's review prompt of one task. Every reviewer of a round reads the same text, so it is rendered,
    and split into words for the copy measure, once per round rather than once per reviewer."""

    round_name: str
    stage: str
    rubric: list[str]
    messages: prompts.Messages
    words: str
    """The prompt's words joined (`reliability.prompt_words`)."""

    @classmethod
    def build(
        cls, spec: SynthesisJobSpec, book: prompts.PromptBook, round_name: str, domain: str, task: dict[str, str]
    ) -> ReviewPrompt:
        review = spec.review
        rubric = review.instruction_rubric if round_name == INSTRUCTION else review.response_rubric
        stage = prompts.REVIEW_INSTRUCTION if round_name == INSTRUCTION else prompts.REVIEW_RESPONSE
        messages = book.messages(stage, **prompts.review_variables(domain, task, rubric, review.scale))
        words = prompt_words("\n".join(m["content"] for m in messages))
        return cls(round_name, stage, rubric, messages, words)


async def review_once(
    spec: SynthesisJobSpec,
    pool: ClientPool,
    model: str,
    prompt: ReviewPrompt,
    seed: int,
    tokens: Tokens,
    priority: int = 0,
) -> Review:
    """One reviewer's verdict on one round of a task: dimension scores and how much of the critique is the
    prompt's own text. `priority` places the call among those waiting for the model's slots."""
    review = spec.review
    try:
        value, completion = await pool[model].chat_json(
            prompt.messages,
            prompts.review_schema(prompt.rubric, review.scale, review.max_tokens),
            schema_name=prompt.stage,
            temperature=review.temperature,
            max_tokens=review.max_tokens,
            seed=seed,
            priority=priority,
        )
    except CallFailed as failure:
        raise SampleFailed(f"review-{prompt.round_name}", failure) from failure
    tokens.add(completion)
    critique = value["critique"].strip()
    return Review(
        model=model,
        scores={d: int(value[prompts.dimension_key(d)]) for d in prompt.rubric},
        critique=critique,
        prompt_copy=round(copied_share(critique, prompt.words), 4),
    )
