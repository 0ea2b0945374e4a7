"""Stages 3–7 for one sample: generate, review the instruction, gate, review the response, gate, adjudicate.

Every decision draws from a generator seeded by (spec seed, round, slot), so a sample comes out the same
whichever shard, order or attempt produces it; that is what lets a killed run resume without duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quorum.api.synthesis import SynthesisJobSpec
from quorum.gra import prompts
from quorum.gra.gate import Verdict, gate, mean_score
from quorum.gra.reliability import prompt_copy
from quorum.gra.roles import Cast, cast_sample, pick_adjudicator, pick_generator, rng_for
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
    by_model: dict[str, list[int]] = field(default_factory=dict)

    def add(self, completion: Completion) -> None:
        entry = self.by_model.setdefault(completion.model, [0, 0])
        entry[0] += completion.prompt_tokens
        entry[1] += completion.completion_tokens


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
        excluded: frozenset[str] = frozenset(),
    ) -> None:
        self.spec = spec
        self.pool = pool
        self.digests = digests
        self.hook = hook or (lambda stage, delta: None)
        self.book = book or prompts.PromptBook.built_in()
        self.excluded = excluded
        """Reviewer models whose verdicts the gate leaves out (degenerate by calibration)."""
        review = spec.review
        self.generate_schema = prompts.generate_schema(spec.generation.max_tokens)
        self.adjudicate_schema = prompts.adjudicate_schema(review.scale, spec.adjudication.max_tokens)

    async def run(self, slot: Slot) -> dict[str, Any]:
        rng = rng_for(self.spec.generation.seed, "slot", slot.round, slot.index, slot.seed.id if slot.seed else "")
        tokens = Tokens()
        generator = pick_generator(self.spec, rng) if slot.seed is None else None
        cast = cast_sample(self.spec, rng, generator)
        record: dict[str, Any] = {
            "id": slot.id,
            "round": slot.round,
            "slot": slot.index,
            "domain": slot.domain,
            "demoSeedIds": [s.id for s in slot.demos],
            "sourceSeedId": slot.seed.id if slot.seed else None,
            "generator": generator,
            "reviewers": list(cast.reviewers),
            "independent": cast.independent,
            "review": {},
        }
        try:
            sample = await self._sample(slot, generator, rng.randrange(2**31), tokens)
            record["sample"] = sample
            for round_name, round_number in (("instruction", 1), ("response", 2)):
                outcome = await self._review_round(slot, sample, cast, round_name, rng, tokens)
                record["review"][round_name] = outcome
                if outcome["outcome"] == "reject":
                    adjudicated = outcome["adjudication"] is not None
                    record["status"] = f"{'adjudicated-reject' if adjudicated else 'rejected'}-round-{round_number}"
                    break
            else:
                via_adjudicator = any(r["adjudication"] for r in record["review"].values())
                record["status"] = "adjudicated-accept" if via_adjudicator else "accepted"
        except SampleFailed as failed:
            record["status"] = "failed"
            record["error"] = {"stage": failed.stage, **failed.failure.as_record()}
        record["gatePath"] = _gate_path(record)
        record["tokens"] = tokens.by_model
        return record

    async def _sample(self, slot: Slot, generator: str | None, call_seed: int, tokens: Tokens) -> dict[str, Any]:
        if slot.seed is not None:
            digest = self.digests.get(slot.seed.id) or {}
            return {
                "instruction": slot.seed.instruction,
                "input": slot.seed.input,
                "output": slot.seed.output,
                "keywords": list(digest.get("keywords", [])),
                "summary": digest.get("summary", ""),
            }
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
            )
        except CallFailed as failure:
            raise SampleFailed("generate", failure) from failure
        finally:
            self.hook("generate", -1)
        tokens.add(completion)
        return {
            "instruction": value["instruction"].strip(),
            "input": value.get("input", "").strip(),
            "output": value["output"].strip(),
            **prompts.clean_digest(value),
        }

    async def _review_round(
        self, slot: Slot, sample: dict[str, Any], cast: Cast, round_name: str, rng: Any, tokens: Tokens
    ) -> dict[str, Any]:
        stage = f"review-{round_name}"
        seeds = [rng.randrange(2**31) for _ in cast.reviewers]
        self.hook(stage, len(cast.reviewers))

        async def one(model: str, seat: int) -> dict[str, Any]:
            try:
                return await review_once(
                    self.spec, self.pool, self.book, model, round_name, slot.domain, sample, seeds[seat], tokens
                )
            finally:
                self.hook(stage, -1)

        reviews = list(await asyncio.gather(*(one(m, seat) for seat, m in enumerate(cast.reviewers))))
        for review in reviews:
            review["excluded"] = review["model"] in self.excluded
        counted = [r for r in reviews if not r["excluded"]]
        outcome = self._gate(counted, len(reviews))
        for review in reviews:
            review.pop("exactScore")
        outcome["reviews"] = reviews
        if outcome["gate"] == Verdict.ADJUDICATE:
            if not self.spec.adjudication.enabled:
                outcome["reason"] += "; adjudication disabled"
            else:
                verdict = await self._adjudicate(slot, sample, cast, round_name, counted, rng, tokens)
                outcome["adjudication"] = verdict
                outcome["outcome"] = verdict["decision"]
        return outcome

    def _gate(self, counted: list[dict[str, Any]], panel: int) -> dict[str, Any]:
        """The gate on the exact scores of the reviewers it may count; a panel of degenerate reviewers only
        is rejected (there is no verdict to trust)."""
        outcome: dict[str, Any] = {"reviews": [], "adjudication": None, "counted": len(counted)}
        if not counted:
            reason = f"all {panel} reviewers are degenerate and excluded (review.excludeDegenerate)"
            return {
                **outcome,
                "mu": None,
                "sigma": None,
                "gate": str(Verdict.REJECT),
                "reason": reason,
                "outcome": "reject",
            }
        result = gate([r["exactScore"] for r in counted], self.spec.review)
        return {
            **outcome,
            "mu": round(result.mu, 4),
            "sigma": round(result.sigma, 4),
            "gate": str(result.verdict),
            "reason": result.reason
            + (f"; {panel - len(counted)} degenerate reviewer(s) excluded" if panel > len(counted) else ""),
            "outcome": "accept" if result.verdict == Verdict.ACCEPT else "reject",
        }

    async def _adjudicate(
        self,
        slot: Slot,
        sample: dict[str, Any],
        cast: Cast,
        round_name: str,
        reviews: list[dict[str, Any]],
        rng: Any,
        tokens: Tokens,
    ) -> dict[str, Any]:
        choice = pick_adjudicator(self.spec, rng, cast)
        self.hook("adjudicate", 1)
        try:
            value, completion = await self.pool[choice.model].chat_json(
                self.book.messages(
                    prompts.ADJUDICATE,
                    domain=slot.domain,
                    **prompts.task_variables(sample),
                    round=round_name,
                    reviews=[{"score": r["score"], "critique": r["critique"]} for r in reviews],
                    scale=self.spec.review.scale,
                ),
                self.adjudicate_schema,
                schema_name=prompts.ADJUDICATE,
                temperature=self.spec.adjudication.temperature,
                max_tokens=self.spec.adjudication.max_tokens,
                seed=rng.randrange(2**31),
            )
        except CallFailed as failure:
            raise SampleFailed("adjudicate", failure) from failure
        finally:
            self.hook("adjudicate", -1)
        tokens.add(completion)
        return {
            "model": choice.model,
            "fallback": choice.fallback,
            "decision": value["decision"],
            "score": value["score"],
            "reason": value["reason"].strip(),
        }


async def review_once(
    spec: SynthesisJobSpec,
    pool: ClientPool,
    book: prompts.PromptBook,
    model: str,
    round_name: str,
    domain: str,
    sample: dict[str, Any],
    seed: int,
    tokens: Tokens,
) -> dict[str, Any]:
    """One reviewer's verdict on one round: dimension scores, their exact mean (`exactScore`, for the gate
    only, never written) and how much of the critique is the prompt's own text."""
    review = spec.review
    rubric = review.instruction_rubric if round_name == "instruction" else review.response_rubric
    stage = prompts.REVIEW_INSTRUCTION if round_name == "instruction" else prompts.REVIEW_RESPONSE
    messages = book.messages(stage, **prompts.review_variables(domain, sample, rubric, review.scale))
    try:
        value, completion = await pool[model].chat_json(
            messages,
            prompts.review_schema(rubric, review.scale, review.max_tokens),
            schema_name=stage,
            temperature=review.temperature,
            max_tokens=review.max_tokens,
            seed=seed,
        )
    except CallFailed as failure:
        raise SampleFailed(f"review-{round_name}", failure) from failure
    tokens.add(completion)
    scores = {d: int(value[prompts.dimension_key(d)]) for d in rubric}
    exact_score = mean_score(list(scores.values()))
    critique = value["critique"].strip()
    return {
        "model": model,
        "scores": scores,
        "score": round(float(exact_score), 4),
        "exactScore": exact_score,
        "critique": critique,
        "promptCopy": round(prompt_copy(critique, "\n".join(m["content"] for m in messages)), 4),
    }


def _gate_path(record: dict[str, Any]) -> str:
    """`instruction:accept>response:adjudicate-reject`: the route a sample took through both gates."""
    steps = []
    for round_name, outcome in record["review"].items():
        step = outcome["gate"]
        if outcome["adjudication"] is not None:
            step = f"adjudicate-{outcome['adjudication']['decision']}"
        elif outcome["gate"] == "adjudicate":
            step = "adjudicate-disabled-reject"
        steps.append(f"{round_name}:{step}")
    if record.get("status") == "failed":
        steps.append(f"failed:{record['error']['stage']}")
    return ">".join(steps)
