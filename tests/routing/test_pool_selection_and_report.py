"""The offline tools around a task map: the paper's pool selection (`quorum router select-models`), merging
clusters too small to rank models, and the calibration report."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from quorum.cli.main import app
from quorum.routing.artifact import Artifact, save_artifact
from quorum.routing.report import FIGURE_FILE, write_report
from quorum.routing.taskmap import TaskMap, build_task_map, merge_small_clusters, normalize_rows, select_pool

MODELS = ["a", "b", "c", "d"]


def _task_map() -> TaskMap:
    """Three clusters: a wins two, b one; rankings a>b>c>d, a>c>b>d, b>a>d>c."""
    accuracy = np.array([[0.9, 0.8, 0.7, 0.1], [0.9, 0.5, 0.6, 0.1], [0.6, 0.9, 0.1, 0.2]])
    centres = normalize_rows(np.eye(3, 8, dtype=np.float32))
    return TaskMap(centres, MODELS, accuracy, accuracy.mean(axis=0), [12, 30, 7], ["t", "t", "u"])


def _artifact(task_map: TaskMap) -> Artifact:
    evaluation = {
        "strategy": "self-consistency",
        "servedSamples": 10,
        "modelsSelected": 1,
        "overall": {
            "questions": 20,
            "routed": 0.85,
            "oracle": 0.9,
            "models": dict.fromkeys(MODELS, 0.5),
            "bestSingle": {"model": "a", "accuracy": 0.6},
        },
        "tasks": {},
    }
    calibration = {"questions": 70, "calibrationQuestions": 49, "heldOutQuestions": 21, "samples": 10}
    return Artifact(task_map, "emb", 8, 42, 64, 5.0, "f" * 64, "2026-01-01T00:00:00+00:00", {}, evaluation, calibration)


def test_pool_selection_scores_each_model_by_the_sum_of_its_inverse_ranks():
    scores, kept = select_pool(_task_map(), 2)
    assert scores == pytest.approx(
        {"a": 1 + 1 + 1 / 2, "b": 1 / 2 + 1 / 3 + 1, "c": 1 / 3 + 1 / 2 + 1 / 4, "d": 1 / 4 + 1 / 4 + 1 / 3}
    )
    assert kept == ["a", "b"] and list(scores) == ["a", "b", "c", "d"]


def _manifest(tmp_path):
    document = {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "e"},
        "spec": {
            "models": [{"name": m, "endpoint": {"url": "http://127.0.0.1:9/v1", "model": m}} for m in MODELS],
            "calibration": {"dataset": {"uri": "file://calibration.jsonl"}},
        },
    }
    path = tmp_path / "router.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_select_models_prints_the_score_table_and_the_kept_pool(tmp_path):
    save_artifact(_artifact(_task_map()), tmp_path / "bundle")
    manifest = _manifest(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        app, ["router", "select-models", str(manifest), "--artifact", str(tmp_path / "bundle"), "--keep", "3"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["a", "2.500", "2", "yes"]
    assert lines[4].split() == ["d", "0.833", "0"]
    assert lines[-1] == "kept pool (3 of 4): a, b, c"
    alias = runner.invoke(
        app,
        ["router", "select-models", "--config", str(manifest), "--artifact", str(tmp_path / "bundle"), "--keep", "3"],
    )
    assert alias.exit_code == 0 and alias.output == result.output
    too_many = runner.invoke(
        app, ["router", "select-models", str(manifest), "--artifact", str(tmp_path / "bundle"), "--keep", "5"]
    )
    assert too_many.exit_code == 1 and "--keep 5 exceeds the 4 calibrated models" in too_many.output


def test_clusters_below_the_minimum_size_merge_into_their_nearest_neighbour():
    rng = np.random.default_rng(0)
    axes = np.eye(3, 16)
    groups = [axes[0] + 0.05 * rng.normal(size=(30, 16)), axes[1] + 0.05 * rng.normal(size=(25, 16))]
    groups.append(0.8 * axes[1] + 0.6 * axes[2] + 0.05 * rng.normal(size=(3, 16)))  # 3 questions near group 1
    vectors = normalize_rows(np.concatenate(groups))
    centres = normalize_rows(np.stack([g.mean(axis=0) for g in groups]))
    merged = merge_small_clusters(vectors, centres, min_size=5)
    assert len(merged) == 2
    assignments = np.argmax(vectors @ merged.T, axis=1)
    assert sorted(np.bincount(assignments).tolist()) == [28, 30]  # the 3 joined the 25, not the 30
    assert np.allclose(np.linalg.norm(merged, axis=1), 1.0, atol=1e-5)
    assert len(merge_small_clusters(vectors, centres, min_size=1)) == 3
    scores = rng.random((len(vectors), 2))
    task_map, _ = build_task_map(
        vectors, scores, ["x", "y"], ["t"] * len(vectors), clusters=8, seed=1, shrinkage=0.0, min_cluster_size=10
    )
    assert min(task_map.cluster_sizes) >= 10 and sum(task_map.cluster_sizes) == len(vectors)


def test_the_report_has_the_heatmap_the_held_out_comparison_and_the_cluster_sizes(tmp_path):
    path = write_report(_artifact(_task_map()), tmp_path)
    text = path.read_text()
    assert f"![heatmap, held-out accuracy and cluster sizes]({FIGURE_FILE})" in text
    assert "| all | 20 | 0.850 | 0.600 (a) | 0.900 |" in text
    assert "sizes min 7, median 12, max 30" in text
    assert "| 2 | u | 7 | b (0.90), a (0.60), d (0.20), c (0.10) |" in text
    assert (tmp_path / FIGURE_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
