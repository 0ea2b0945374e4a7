"""Calibration: every reviewer model scores the same few seeds, intact and with a planted flaw, before any
sample is gated.

Why before: the gate must know which reviewers to trust when it decides, and the decision must not depend on
the order in which samples finish (a resumed run has to reach the same verdicts). A fixed calibration set,
drawn from the whole seed set with the spec's seed, gives every shard the same evidence. The planted flaws
(the instruction's words shuffled; the response of another seed) make the set informative: an honest
reviewer scores them lower than the intact seeds, so its scores spread, while a reviewer that gives one score
to everything shows up as constant. `reliability.assess` turns the reviews into flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quorum.gra.reliability import Observation
from quorum.gra.roles import rng_for
from quorum.gra.sample import Review
from quorum.gra.seeds import Seed

INTACT, SHUFFLED, MISMATCHED = "intact", "shuffled-instruction", "mismatched-response"
ROUNDS = {"instruction": (INTACT, SHUFFLED), "response": (INTACT, MISMATCHED)}
"""Which variants each review round sees."""


@dataclass(frozen=True)
class CalibrationItem:
    seed_id: str
    variant: str
    domain: str
    sample: dict[str, str]

    @property
    def unit(self) -> str:
        return f"calibration:{self.seed_id}:{self.variant}"


def calibration_items(seeds: list[Seed], count: int, seed: int, domains: dict[str, str]) -> list[CalibrationItem]:
    """`count` seeds spread over the domains, each as intact, shuffled-instruction and mismatched-response."""
    if count <= 0 or not seeds:
        return []
    rng = rng_for(seed, "calibration")
    by_domain: dict[str, list[Seed]] = {}
    for candidate in rng.sample(seeds, len(seeds)):
        by_domain.setdefault(domains.get(candidate.id, ""), []).append(candidate)
    chosen: list[Seed] = []
    while len(chosen) < min(count, len(seeds)):
        for group in by_domain.values():
            if group and len(chosen) < count:
                chosen.append(group.pop())
    items = []
    for number, picked in enumerate(chosen):
        domain = domains.get(picked.id, "general")
        intact = {"instruction": picked.instruction, "input": picked.input, "output": picked.output}
        other = chosen[(number + 1) % len(chosen)]
        mismatched = other.output if other is not picked and other.output != picked.output else picked.instruction
        items.append(CalibrationItem(picked.id, INTACT, domain, intact))
        items.append(CalibrationItem(picked.id, SHUFFLED, domain, {**intact, "instruction": _shuffled(picked, rng)}))
        items.append(CalibrationItem(picked.id, MISMATCHED, domain, {**intact, "output": mismatched}))
    return items


def _shuffled(picked: Seed, rng: Any) -> str:
    words = picked.instruction.split()
    mixed = rng.sample(words, len(words))
    return " ".join(mixed if mixed != words else words[::-1])


def observation(item: CalibrationItem, round_name: str, review: Review) -> Observation:
    return Observation(review.model, f"{round_name}:{item.unit}", review.score, review.critique, review.prompt_copy)
