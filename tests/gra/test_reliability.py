"""Degenerate-reviewer detection: planted copying and constant reviewers are flagged, honest ones are not,
and with `review.excludeDegenerate` the gate accepts what the honest reviewers alone would."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import pytest

from quorum.api.synthesis import Review
from quorum.gra import GraConfig, prompts, run_local
from quorum.gra.gate import Verdict, gate
from quorum.gra.reliability import (
    SHINGLE_WORDS,
    Observation,
    assess,
    gate_note,
    krippendorff_alpha,
    prompt_copy,
    shingles,
)
from quorum.gra.testing import GraScript, own_words
from quorum.llm.simulated import SimRequest, SimulatedBackend
from tests.gra.conftest import endpoints_for, make_spec, provenances

PANEL = ("honest-1", "honest-2", "copier", "constant")


def task_quality(request: SimRequest) -> int:
    """What an honest reviewer sees in the reviewed text: a score from 2 to 9 that depends only on it."""
    content = request.messages[-1]["content"]
    reviewed = content[content.index("Review the ") :].split("Score each dimension", 1)[0]  # rubric before or after
    return 2 + int(hashlib.sha256(reviewed.encode()).hexdigest(), 16) % 8


def planted_score(request: SimRequest, round_name: str) -> int:
    if request.model == "constant":
        return 9
    if request.model == "copier":
        return 1 + (task_quality(request) * 7) % 10
    honest = task_quality(request)
    return honest if request.model == "honest-1" else min(10, honest + (1 if honest % 3 == 0 else 0))


def planted_critique(request: SimRequest, round_name: str) -> str:
    if request.model == "copier":  # the rubric's own words, as the tiny model did with the old example
        return "good: clear and answerable, with minor flaws"
    key = int(hashlib.sha256(f"{request.model}|{request.prompt}".encode()).hexdigest()[:12], 16)
    return own_words(key)


def run_planted(folder: Path, exclude: bool) -> tuple[dict, list[dict]]:
    sim = SimulatedBackend(GraScript(score=planted_score, critique=planted_critique), models=["gen", *PANEL])
    url = sim.start_in_thread()
    try:
        spec = make_spec(
            url,
            [
                {"name": "gen", "endpoint": {"url": url, "model": "gen"}, "roles": ["generator"]},
                *({"name": r, "endpoint": {"url": url, "model": r}, "roles": ["reviewer"]} for r in PANEL),
            ],
            review={"reviewers": 4, "excludeDegenerate": exclude, "maxStd": 1.5},
            adjudication={"enabled": False},
            generation={"target": 100, "rounds": 1, "samplesPerRound": 24},
        )
        out = folder / ("on" if exclude else "off")
        run = run_local(GraConfig.from_spec(spec, base_dir=folder), out, endpoints=endpoints_for(spec))
    finally:
        sim.stop_thread()
    return run.manifest, provenances(out)


def test_copying_and_constant_reviewers_are_flagged_and_honest_ones_are_not(seed_dir: Path) -> None:
    manifest, _ = run_planted(seed_dir, exclude=True)
    reviewers = manifest["reviewers"]
    for measured in (reviewers["calibration"], reviewers["run"]):
        health = measured["reviewers"]
        assert sorted(measured["degenerate"]) == ["constant", "copier"]
        assert health["copier"]["copyRate"] == 1.0 and any("copies" in f for f in health["copier"]["flags"])
        assert any("constant" in f for f in health["constant"]["flags"])
        for honest in ("honest-1", "honest-2"):
            assert health[honest]["flags"] == [], health[honest]
            assert health[honest]["copyRate"] == 0.0
    assert reviewers["excluded"] == ["constant", "copier"]
    assert reviewers["calibrationAgreesAcrossShards"]
    report = (seed_dir / "on" / "report" / "index.md").read_text()
    assert "Reviewer reliability" in report and "DEGENERATE, excluded" in report


def _mean(scores: list[dict]) -> float:
    """A review's score from its published dimension scores ([{dimension, score}])."""
    return sum(s["score"] for s in scores) / len(scores)


def test_with_exclusion_the_gate_accepts_what_the_honest_reviewers_alone_would(seed_dir: Path) -> None:
    _, records = run_planted(seed_dir, exclude=True)
    review = Review(reviewers=2, max_std=1.5)
    assert len(records) == 24
    honest_alone = {}
    for record in records:
        status = "accepted"
        for round_number, name in ((1, "instruction"), (2, "response")):
            outcome = record["review"][name]
            honest = [r for r in outcome["reviews"] if r["model"].startswith("honest")]
            assert {r["model"] for r in outcome["reviews"] if r["excluded"]} == {"copier", "constant"}
            scores = [_mean(r["scores"]) for r in honest]
            if gate(scores, review).verdict != Verdict.ACCEPT:
                status = f"rejected-round-{round_number}"
                break
        honest_alone[record["id"]] = status
    assert {r["id"]: r["status"] for r in records} == honest_alone
    assert set(honest_alone.values()) >= {"accepted", "rejected-round-1"}  # the planted set decides both ways


def test_without_exclusion_the_planted_reviewers_change_the_verdicts(seed_dir: Path) -> None:
    manifest, records = run_planted(seed_dir, exclude=False)
    assert manifest["reviewers"]["excluded"] == []
    assert sorted(manifest["reviewers"]["calibration"]["degenerate"]) == ["constant", "copier"]  # still reported
    reached = [o for rec in records for o in rec["review"].values() if o is not None]
    assert all(not r["excluded"] for o in reached for r in o["reviews"])


def test_krippendorff_alpha_matches_a_hand_computed_value() -> None:
    # units (1,1), (2,3), n = 4 values. Observed: ordered pairs within units, (2-3)² + (3-2)² = 2, over
    # (m_u - 1) = 1, over n: 0.5. Expected: all 12 ordered pairs of 1,1,2,3: 2·(0+1+4+1+4+1) = 22, / 12.
    assert krippendorff_alpha([[1, 1], [2, 3]]) == pytest.approx(1 - 0.5 / (22 / 12))
    assert krippendorff_alpha([[4, 4], [4, 4]]) is None
    assert krippendorff_alpha([[7], [3]]) is None


def test_too_few_reviews_never_flag() -> None:
    observations = [Observation("m", f"u{i}", 8.0, "same words every time here", 1.0) for i in range(3)]
    assert assess(observations, 10).reviewers["m"].flags == []


def test_built_in_review_prompts_carry_no_copyable_example_answer() -> None:
    book = prompts.PromptBook.built_in()
    sample = {"instruction": "What is 2 + 2?", "output": "4"}
    for stage, rubric in ((prompts.REVIEW_INSTRUCTION, ["clarity"]), (prompts.REVIEW_RESPONSE, ["correctness"])):
        text = book.messages(stage, **prompts.review_variables("math", sample, rubric, 10))[1]["content"]
        assert "{" not in text and "Example" not in text
        assert "9-10:" in text and "1-2:" in text  # anchored bands over the whole scale


@pytest.mark.parametrize(
    ("reviewers", "note"),
    [
        ({"calibration": {"degenerate": []}, "run": {"degenerate": []}}, "no degenerate reviewer"),
        (
            {"calibration": {"degenerate": ["flat"]}, "run": {"degenerate": ["flat"]}, "excluded": ["flat"]},
            "degenerate on the calibration set: flat (excluded from the gate)",
        ),
        (
            {"calibration": {"degenerate": ["flat"]}, "excluded": []},
            "degenerate on the calibration set: flat (NOT excluded (review.excludeDegenerate: false))",
        ),
        (  # the demo's case: honest-looking on the calibration set, copying over the run
            {"calibration": {"degenerate": []}, "run": {"degenerate": ["smollm"]}, "excluded": []},
            "degenerate over the run: smollm (found after the gate: its verdicts counted)",
        ),
    ],
)
def test_the_gate_note_never_implies_a_run_level_flag_was_excluded(reviewers: dict, note: str) -> None:
    assert gate_note(reviewers) == note


def test_prompt_copy_is_the_share_of_critique_shingles_found_among_the_prompts_word_runs():
    # the definition, spelled out as sets of every prompt word run up to the shingle length
    def by_definition(critique: str, prompt: str) -> float:
        words = re.findall(r"\w+", prompt.lower())
        runs = {" ".join(words[i : i + n]) for n in range(1, SHINGLE_WORDS + 1) for i in range(len(words) - n + 1)}
        own = shingles(critique)
        return len(own & runs) / len(own) if own else 1.0

    rng = random.Random(7)
    vocabulary = ["the", "task", "is", "clear", "answer", "Wrong", "x1", "sum", "of", "digits", "é"]
    for _ in range(300):
        prompt = " ".join(rng.choices(vocabulary, k=rng.randrange(0, 40))) + rng.choice(["", ".", "!"])
        critique = ", ".join(rng.choices(vocabulary, k=rng.randrange(0, 9)))
        assert prompt_copy(critique, prompt) == by_definition(critique, prompt)
    assert prompt_copy("sum of digits", "Give the sum of digits of 12.") == 1.0
    assert prompt_copy("sum of the digits", "Give the sum of digits.") < 1.0
