"""Voting over samples: majority of extracted answers, or the most central sample for free text.

Tie-break rule (spec): among answers with equal votes, the one whose first supporter comes from the
higher-ranked model wins, then the earliest sample; the returned text is that supporter's full text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One completion: which model (and its routed rank, 0 = best) produced it, in what order, and what it says."""

    model: str
    rank: int
    index: int
    text: str
    answer: str | None = None
    """Normalized extracted answer; None (or empty) means the sample does not vote."""

    @property
    def order(self) -> tuple[int, int]:
        return (self.rank, self.index)


@dataclass(frozen=True)
class Decision:
    """The outcome of a vote: the sample to return and the tally that justified it."""

    chosen: Sample
    answer: str | None
    counts: dict[str, int] = field(default_factory=dict)
    voters: int = 0

    @property
    def agreement(self) -> float:
        """Share of voting samples that back the chosen answer (1.0 when nobody voted)."""
        if not self.voters or self.answer is None:
            return 1.0
        return self.counts.get(self.answer, 0) / self.voters


def majority(samples: Sequence[Sample]) -> Decision:
    """Majority vote over non-empty answers; with no answer at all, the first sample by (rank, index) stands."""
    if not samples:
        raise ValueError("cannot vote over zero samples")
    ordered = sorted(samples, key=lambda s: s.order)
    counts: dict[str, int] = {}
    first: dict[str, Sample] = {}
    for sample in ordered:
        if sample.answer:
            counts[sample.answer] = counts.get(sample.answer, 0) + 1
            first.setdefault(sample.answer, sample)
    if not counts:
        return Decision(chosen=ordered[0], answer=None)
    winner = min(counts, key=lambda answer: (-counts[answer], first[answer].order))
    tally = dict(sorted(counts.items(), key=lambda item: (-item[1], first[item[0]].order)))
    return Decision(chosen=first[winner], answer=winner, counts=tally, voters=sum(counts.values()))


def most_central(samples: Sequence[Sample], vectors: np.ndarray) -> Decision:
    """The sample whose (normalized) embedding has the highest mean cosine to the others; ties by (rank, index).

    Used for open-ended answers and for code without tests, where string votes would never agree."""
    if not samples:
        raise ValueError("cannot vote over zero samples")
    if len(samples) != len(vectors):
        raise ValueError("one vector per sample is needed")
    similarity = vectors @ vectors.T
    centrality = (similarity.sum(axis=1) - np.diag(similarity)) / max(len(samples) - 1, 1)
    best = min(range(len(samples)), key=lambda i: (-round(float(centrality[i]), 6), samples[i].order))
    return Decision(chosen=samples[best], answer=None, voters=len(samples))
