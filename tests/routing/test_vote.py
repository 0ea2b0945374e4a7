"""Voting: majorities, empty extractions that never vote, and the tie-break (model rank, then sample order)."""

from __future__ import annotations

import numpy as np

from quorum.api.ensemble import TaskKind, VotingStrategy
from quorum.routing.strategy import decide, make_samples
from quorum.routing.tasks import TaskRule
from quorum.routing.vote import Sample, majority, most_central

MATH = TaskRule("gsm8k", TaskKind.MATH)


def test_equivalent_forms_vote_together():
    samples = make_samples("m", 0, ["\\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{1/3}", "Answer: 1/2"], MATH)
    decision = majority(samples)
    assert decision.answer == "1/2" and decision.counts == {"1/2": 3, "1/3": 1}
    assert decision.chosen.index == 0 and decision.agreement == 0.75


def test_empty_extractions_never_vote():
    samples = make_samples("m", 0, ["I don't know", "", "\\boxed{4}"], MATH)
    decision = majority(samples)
    assert decision.answer == "4" and decision.voters == 1 and decision.chosen.index == 2


def test_no_answer_at_all_returns_the_first_sample_of_the_best_model():
    samples = [Sample("b", 1, 0, "x"), Sample("a", 0, 1, "y"), Sample("a", 0, 0, "z")]
    decision = majority(samples)
    assert decision.answer is None and decision.chosen.text == "z"


def test_ties_go_to_the_higher_ranked_model_then_the_earliest_sample():
    samples = [
        Sample("second", 1, 0, "t1", "7"),
        Sample("first", 0, 1, "t2", "9"),
        Sample("second", 1, 1, "t3", "9"),
        Sample("first", 0, 2, "t4", "7"),
    ]
    # 2 votes each; "9"'s first supporter is first/1, "7"'s is first/2 → "9" wins, returning first/1's text.
    decision = majority(samples)
    assert decision.answer == "9" and decision.chosen.text == "t2"
    early = [Sample("m", 0, 3, "late", "1"), Sample("m", 0, 0, "early", "2")]
    assert majority(early).chosen.text == "early"


def test_model_switch_keeps_a_confident_first_model_and_pools_a_hesitant_one():
    confident = make_samples("a", 0, ["\\boxed{1}"] * 4 + ["\\boxed{2}"], MATH)
    runner_up = make_samples("b", 1, ["\\boxed{2}"] * 5, MATH)
    kept = decide(VotingStrategy.MODEL_SWITCH, [confident, runner_up], MATH, switch_threshold=0.8)
    assert kept.answer == "1" and kept.voters == 5
    hesitant = make_samples("a", 0, ["\\boxed{1}"] * 3 + ["\\boxed{2}"] * 2, MATH)
    pooled = decide(VotingStrategy.MODEL_SWITCH, [hesitant, runner_up], MATH, switch_threshold=0.8)
    assert pooled.answer == "2" and pooled.counts == {"2": 7, "1": 3}


def test_most_central_picks_the_sample_closest_to_the_others():
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    samples = [Sample("m", 0, i, f"s{i}") for i in range(4)]
    assert most_central(samples, vectors).chosen.index == 1  # ties (1 and 2) go to the earlier sample
