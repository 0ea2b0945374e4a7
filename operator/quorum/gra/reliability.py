"""Degenerate-reviewer detection: is each reviewer model judging, or copying and repeating itself?

Why: a small model asked for JSON can fill the schema without reading the sample (the prompt's own words as
its critique, the same score for everything). Its verdicts then decide the gate while looking like agreement.
Per reviewer model this module measures

- the **copy rate**: the share of its critiques of which at least `COPIED_SHARE` of the word 5-grams occur in
  the prompt it was sent or in another review (any model, any sample);
- **constant scores**: the population std of its scores and the share of its most common (rounded) score;
- the **score distribution** (a histogram over 1..scale);
- **agreement**: Pearson correlation with the mean of the other reviewers on the same units, and Krippendorff's
  α (interval) of the whole panel with and without it.

A model is **degenerate** when, over at least `MIN_REVIEWS` reviews, its copy rate is at least
`MAX_COPY_RATE`, or its scores are constant (std below `MIN_SCORE_STD` or one score in `MAX_MODAL_SHARE` of
its reviews). Agreement is reported but never flags on its own: an honest minority reviewer may disagree.
The same measures are computed on the calibration set (which decides the gate's exclusions before any sample
is gated) and over the whole run (reported afterwards).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

SHINGLE_WORDS = 5
COPIED_SHARE = 0.5
"""A critique is copied when at least this share of its 5-grams appear in the prompt or in another review."""
MAX_COPY_RATE = 0.5
"""A reviewer whose copied critiques reach this share is degenerate."""
MIN_SCORE_STD = 0.35
"""Scores with a population std below this (on any scale) are constant."""
MAX_MODAL_SHARE = 0.9
"""Scores whose most common (rounded) value covers this share of reviews are near-constant."""
MIN_REVIEWS = 6
"""Fewer reviews than this are too few to call a reviewer degenerate."""

_WORD = re.compile(r"\w+")


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[str]:
    """Word n-grams (lower case); a text shorter than n words is one shingle."""
    words = _WORD.findall(text.lower())
    if not words:
        return set()
    if len(words) < size:
        return {" ".join(words)}
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def overlap(text: str, reference: set[str]) -> float:
    """The share of `text`'s shingles found in `reference`."""
    own = shingles(text)
    return len(own & reference) / len(own) if own else 1.0


def prompt_copy(critique: str, prompt_text: str) -> float:
    """How much of a critique is the prompt's own text (instructions, rubric or the sample itself): the share
    of its shingles that occur in the prompt as a run of words."""
    return copied_share(critique, prompt_words(prompt_text))


def prompt_words(prompt_text: str) -> str:
    """The prompt's words (lower case) joined by single spaces, with a space at each end: what `copied_share`
    searches. Words hold no spaces, so a substring match of a spaced shingle is a whole run of words; this
    replaced building every n-gram of the prompt, which cost a sixth of a synthesis worker's CPU."""
    return f" {' '.join(_WORD.findall(prompt_text.lower()))} "


def copied_share(critique: str, words: str) -> float:
    """`prompt_copy` against a prompt already split by `prompt_words` (one split serves a round's reviewers)."""
    own = shingles(critique)
    if not own:
        return 1.0
    return sum(1 for shingle in own if f" {shingle} " in words) / len(own)


@dataclass(frozen=True)
class Observation:
    """One review as the detector sees it."""

    model: str
    unit: str
    """What was reviewed (sample or calibration item, and round): reviews of one unit are compared."""
    score: float
    critique: str
    prompt_copy: float


@dataclass
class ReviewerHealth:
    model: str
    reviews: int
    copy_rate: float
    score_mean: float
    score_std: float
    modal_share: float
    histogram: dict[int, int]
    correlation: float | None
    alpha_without: float | None
    flags: list[str] = field(default_factory=list)

    @property
    def degenerate(self) -> bool:
        return bool(self.flags)

    def to_wire(self) -> dict[str, Any]:
        return {
            "reviews": self.reviews,
            "copyRate": round(self.copy_rate, 4),
            "scoreMean": round(self.score_mean, 4),
            "scoreStd": round(self.score_std, 4),
            "modalShare": round(self.modal_share, 4),
            "histogram": {str(k): v for k, v in sorted(self.histogram.items())},
            "correlationWithOthers": None if self.correlation is None else round(self.correlation, 4),
            "alphaWithout": None if self.alpha_without is None else round(self.alpha_without, 4),
            "degenerate": self.degenerate,
            "flags": list(self.flags),
        }


@dataclass
class PanelHealth:
    reviewers: dict[str, ReviewerHealth]
    alpha: float | None
    """Krippendorff's α (interval) of the whole panel."""

    @property
    def degenerate(self) -> list[str]:
        return sorted(m for m, h in self.reviewers.items() if h.degenerate)

    def to_wire(self) -> dict[str, Any]:
        return {
            "alpha": None if self.alpha is None else round(self.alpha, 4),
            "degenerate": self.degenerate,
            "reviewers": {m: h.to_wire() for m, h in sorted(self.reviewers.items())},
        }


def assess(observations: list[Observation], scale: int) -> PanelHealth:
    copied = _copied(observations)
    by_model: dict[str, list[int]] = defaultdict(list)
    for row, observation in enumerate(observations):
        by_model[observation.model].append(row)
    units = _units(observations)
    reviewers = {}
    for model, rows in by_model.items():
        scores = [observations[r].score for r in rows]
        histogram = Counter(min(scale, max(1, round(s))) for s in scores)
        health = ReviewerHealth(
            model=model,
            reviews=len(rows),
            copy_rate=sum(copied[r] for r in rows) / len(rows),
            score_mean=statistics.fmean(scores),
            score_std=statistics.pstdev(scores),
            modal_share=max(histogram.values()) / len(rows),
            histogram=dict(histogram),
            correlation=_correlation_with_others(observations, model, units),
            alpha_without=krippendorff_alpha([[o.score for o in unit if o.model != model] for unit in units.values()]),
        )
        health.flags = _flags(health)
        reviewers[model] = health
    alpha = krippendorff_alpha([[o.score for o in unit] for unit in units.values()])
    return PanelHealth(reviewers, alpha)


def _flags(health: ReviewerHealth) -> list[str]:
    if health.reviews < MIN_REVIEWS:
        return []
    flags = []
    if health.copy_rate >= MAX_COPY_RATE:
        flags.append(f"copies: {health.copy_rate:.0%} of critiques repeat the prompt or other reviews")
    if health.score_std < MIN_SCORE_STD or health.modal_share >= MAX_MODAL_SHARE:
        flags.append(f"constant scores: std {health.score_std:.2f}, {health.modal_share:.0%} the same score")
    return flags


def _copied(observations: list[Observation]) -> list[bool]:
    """Per review: is it mostly the prompt's text, or mostly text another review also has?"""
    owners: dict[str, set[int]] = defaultdict(set)
    own = [shingles(o.critique) for o in observations]
    for row, grams in enumerate(own):
        for gram in grams:
            if len(owners[gram]) < 2:
                owners[gram].add(row)
    result = []
    for row, (observation, grams) in enumerate(zip(observations, own, strict=True)):
        shared = sum(1 for g in grams if owners[g] - {row}) / len(grams) if grams else 1.0
        result.append(max(observation.prompt_copy, shared) >= COPIED_SHARE)
    return result


def _units(observations: Iterable[Observation]) -> dict[str, list[Observation]]:
    units: dict[str, list[Observation]] = defaultdict(list)
    for observation in observations:
        units[observation.unit].append(observation)
    return units


def _correlation_with_others(
    observations: list[Observation], model: str, units: dict[str, list[Observation]]
) -> float | None:
    mine, others = [], []
    for unit in units.values():
        own = [o.score for o in unit if o.model == model]
        rest = [o.score for o in unit if o.model != model]
        if own and rest:
            mine.append(statistics.fmean(own))
            others.append(statistics.fmean(rest))
    if len(mine) < 3 or statistics.pstdev(mine) == 0 or statistics.pstdev(others) == 0:
        return None
    return statistics.correlation(mine, others)


def krippendorff_alpha(units: list[list[float]]) -> float | None:
    """Krippendorff's α for interval data: 1 − observed/expected disagreement over units with ≥ 2 values.
    None when there is nothing to compare or every value is the same (α is undefined then)."""
    pairable = [u for u in units if len(u) >= 2]
    values = [v for u in pairable for v in u]
    n = len(values)
    if n < 2:
        return None
    mean = statistics.fmean(values)
    expected = 2 * n * sum((v - mean) ** 2 for v in values) / (n * (n - 1))
    if expected == 0:
        return None
    observed = 0.0
    for unit in pairable:
        unit_mean = statistics.fmean(unit)
        observed += 2 * len(unit) * sum((v - unit_mean) ** 2 for v in unit) / (len(unit) - 1)
    observed /= n
    alpha = 1 - observed / expected
    return alpha if math.isfinite(alpha) else None


def gate_note(reviewers: dict[str, Any]) -> str:
    """What the gate did about degenerate reviewers, one clause for the summary line, the report and the card.
    Only the calibration set decides exclusions (before any sample is gated); a model found degenerate over the
    whole run was found after its verdicts counted, so it is named as such rather than implied excluded."""
    before = (reviewers.get("calibration") or {}).get("degenerate") or []
    after = [m for m in (reviewers.get("run") or {}).get("degenerate") or [] if m not in before]
    parts = []
    if before:
        action = (
            "excluded from the gate" if reviewers.get("excluded") else "NOT excluded (review.excludeDegenerate: false)"
        )
        parts.append(f"degenerate on the calibration set: {', '.join(before)} ({action})")
    if after:
        parts.append(f"degenerate over the run: {', '.join(after)} (found after the gate: its verdicts counted)")
    return "; ".join(parts) or "no degenerate reviewer"
