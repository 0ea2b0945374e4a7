"""Calibration on a synthetic pool with known per-topic accuracies routes like the per-cluster oracle."""

from __future__ import annotations

import numpy as np

from quorum.llm import ModelEndpoint
from quorum.llm.simulated import SimulatedBackend
from quorum.routing.artifact import load_artifact, save_artifact
from quorum.routing.calibrate import add_models
from tests.routing.conftest import calibrated_pool
from tests.routing.pool import ACCURACY, TOPIC_TASK, questions, responder_for


def test_routed_accuracy_matches_the_per_topic_best_model_and_beats_every_single_model(full_pool):
    _, _, artifact, _ = full_pool
    overall = artifact.evaluation["overall"]
    per_task = artifact.evaluation["tasks"]
    # The per-cluster oracle: on each task the best model's held-out accuracy (each task here is two topics
    # that one model masters), weighted by questions.
    cluster_oracle = sum(max(t["models"].values()) * t["questions"] for t in per_task.values()) / overall["questions"]
    best_single = overall["bestSingle"]["accuracy"]
    # Expected: routed ≈ 0.9 (the specialist of each topic); the best single model ≈ (0.9+0.9+0.2+0.2)/4 = 0.55.
    # One misrouted topic would cost 0.25 × (0.9 − 0.55) ≈ 0.09, so a 0.05 margin detects it.
    assert overall["routed"] >= cluster_oracle - 0.05
    assert overall["routed"] >= best_single + 0.2
    assert overall["oracle"] >= overall["routed"]
    assert set(per_task) == {"arithmetic", "trivia"}
    assert overall["questions"] == 2 * round(len(questions()) / 2 * 0.3)  # 30% of each task


def test_clusters_rank_each_topic_specialist_first(full_pool, embedder):
    _, items, artifact, _ = full_pool
    task_map = artifact.task_map
    specialist = {topic: max(ACCURACY, key=lambda m: ACCURACY[m][topic]) for topic in TOPIC_TASK}
    vectors = embedder.encode([q["question"] for q in questions()])
    hits = sum(
        task_map.ranking(task_map.nearest(v, 1)[0][0])[0] == specialist[q["topic"]]
        for v, q in zip(vectors, questions(), strict=True)
    )
    # Random routing would hit 1/3; clusters that mix a few questions of two topics cost some hits.
    assert hits / len(items) >= 0.8
    # Centres are unit vectors, and so routing is by cosine offline and online.
    assert np.allclose(np.linalg.norm(task_map.centres, axis=1), 1.0, atol=1e-5)


async def test_artifact_round_trips_and_adding_a_model_rescores_without_reclustering(tmp_path, embedder):
    spec, items, artifact, _ = await calibrated_pool(tmp_path, embedder, ["alpha", "gamma"])
    save_artifact(artifact, tmp_path / "bundle")
    loaded = load_artifact(tmp_path / "bundle")
    assert loaded.checksum == artifact.checksum
    assert np.array_equal(loaded.task_map.centres, artifact.task_map.centres)
    assert loaded.task_map.rankings() == artifact.task_map.rankings()
    async with SimulatedBackend(responder_for("beta"), models=["beta"]) as beta:
        grown = await add_models(loaded, spec, [ModelEndpoint("beta", beta.base_url, "beta")], items)
        calibration_size = loaded.calibration["calibrationQuestions"]
        assert len(beta.requests) == calibration_size  # only the calibration split, nothing re-embedded
    assert np.array_equal(grown.task_map.centres, loaded.task_map.centres)
    assert grown.task_map.models == ["alpha", "gamma", "beta"]
    trivia_clusters = [c for c, t in enumerate(grown.task_map.cluster_tasks) if t == "trivia"]
    assert trivia_clusters and all(grown.task_map.ranking(c)[0] == "beta" for c in trivia_clusters)


def test_artifact_with_64_centres_of_384_dims_fits_a_configmap(embedder):
    from quorum.routing.artifact import Artifact
    from quorum.routing.taskmap import TaskMap, normalize_rows

    rng = np.random.default_rng(0)
    models = [f"model-{i}" for i in range(10)]
    task_map = TaskMap(
        centres=normalize_rows(rng.normal(size=(64, 384))),
        models=models,
        accuracy=rng.random((64, 10)),
        global_accuracy=rng.random(10),
        cluster_sizes=[10] * 64,
        cluster_tasks=["t"] * 64,
    )
    artifact = Artifact(task_map, "all-MiniLM-L6-v2", 384, 42, 64, 5.0, "f" * 64, "2026-01-01T00:00:00+00:00")
    size = len(artifact.to_files()["artifact.json"])
    assert 128 * 1024 < size < 200 * 1024  # float32 centres: 96 KiB raw → 128 KiB base64, plus rankings
