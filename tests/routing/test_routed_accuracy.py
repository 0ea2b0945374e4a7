"""Routed accuracy through the real HTTP router and the official `openai` client, on two seeded simulated pools
of different shapes (tests/routing/pools.py), and the published `routedAccuracy` against what is served.

The per-topic oracle is the best single model of each topic (pinned through the same router, so it votes
over the same samples), weighted by questions; the best single model is the best pinned model overall."""

from __future__ import annotations

import math

import pytest

from quorum.routing.calibrate import evaluation_seed
from tests.routing.measure import measure
from tests.routing.pools import SPECIALISTS, WIDE

pytestmark = pytest.mark.slow


async def test_self_consistency_pool_routes_near_the_per_topic_oracle_and_publishes_what_it_serves(tmp_path, embedder):
    served = await measure(SPECIALISTS, tmp_path, embedder)
    assert served.routed >= 0.95 * served.oracle, served.figures()
    assert served.routed > served.best_single, served.figures()
    # Unseeded, the served run and calibration's evaluation are independent draws over the same questions:
    # each question is right with some probability q_i in both, so Var(difference) = 2·Σq_i(1−q_i)/n², at
    # most 2·p(1−p)/n with p the mean accuracy (Σq_i² ≥ n·p²). Three standard deviations of that bound.
    p = (served.routed + served.published["routed"]) / 2
    tolerance = 3 * math.sqrt(2 * p * (1 - p) / served.questions)
    assert abs(served.published["routed"] - served.routed) <= max(tolerance, 1 / served.questions)
    assert served.published["questions"] == served.questions


async def test_model_switch_pool_routes_near_the_per_topic_oracle_and_replays_its_published_accuracy(
    tmp_path, embedder
):
    # The client seeds of calibration's evaluation, replayed: the same path with the same per-sample seeds on
    # a backend deterministic per seed gives the same answers. Tolerance one question: the router embeds one
    # query at a time where calibration embedded a batch, and float rounding may flip a near-tie route.
    served = await measure(WIDE, tmp_path, embedder, seed=evaluation_seed(42, 0))
    assert served.routed >= 0.95 * served.oracle, served.figures()
    assert served.routed > served.best_single, served.figures()
    assert abs(served.published["routed"] - served.routed) <= 1 / served.questions + 1e-9
    evaluation = served.artifact.evaluation
    assert (
        evaluation["servedSamples"] == 10 and evaluation["modelsSelected"] == 2 and not evaluation["unservedQuestions"]
    )
