"""Turning the selected models' samples into one answer: self-consistency, model-switch, single.

Shared by the router (live requests) and calibration (held-out evaluation), so the accuracy that calibration
reports is the accuracy of the code that serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from quorum.api.ensemble import VotingStrategy
from quorum.routing.tasks import TaskRule
from quorum.routing.vote import Decision, Sample, majority, most_central

Embed = Callable[[list[str]], np.ndarray]


def make_samples(model: str, rank: int, texts: Sequence[str], rule: TaskRule) -> list[Sample]:
    return [
        Sample(model=model, rank=rank, index=i, text=t, answer=rule.extract(t) if rule.votes_on_strings else None)
        for i, t in enumerate(texts)
    ]


def _pick(samples: Sequence[Sample], rule: TaskRule, embed: Embed | None) -> Decision:
    if rule.votes_on_strings or embed is None:
        return majority(samples)
    speaking = [s for s in samples if s.text.strip()] or list(samples)
    return most_central(speaking, embed([s.text for s in speaking]))


def decide(
    strategy: VotingStrategy,
    per_model: Sequence[Sequence[Sample]],
    rule: TaskRule,
    *,
    switch_threshold: float = 0.8,
    embed: Embed | None = None,
) -> Decision:
    """`per_model[i]` holds the samples of the i-th selected model (best first); at least one must be non-empty.

    self-consistency: every selected model's samples vote together (with `routing.modelsSelected: 1`, the top
    model's alone); model-switch: the first model's majority stands when its share of that model's samples
    reaches the threshold, otherwise all selected models vote together. Ties go to the higher-ranked model."""
    available = [list(samples) for samples in per_model if samples]
    if not available:
        raise ValueError("no samples to decide from")
    if strategy is VotingStrategy.MODEL_SWITCH and len(available) > 1:
        first = _pick(available[0], rule, embed)
        share = first.counts.get(first.answer, 0) / len(available[0]) if first.answer else 0.0
        if share >= switch_threshold or not rule.votes_on_strings:
            return first
        return _pick([s for samples in available for s in samples], rule, embed)
    if strategy is VotingStrategy.SELF_CONSISTENCY:
        return _pick([s for samples in available for s in samples], rule, embed)
    return _pick(available[0], rule, embed)
