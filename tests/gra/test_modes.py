"""`mode: refine` and the `classify` and `cluster` domain modes, end to end on the simulated backend."""

from __future__ import annotations

import json
from pathlib import Path

from quorum.gra import prompts
from quorum.gra.records import read_jsonl
from quorum.gra.testing import GraScript
from quorum.llm.simulated import SimulatedBackend
from tests.gra.conftest import SEEDS, provenances, run_simulated

POOL = ["a", "b", "c"]


def run(seed_dir: Path, script: GraScript, **sections: object) -> tuple[dict, SimulatedBackend]:
    return run_simulated(seed_dir, script, POOL, **{"review": {"reviewers": 2}, **sections})


def candidates(seed_dir: Path) -> list[dict]:
    return provenances(seed_dir / "out")


def test_refine_reviews_every_seed_and_writes_nothing_new(seed_dir: Path) -> None:
    def score(request, round_name):  # code seeds are judged poor, math seeds good
        return 3 if "code seed task" in request.prompt else 8

    manifest, sim = run(
        seed_dir,
        GraScript(score=score),
        mode="refine",
        workers={"shards": 2, "parallelism": 2},
        postprocess={"format": "alpaca"},  # compares instructions field by field
    )
    assert not [r for r in sim.requests if r.schema_name == prompts.GENERATE]
    records = candidates(seed_dir)
    assert sorted(r["sourceSeedId"] for r in records) == sorted(s["id"] for s in SEEDS)
    assert all(r["generator"] is None for r in records)
    kept = read_jsonl(seed_dir / "out" / "dataset.jsonl")
    assert sorted(r["id"] for r in kept) == [f"refine-math-{i}" for i in range(3)]
    assert {r["instruction"] for r in kept} == {s["instruction"] for s in SEEDS if s["domain"] == "math"}
    assert all(len(r["keywords"]) >= 3 and r["summary"] for r in kept)  # the seeds' digests fill them
    assert manifest["counts"] | {"seeds": 6} == manifest["counts"]
    assert manifest["counts"]["accepted"] == 3 and manifest["counts"]["rejected"] == 3


def test_classify_labels_seeds_with_the_domain_sampling_of_the_spec(seed_dir: Path) -> None:
    manifest, sim = run(
        seed_dir,
        GraScript(score=lambda request, round_name: 8),
        domains={"mode": "classify", "names": ["math", "code", "writing"], "temperature": 0.3, "maxTokens": 40},
        seeds={"uri": "file://seeds.jsonl", "fields": {"domain": ""}},  # the labels are not read
        generation={"target": 6, "rounds": 1, "samplesPerRound": 6},
        review={"reviewers": 2, "excludeDegenerate": False, "calibrationItems": 0},
    )
    asked = [r for r in sim.requests if r.schema_name == prompts.CLASSIFY]
    assert len(asked) == 6 and all(r.temperature == 0.3 and r.max_tokens == 40 for r in asked)
    assert {d: c["seeds"] for d, c in manifest["byDomain"].items()} == {"math": 3, "code": 3}
    for record in candidates(seed_dir):
        assert record["domain"] in ("math", "code")
        assert all(seed_id.startswith(record["domain"]) for seed_id in record["demoSeedIds"])


def test_cluster_groups_seeds_by_embedding_and_draws_demos_within_a_cluster(seed_dir: Path) -> None:
    manifest, _ = run(
        seed_dir,
        GraScript(score=lambda request, round_name: 8),
        domains={"mode": "cluster", "clusters": 2},
        generation={"target": 6, "rounds": 1, "samplesPerRound": 6, "fewShot": 2},
        review={"reviewers": 2, "excludeDegenerate": False, "calibrationItems": 0},
    )
    labels = json.loads((seed_dir / "out" / "shards" / "shard-0000" / "domains.json").read_text())
    assert set(labels.values()) == {"cluster-0", "cluster-1"} and len(labels) == 6
    # the seeds' own field (never read in this mode) is the truth the embedding must recover: math apart from code
    by_topic = {topic: {labels[s["id"]] for s in SEEDS if s["domain"] == topic} for topic in ("math", "code")}
    assert all(len(found) == 1 for found in by_topic.values()) and by_topic["math"] != by_topic["code"], by_topic
    assert sum(c["seeds"] for c in manifest["byDomain"].values()) == 6
    for record in candidates(seed_dir):
        assert record["domain"].startswith("cluster-")
        assert {labels[s] for s in record["demoSeedIds"]} == {record["domain"]}
