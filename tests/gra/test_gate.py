"""The μ/σ gate of gra.md §6, pinned as a pure table and end to end over HTTP against scripted reviewers."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction

import pytest

from quorum.api.synthesis import Review
from quorum.gra import GraConfig, prompts, run_local
from quorum.gra.gate import Verdict, gate
from quorum.gra.records import read_jsonl
from quorum.gra.sample import SampleStatus
from quorum.gra.testing import GraScript
from quorum.llm.simulated import SimReply, SimRequest, SimulatedBackend
from tests.gra.conftest import endpoints_for, make_spec, run_one

REVIEW = Review(accept_at_least=7.0, reject_below=5.0, max_std=1.5, grey_zone="reject")


@pytest.mark.parametrize(
    ("scores", "grey_zone", "verdict"),
    [
        ([8, 8, 9], "reject", Verdict.ACCEPT),
        ([7, 7, 7], "reject", Verdict.ACCEPT),  # μ exactly at acceptAtLeast accepts
        ([3, 4, 4], "reject", Verdict.REJECT),
        ([1, 9, 4], "adjudicate", Verdict.REJECT),  # μ < rejectBelow rejects before σ is looked at
        ([10, 10, 4], "reject", Verdict.ADJUDICATE),  # σ > maxStd: reviewers disagree
        ([6, 6, 6], "reject", Verdict.REJECT),  # agreed grey zone → greyZone: reject
        ([6, 6, 6], "adjudicate", Verdict.ADJUDICATE),  # agreed grey zone → greyZone: adjudicate
        ([5, 5, 5], "reject", Verdict.REJECT),  # μ exactly at rejectBelow is grey, not rejected outright
        ([5, 5, 5], "adjudicate", Verdict.ADJUDICATE),
        ([8.5, 5.5], "reject", Verdict.ACCEPT),  # σ exactly at maxStd (1.5) still agrees
        ([Fraction(19, 3), Fraction(22, 3), Fraction(22, 3)], "reject", Verdict.ACCEPT),  # μ = 7 exactly
        ([Fraction(14, 3), Fraction(16, 3)], "reject", Verdict.REJECT),  # μ = 5 exactly: grey zone
        ([Fraction(14, 3), Fraction(16, 3)], "adjudicate", Verdict.ADJUDICATE),
        ([Fraction(19, 3), Fraction(28, 3)], "reject", Verdict.ACCEPT),  # σ = 1.5 exactly from thirds
    ],
)
def test_gate_decision_table(scores: list[float], grey_zone: str, verdict: Verdict) -> None:
    review = REVIEW.model_copy(update={"grey_zone": grey_zone})
    assert gate(scores, review).verdict == verdict


def test_gate_reports_population_std() -> None:
    result = gate([10, 10, 4], REVIEW)
    assert result.mu == pytest.approx(8.0)
    assert result.sigma == pytest.approx(2.8284, abs=1e-4)


MODELS = ["gen", "r1", "r2", "r3", "adj"]


def scripted(instruction: dict[str, int], response: dict[str, int], decision: str = "accept") -> GraScript:
    """Reviewer `r1..r3` give fixed scores per round; only `gen` writes, only `adj` adjudicates."""

    def score(request: SimRequest, round_name: str) -> int:
        table = instruction if round_name == "instruction" else response
        return table[request.model]

    return GraScript(score=score, adjudicate=lambda request: decision)


def spec_for(url: str, **review: object):
    return make_spec(
        url,
        [
            {"name": "gen", "endpoint": {"url": url, "model": "gen"}, "roles": ["generator"]},
            *({"name": r, "endpoint": {"url": url, "model": r}, "roles": ["reviewer"]} for r in ("r1", "r2", "r3")),
            {"name": "adj", "endpoint": {"url": url, "model": "adj"}, "roles": ["adjudicator"]},
        ],
        review={"reviewers": 3, "acceptAtLeast": 7.0, "rejectBelow": 5.0, "maxStd": 1.5, **review},
    )


HIGH = {"r1": 8, "r2": 9, "r3": 8}
LOW = {"r1": 3, "r2": 4, "r3": 3}
SPLIT = {"r1": 10, "r2": 10, "r3": 4}
GREY = {"r1": 6, "r2": 6, "r3": 6}


@pytest.mark.parametrize(
    ("instruction", "response", "decision", "grey_zone", "status", "path"),
    [
        (HIGH, HIGH, "accept", "reject", "accepted", "instruction:accept>response:accept"),
        (HIGH, LOW, "accept", "reject", "rejected-round-2", "instruction:accept>response:reject"),
        (HIGH, SPLIT, "accept", "reject", "adjudicated-accept", "instruction:accept>response:adjudicate-accept"),
        (SPLIT, HIGH, "reject", "reject", "adjudicated-reject-round-1", "instruction:adjudicate-reject"),
        (GREY, HIGH, "accept", "reject", "rejected-round-1", "instruction:reject"),
        (GREY, HIGH, "accept", "adjudicate", "adjudicated-accept", "instruction:adjudicate-accept>response:accept"),
    ],
    ids=["accept", "reject", "adjudicate-accept", "adjudicate-reject", "grey-zone-reject", "grey-zone-adjudicate"],
)
async def test_gate_paths_end_to_end(instruction, response, decision, grey_zone, status, path) -> None:
    async with SimulatedBackend(scripted(instruction, response, decision), models=MODELS) as sim:
        record = await run_one(spec_for(sim.base_url, greyZone=grey_zone))
        asked_adjudicator = [r for r in sim.requests if r.schema_name == prompts.ADJUDICATE]
    assert record.status == status
    assert record.gate_path == path
    assert bool(asked_adjudicator) == ("adjudicate" in path)
    assert record.generator == "gen"
    adjudications = [o.adjudication for o in record.review.values() if o.adjudication]
    assert all(a.model == "adj" and not a.fallback for a in adjudications)


async def test_round_one_rejection_skips_round_two() -> None:
    async with SimulatedBackend(scripted(LOW, HIGH), models=MODELS) as sim:
        record = await run_one(spec_for(sim.base_url))
        stages = [r.schema_name for r in sim.requests]
    assert record.status == SampleStatus.REJECTED_ROUND_1
    assert "response" not in record.review
    assert prompts.REVIEW_RESPONSE not in stages
    assert stages.count(prompts.REVIEW_INSTRUCTION) == 3
    assert record.review["instruction"].mu == pytest.approx(10 / 3, abs=1e-3)


async def test_adjudication_disabled_rejects_disagreement() -> None:
    async with SimulatedBackend(scripted(SPLIT, HIGH), models=MODELS) as sim:
        wire = spec_for(sim.base_url).to_wire()
        spec = type(spec_for(sim.base_url)).model_validate({**wire, "adjudication": {"enabled": False}})
        record = await run_one(spec)
    assert record.status == SampleStatus.REJECTED_ROUND_1
    assert record.gate_path == "instruction:adjudicate-disabled-reject"


async def test_generator_never_reviews_its_own_sample() -> None:
    pool = ["m1", "m2", "m3", "m4", "m5"]
    async with SimulatedBackend(GraScript(), models=pool) as sim:
        spec = make_spec(sim.base_url, pool, review={"reviewers": 3})
        records = [await run_one(spec, index=i) for i in range(24)]
        by_call = [(r.model, r.schema_name) for r in sim.requests]
    generators = {r.generator for r in records}
    assert len(generators) > 1  # roles really rotate
    for record in records:
        assert record.independent
        assert record.generator not in record.reviewers
        assert len(set(record.reviewers)) == 3
        for outcome in record.review.values():
            assert record.generator not in {r.model for r in outcome.reviews}
            if outcome.adjudication:
                assert outcome.adjudication.model not in {record.generator, *record.reviewers}
                assert outcome.adjudication.fallback is False
    assert sum(1 for _, name in by_call if name == prompts.GENERATE) == 24


async def test_single_model_pool_plays_every_role_when_allowed() -> None:
    async with SimulatedBackend(GraScript(), models=["solo"]) as sim:
        spec = make_spec(sim.base_url, ["solo"], review={"reviewers": 2, "allowSameModel": True})
        record = await run_one(spec)
    assert record.reviewers == ("solo", "solo")
    assert record.independent is False
    for outcome in record.review.values():
        if outcome.adjudication:
            assert outcome.adjudication.fallback is True


# --- exact thresholds, end to end: run_local over HTTP, four scripted reviewers, three rubric dimensions ---

PANEL = ("r1", "r2", "r3", "r4")
EXACT_CASES: dict[str, tuple[list[int], ...]] = {
    # per reviewer r1..r4, its three dimension scores; a reviewer's score is their exact mean
    "mu-exactly-accept": ([6, 6, 7], [7, 7, 8], [7, 7, 8], [7, 7, 7]),  # 19/3 + 22/3 + 22/3 + 7 → μ = 7
    "mu-just-below-accept": ([6, 6, 7], [7, 7, 8], [7, 7, 8], [7, 7, 6]),  # μ = 83/12 (grey)
    "mu-exactly-reject-below": ([4, 5, 5], [5, 5, 6], [5, 5, 5], [5, 5, 5]),  # μ = 5 (grey, not rejected)
    "mu-just-below-reject": ([4, 5, 5], [5, 5, 5], [5, 5, 5], [5, 5, 5]),  # μ = 59/12 → reject
    "sigma-exactly-max": ([6, 6, 7], [6, 6, 7], [9, 9, 10], [9, 9, 10]),  # 19/3, 19/3, 28/3, 28/3 → σ = 1.5
    "sigma-just-above-max": ([6, 6, 7], [6, 6, 7], [9, 9, 10], [9, 10, 10]),  # σ > 1.5 → adjudicate
    "low-mean-disagreeing": ([1, 1, 1], [1, 1, 2], [9, 9, 9], [3, 3, 3]),  # μ < 5 rejects before σ counts
    "high": ([8, 8, 8], [8, 9, 8], [9, 8, 8], [8, 8, 9]),
}
PAIRS = [
    *((name, "high") for name in EXACT_CASES if name != "high"),
    ("high", "mu-exactly-accept"),
    ("high", "mu-exactly-reject-below"),
    ("high", "sigma-exactly-max"),
]
GREY_AD, DISAGREE_AD = "adjudicated-accept", "adjudicated-accept"
# Hand-written from gra.md §6 (not computed by the code under test): (greyZone, adjudication) → status.
EXPECTED = {
    ("mu-exactly-accept", "high"): {"reject": "accepted", "adjudicate": "accepted", "off": "accepted"},
    ("mu-just-below-accept", "high"): {"reject": "rejected-round-1", "adjudicate": GREY_AD, "off": "rejected-round-1"},
    ("mu-exactly-reject-below", "high"): {
        "reject": "rejected-round-1",
        "adjudicate": GREY_AD,
        "off": "rejected-round-1",
    },
    ("mu-just-below-reject", "high"): {k: "rejected-round-1" for k in ("reject", "adjudicate", "off")},
    ("sigma-exactly-max", "high"): {k: "accepted" for k in ("reject", "adjudicate", "off")},
    ("sigma-just-above-max", "high"): {
        "reject": DISAGREE_AD,
        "adjudicate": DISAGREE_AD,
        "off": "rejected-round-1",
    },
    ("low-mean-disagreeing", "high"): {k: "rejected-round-1" for k in ("reject", "adjudicate", "off")},
    ("high", "mu-exactly-accept"): {k: "accepted" for k in ("reject", "adjudicate", "off")},
    ("high", "mu-exactly-reject-below"): {
        "reject": "rejected-round-2",
        "adjudicate": GREY_AD,
        "off": "rejected-round-2",
    },
    ("high", "sigma-exactly-max"): {k: "accepted" for k in ("reject", "adjudicate", "off")},
}


class CasePanel(GraScript):
    """The generator writes one case per candidate (in the order asked); reviewers read the case back from
    the instruction and answer its dimension scores. Calibration items (no case) get honest varied answers."""

    def __init__(self) -> None:
        super().__init__(adjudicate=lambda request: "accept")
        self.asked = 0

    def __call__(self, request: SimRequest) -> SimReply:
        if request.schema_name == prompts.GENERATE:
            instruction_case, response_case = PAIRS[self.asked % len(PAIRS)]
            self.asked += 1
            value = {
                "instruction": f"CASE {instruction_case} / {response_case} number {self.asked}: add two numbers.",
                "input": "",
                "output": "The sum, worked out step by step.",
                "keywords": ["sum", "numbers", "addition"],
                "summary": "Add two numbers.",
            }
            return SimReply(text=json.dumps(value))
        return super().__call__(request)


def case_scores(request: SimRequest, round_name: str) -> int | list[int]:
    marker = request.prompt.split("CASE ", 1)
    if len(marker) == 1:
        return 3 + int(hashlib.sha256(request.prompt.encode() + request.model.encode()).hexdigest(), 16) % 7
    instruction_case, response_case = marker[1].split(" number", 1)[0].split(" / ")
    case = instruction_case if round_name == "instruction" else response_case
    return EXACT_CASES[case][PANEL.index(request.model)]


@pytest.mark.parametrize("policy", ["reject", "adjudicate", "off"])
def test_every_gate_decision_follows_the_spec_at_exact_thresholds(seed_dir, policy: str) -> None:
    script = CasePanel()
    script.score = case_scores
    sim = SimulatedBackend(script, models=["gen", *PANEL, "adj"])
    url = sim.start_in_thread()
    try:
        spec = make_spec(
            url,
            [
                {"name": "gen", "endpoint": {"url": url, "model": "gen"}, "roles": ["generator"]},
                *({"name": r, "endpoint": {"url": url, "model": r}, "roles": ["reviewer"]} for r in PANEL),
                {"name": "adj", "endpoint": {"url": url, "model": "adj"}, "roles": ["adjudicator"]},
            ],
            review={
                "reviewers": 4,
                "acceptAtLeast": 7.0,
                "rejectBelow": 5.0,
                "maxStd": 1.5,
                "greyZone": "reject" if policy == "reject" else "adjudicate",
                "instructionRubric": ["clarity", "answerability", "domain relevance"],
                "responseRubric": ["correctness", "completeness", "coherence"],
            },
            adjudication={"enabled": policy != "off"},
            generation={"target": 100, "rounds": 1, "samplesPerRound": len(PAIRS)},
        )
        run = run_local(GraConfig.from_spec(spec, base_dir=seed_dir), seed_dir / "out", endpoints=endpoints_for(spec))
    finally:
        sim.stop_thread()
    records = read_jsonl(seed_dir / "out" / "rejected.jsonl") + read_jsonl(seed_dir / "out" / "dataset.jsonl")
    decided = {}
    for record in records:
        if record.get("kind") == "call":
            continue
        kept = "messages" in record  # dataset.jsonl in the default OpenAI layout; rejected.jsonl has the task
        instruction = next(m["content"] for m in record["messages"] if m["role"] == "user") if kept else None
        instruction = instruction or record["instruction"]
        pair = tuple(instruction.removeprefix("CASE ").split(" number", 1)[0].split(" / "))
        decided[pair] = record["provenance"]["status"]
    assert run.manifest["reviewers"]["excluded"] == []  # honest calibration answers: nothing excluded
    assert decided == {pair: EXPECTED[pair][policy] for pair in PAIRS}
