"""The μ/σ gate of gra.md §6: a pure function, so the whole decision table can be pinned by tests.

Why exact arithmetic: a reviewer's score is the mean of its rubric dimensions (19/3, 22/3, ...), and a panel
mean of exactly `acceptAtLeast` must accept. Binary floats turn 7 into 6.99997 once anything is rounded or
summed in another order, so the gate works on `Fraction`s and compares σ² with maxStd² (no square root).
Thresholds are read as the decimals the user wrote (`Fraction(str(7.0))`). Rounding is for display only.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from quorum.api.synthesis import GreyZone, Review

Score = Fraction | int | float


class Verdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    ADJUDICATE = "adjudicate"


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    mu: float
    """For display and records; the decision used the exact value."""
    sigma: float
    reason: str


def exact(value: Score) -> Fraction:
    """A score as an exact fraction (floats are taken at their exact binary value)."""
    return value if isinstance(value, Fraction) else Fraction(value)


@functools.lru_cache(maxsize=256)
def threshold(value: float) -> Fraction:
    """A spec threshold as the decimal the user wrote: 0.1 means 1/10, not the nearest double. Cached: a spec
    has a few thresholds, and parsing them again for every sample was a third of the gate's CPU."""
    return Fraction(str(value))


def mean_score(dimension_scores: Sequence[int]) -> Fraction:
    """One reviewer's score: the exact mean of its rubric dimensions."""
    return Fraction(sum(dimension_scores), len(dimension_scores))


def gate(scores: Sequence[Score], review: Review) -> GateResult:
    """Decide one round from the reviewers' scores.

    Order matters and follows gra.md: a low mean rejects even when reviewers disagree (an adjudicator cannot
    rescue a sample everyone scored poorly on average); otherwise disagreement (σ > maxStd) adjudicates; an
    agreed high mean accepts; the agreed grey zone between the thresholds follows `greyZone`.
    """
    if not scores:
        raise ValueError("the gate needs at least one score")
    values = [exact(s) for s in scores]
    mu = sum(values, Fraction(0)) / len(values)
    variance = sum(((v - mu) ** 2 for v in values), Fraction(0)) / len(values)
    mu_shown, sigma_shown = float(mu), math.sqrt(variance)
    if mu < threshold(review.reject_below):
        return GateResult(
            Verdict.REJECT, mu_shown, sigma_shown, f"mean {mu_shown:.2f} < rejectBelow {review.reject_below}"
        )
    if variance > threshold(review.max_std) ** 2:
        return GateResult(Verdict.ADJUDICATE, mu_shown, sigma_shown, f"std {sigma_shown:.2f} > maxStd {review.max_std}")
    if mu >= threshold(review.accept_at_least):
        return GateResult(
            Verdict.ACCEPT, mu_shown, sigma_shown, f"mean {mu_shown:.2f} >= acceptAtLeast {review.accept_at_least}"
        )
    grey = Verdict.ADJUDICATE if review.grey_zone == GreyZone.ADJUDICATE else Verdict.REJECT
    return GateResult(
        grey, mu_shown, sigma_shown, f"grey zone: mean {mu_shown:.2f} between thresholds, greyZone {review.grey_zone}"
    )
