"""The μ/σ gate of gra.md §6: a pure function, so the whole decision table can be pinned by tests."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from enum import StrEnum

from quorum.api.synthesis import GreyZone, Review


class Verdict(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    ADJUDICATE = "adjudicate"


@dataclass(frozen=True)
class GateResult:
    verdict: Verdict
    mu: float
    sigma: float
    reason: str


def gate(scores: list[float], review: Review) -> GateResult:
    """Decide one round from the reviewers' scores.

    Order matters and follows gra.md: a low mean rejects even when reviewers disagree (an adjudicator cannot
    rescue a sample everyone scored poorly on average); otherwise disagreement (σ > maxStd) adjudicates; an
    agreed high mean accepts; the agreed grey zone between the thresholds follows `greyZone`.
    """
    if not scores:
        raise ValueError("the gate needs at least one score")
    mu = statistics.fmean(scores)
    sigma = statistics.pstdev(scores)
    if mu < review.reject_below:
        return GateResult(Verdict.REJECT, mu, sigma, f"mean {mu:.2f} < rejectBelow {review.reject_below}")
    if sigma > review.max_std:
        return GateResult(Verdict.ADJUDICATE, mu, sigma, f"std {sigma:.2f} > maxStd {review.max_std}")
    if mu >= review.accept_at_least:
        return GateResult(Verdict.ACCEPT, mu, sigma, f"mean {mu:.2f} >= acceptAtLeast {review.accept_at_least}")
    grey = Verdict.ADJUDICATE if review.grey_zone == GreyZone.ADJUDICATE else Verdict.REJECT
    return GateResult(grey, mu, sigma, f"grey zone: mean {mu:.2f} between thresholds, greyZone {review.grey_zone}")
