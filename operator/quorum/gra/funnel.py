"""Funnel counts from records: one definition for shard progress, the merged manifest and the report."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from quorum.api.synthesis import SynthesisCounts
from quorum.gra.records import is_kept


def count(records: Iterable[dict[str, Any]], seeds: int = 0) -> SynthesisCounts:
    counts = SynthesisCounts(seeds=seeds)
    for record in records:
        add(counts, record)
    return counts


def add(counts: SynthesisCounts, record: dict[str, Any]) -> None:
    review = record.get("review", {})
    if "sample" in record:
        counts.generated += 1
    if review.get("instruction", {}).get("outcome") == "accept":
        counts.round1_passed += 1
    if review.get("response", {}).get("outcome") == "accept":
        counts.round2_passed += 1
    if any(outcome.get("adjudication") for outcome in review.values()):
        counts.adjudicated += 1
    status = record.get("status")
    if status == "failed":
        counts.failed += 1
    elif status == "duplicate":
        counts.duplicates += 1
    if is_kept(record):
        counts.accepted += 1
    elif status is not None:
        counts.rejected += 1


def merged(parts: Iterable[SynthesisCounts]) -> SynthesisCounts:
    total = SynthesisCounts()
    for part in parts:
        for name in SynthesisCounts.model_fields:
            setattr(total, name, getattr(total, name) + getattr(part, name))
    return total
