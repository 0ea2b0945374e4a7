"""Funnel counts from records: the one definition (see `SynthesisCounts`) behind shard progress, the live
board, the merged manifest, the final summary, the report and the SynthesisJob's status."""

from __future__ import annotations

from collections.abc import Iterable

from quorum.api.synthesis import SynthesisCounts
from quorum.gra.sample import INSTRUCTION, RESPONSE, SampleRecord, SampleStatus


def count(records: Iterable[SampleRecord], seeds: int = 0, failed_calls: int = 0) -> SynthesisCounts:
    counts = SynthesisCounts(seeds=seeds, failed_calls=failed_calls)
    for record in records:
        add(counts, record)
    return counts


def add(counts: SynthesisCounts, record: SampleRecord) -> None:
    """One candidate's contribution; every candidate is either accepted or rejected."""
    if record.sample is not None:
        counts.generated += 1
    if record.passed(INSTRUCTION):
        counts.round1_passed += 1
    if record.passed(RESPONSE):
        counts.round2_passed += 1
    if record.adjudicated:
        counts.adjudicated += 1
    if record.status == SampleStatus.FAILED:
        counts.failed += 1
    elif record.status == SampleStatus.DUPLICATE:
        counts.duplicates += 1
    elif record.status == SampleStatus.SURPLUS:
        counts.surplus += 1
    if record.is_kept:
        counts.accepted += 1
    else:
        counts.rejected += 1


def merged(parts: Iterable[SynthesisCounts]) -> SynthesisCounts:
    total = SynthesisCounts()
    for part in parts:
        for name in SynthesisCounts.model_fields:
            setattr(total, name, getattr(total, name) + getattr(part, name))
    return total


def negated(counts: SynthesisCounts) -> SynthesisCounts:
    return SynthesisCounts(**{name: -getattr(counts, name) for name in SynthesisCounts.model_fields})


def rates(counts: SynthesisCounts, records: list[SampleRecord], max_std: float) -> dict[str, float]:
    """Acceptance and adjudication per generated candidate; agreement per reviewed sample: the share whose
    every gated round had σ ≤ maxStd (the paper's "highly consistent scores" is about samples)."""
    reviewed = [r for r in records if r.review]
    agreed = sum(1 for r in reviewed if all(o.sigma is not None and o.sigma <= max_std for o in r.review.values()))
    return {
        "acceptance": counts.accepted / counts.generated if counts.generated else 0.0,
        "adjudication": counts.adjudicated / counts.generated if counts.generated else 0.0,
        "reviewerAgreement": agreed / len(reviewed) if reviewed else 0.0,
    }
