"""Spec fidelity: digests of 3–8 keywords and ≤ 2 sentences, demos and domain slots from the whole seed set
in proportion whatever the shard count, exactly `target` records after cross-shard dedup, and an embedding
dimension that comes from the model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from quorum.gra import GraConfig, prompts
from quorum.gra.merge import _dedup_across_shards
from quorum.gra.records import read_jsonl
from quorum.gra.testing import GraScript
from tests.gra.conftest import make_spec, provenances, run_simulated

POOL = ["a", "b", "c"]
QUIET_REVIEW = {"reviewers": 2, "excludeDegenerate": False, "calibrationItems": 0}
"""Constant scripted scores, no calibration: these tests are about the plan, not the reviewers."""


def test_a_digest_keeps_up_to_eight_keywords_and_two_sentences() -> None:
    schema = prompts.digest_schema()["properties"]
    assert (schema["keywords"]["minItems"], schema["keywords"]["maxItems"]) == (3, 8)
    value = {"keywords": [f"k{i}" for i in range(8)], "summary": "One thing. Then another! A third one? Four."}
    cleaned = prompts.clean_digest(value)
    assert cleaned == {"keywords": value["keywords"], "summary": "One thing. Then another!"}


def plan(folder: Path, shards: int, seeds: list[dict]) -> tuple[list[tuple[str, str, tuple[str, ...]]], object]:
    (folder / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    _, sim = run_simulated(
        folder,
        GraScript(score=lambda request, round_name: 8),
        POOL,
        out=f"out-{shards}",
        review=QUIET_REVIEW,
        digest={"temperature": 0.4, "maxTokens": 300},
        generation={"target": 500, "rounds": 1, "samplesPerRound": 30, "fewShot": 3},
        workers={"shards": shards, "parallelism": min(shards, 4)},
    )
    rows = provenances(folder / f"out-{shards}")
    return sorted((r["id"], r["domain"], tuple(r["demoSeedIds"])) for r in rows), sim


def test_demos_and_domain_slots_come_from_the_whole_seed_set_in_proportion(tmp_path: Path) -> None:
    seeds = [{"id": f"math-{i}", "domain": "math", "instruction": f"math task {i}"} for i in range(8)]
    seeds += [{"id": f"code-{i}", "domain": "code", "instruction": f"code task {i}"} for i in range(4)]
    one, sim = plan(tmp_path, 1, seeds)
    sixteen, _ = plan(tmp_path, 16, seeds)
    assert one == sixteen  # the same slots, domains and demos whatever the shard count
    per_domain = Counter(domain for _, domain, _ in sixteen)
    assert per_domain == {"math": 20, "code": 10}  # 2:1 like the seeds
    assert all(len(demos) == 3 for _, _, demos in sixteen)  # full demos even with 16 shards of 12 seeds
    digests = [r for r in sim.requests if r.schema_name == prompts.DIGEST]
    assert digests and all(r.temperature == 0.4 and r.max_tokens == 300 for r in digests)


def test_the_run_stops_at_exactly_target_after_cross_shard_dedup(seed_dir: Path) -> None:
    manifest, _ = run_simulated(
        seed_dir,
        GraScript(score=lambda request, round_name: 8, duplicate_every=3),
        POOL,
        review=QUIET_REVIEW,
        generation={"target": 10, "rounds": 4, "samplesPerRound": 6},
        postprocess={"dedup": {"enabled": True, "threshold": 0.9}},
        workers={"shards": 2, "parallelism": 2},
    )
    counts = manifest["counts"]
    assert counts["accepted"] == 10 == len(read_jsonl(seed_dir / "out" / "dataset.jsonl"))
    assert counts["duplicates"] > 0  # dedup took some away ...
    assert max(info["rounds"] for info in manifest["shards"].values()) >= 3  # ... and the shards topped up
    surplus = [r for r in read_jsonl(seed_dir / "out" / "rejected.jsonl") if r["status"] == "surplus"]
    assert len(surplus) == counts["surplus"]
    kept_order = [
        (r["provenance"]["round"], r["provenance"]["slot"]) for r in read_jsonl(seed_dir / "out" / "dataset.jsonl")
    ]
    trimmed = [(s["provenance"]["round"], s["provenance"]["slot"]) for s in surplus]
    assert all(kept_order[-1] < place for place in trimmed)  # trimmed from the end, in order


def test_an_empty_kept_set_takes_the_embedding_dimension_from_the_model(seed_dir: Path) -> None:
    spec = make_spec("http://127.0.0.1:9", POOL, review={"reviewers": 2}, postprocess={"dedup": {"enabled": True}})

    class WideEmbedder:  # a model of another width than the packaged MiniLM's 384
        dimension = 768

    matrix = _dedup_across_shards(GraConfig.from_spec(spec, base_dir=seed_dir), [], {}, WideEmbedder())
    assert isinstance(matrix, np.ndarray) and matrix.shape == (0, 768)
