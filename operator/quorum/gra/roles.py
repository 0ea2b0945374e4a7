"""Who plays which role for one sample: reproducible from (seed, round, slot), never the author as reviewer."""

from __future__ import annotations

import random
from dataclasses import dataclass

from quorum.api.synthesis import Role, SynthesisJobSpec


class PoolTooSmall(ValueError):
    """The pool cannot staff a sample under the role policy."""


@dataclass(frozen=True)
class Cast:
    generator: str | None
    """None in refine mode: the seed data has no author in the pool."""
    reviewers: tuple[str, ...]
    independent: bool
    """False when a model reviews its own sample or fills several seats (allowSameModel)."""


@dataclass(frozen=True)
class AdjudicatorChoice:
    model: str
    fallback: bool
    """True when no model outside the author and reviewers could adjudicate."""


def with_role(spec: SynthesisJobSpec, role: Role) -> list[str]:
    return [m.name for m in spec.models if role in m.roles]


def rng_for(seed: int, *parts: object) -> random.Random:
    """A private generator per decision so that resuming or reordering work never shifts another choice."""
    return random.Random(f"{seed}:" + ":".join(str(p) for p in parts))


def cast_sample(spec: SynthesisJobSpec, rng: random.Random, generator: str | None) -> Cast:
    """Draw `review.reviewers` distinct reviewers from the pool minus the generator; with `allowSameModel`
    the seats left empty are filled from the whole reviewer pool (the generator included)."""
    wanted = spec.review.reviewers
    pool = with_role(spec, Role.REVIEWER)
    others = [name for name in pool if name != generator]
    if len(others) >= wanted:
        return Cast(generator, tuple(rng.sample(others, wanted)), True)
    if not spec.review.allow_same_model:
        raise PoolTooSmall(
            f"{wanted} reviewers wanted but only {len(others)} reviewer models besides {generator!r}; "
            "lower review.reviewers or set review.allowSameModel"
        )
    if not pool:
        raise PoolTooSmall("no model has the reviewer role")
    seats = list(others)
    rng.shuffle(seats)
    while len(seats) < wanted:
        seats.append(rng.choice(pool))
    return Cast(generator, tuple(seats), False)


def pick_generator(spec: SynthesisJobSpec, rng: random.Random) -> str:
    generators = with_role(spec, Role.GENERATOR)
    if not generators:
        raise PoolTooSmall("no model has the generator role")
    return rng.choice(generators)


def pick_adjudicator(spec: SynthesisJobSpec, rng: random.Random, cast: Cast) -> AdjudicatorChoice:
    """Prefer a model that took no part; else any adjudicator but the author; else any adjudicator."""
    pool = with_role(spec, Role.ADJUDICATOR)
    if not pool:
        raise PoolTooSmall("no model has the adjudicator role")
    involved = {cast.generator, *cast.reviewers}
    outsiders = [name for name in pool if name not in involved]
    if outsiders:
        return AdjudicatorChoice(rng.choice(outsiders), False)
    not_author = [name for name in pool if name != cast.generator]
    return AdjudicatorChoice(rng.choice(not_author or pool), True)
