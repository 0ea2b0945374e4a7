"""The task map: k-means centres over question embeddings, and per cluster a ranking of the models.

Cosine everywhere: vectors and centres are unit length (centres re-normalized after k-means), so offline
assignment and online routing agree (upstream assigned by Euclidean distance but routed by 1 − c·q with
unnormalized centres).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

RANK_OFFSET = 0.1
"""score(m) = Σ_c weight_c / (rank_c(m) + 0.1), as in the paper."""


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def kmeans_centres(vectors: np.ndarray, clusters: int, seed: int, iterations: int = 25) -> np.ndarray:
    """Spherical k-means on unit vectors; K is capped at the number of distinct questions."""
    vectors = normalize_rows(np.ascontiguousarray(vectors, dtype=np.float32))
    k = max(1, min(clusters, len(np.unique(vectors.round(5), axis=0))))
    kmeans = faiss.Kmeans(
        vectors.shape[1], k, niter=iterations, seed=seed, spherical=True, verbose=False, min_points_per_centroid=1
    )
    kmeans.train(vectors)
    return normalize_rows(kmeans.centroids)


def merge_small_clusters(vectors: np.ndarray, centres: np.ndarray, min_size: int) -> np.ndarray:
    """Merge the smallest cluster into the one whose centre is nearest until every cluster holds `min_size`
    calibration questions (or one cluster is left); the merged centre is its members' normalized mean.

    Why: with K=64 on a calibration set of 1–2k questions many clusters hold a handful of questions, and
    shrinkage then ranks them by global accuracy, so their queries miss the specialist. Sizes are counted by
    nearest-centre assignment, the rule routing uses online."""
    vectors = normalize_rows(np.ascontiguousarray(vectors, dtype=np.float32))
    centres = normalize_rows(np.asarray(centres, dtype=np.float32))
    while len(centres) > 1:
        assignments = assign(vectors, centres)
        sizes = np.bincount(assignments, minlength=len(centres))
        small = int(np.argmin(sizes))
        if sizes[small] >= min_size:
            break
        similarity = centres @ centres[small]
        similarity[small] = -np.inf
        target = int(np.argmax(similarity))
        members = (assignments == small) | (assignments == target)
        if members.any():
            centres[target] = normalize_rows(vectors[members].mean(axis=0, keepdims=True))[0]
        centres = np.delete(centres, small, axis=0)
    return centres


def size_distribution(sizes: Sequence[int]) -> dict[str, float]:
    """Smallest, median and largest cluster (calibration questions per cluster), for status and the report."""
    if not sizes:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": int(min(sizes)), "median": float(np.median(sizes)), "max": int(max(sizes))}


def assign(vectors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Nearest centre by cosine for each (normalized) vector."""
    return np.argmax(vectors @ centres.T, axis=1)


def cluster_accuracy(
    assignments: np.ndarray, scores: np.ndarray, clusters: int, shrinkage: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per (cluster, model) accuracy, pulled toward the model's global accuracy by `shrinkage` pseudo-items.

    `scores[i, m]` is model m's correctness on calibration item i (0..1). A cluster with few items then ranks
    mostly by global accuracy instead of by the luck of two questions."""
    global_accuracy = scores.mean(axis=0) if len(scores) else np.zeros(scores.shape[1])
    accuracy = np.zeros((clusters, scores.shape[1]), dtype=np.float64)
    for cluster in range(clusters):
        members = scores[assignments == cluster]
        accuracy[cluster] = (members.sum(axis=0) + shrinkage * global_accuracy) / (len(members) + shrinkage or 1)
    return accuracy, global_accuracy


@dataclass(frozen=True)
class Route:
    """Where one query goes: blended clusters with weights, and the selected models best first."""

    clusters: list[int]
    weights: list[float]
    models: list[str]
    scores: dict[str, float]

    @property
    def cluster(self) -> int:
        return self.clusters[0]


@dataclass
class TaskMap:
    centres: np.ndarray
    """K×D float32 unit vectors."""
    models: list[str]
    accuracy: np.ndarray
    """K×M shrunk accuracies."""
    global_accuracy: np.ndarray
    """M global calibration accuracies."""
    cluster_sizes: list[int]
    cluster_tasks: list[str | None]
    """The most frequent task among each cluster's calibration questions (picks the extractor online)."""

    @property
    def clusters(self) -> int:
        return int(self.centres.shape[0])

    def ranking(self, cluster: int) -> list[str]:
        """Models best first; ties by global accuracy, then by name."""
        order = sorted(
            range(len(self.models)),
            key=lambda m: (
                -round(float(self.accuracy[cluster, m]), 9),
                -float(self.global_accuracy[m]),
                self.models[m],
            ),
        )
        return [self.models[m] for m in order]

    def rankings(self) -> list[list[str]]:
        return [self.ranking(c) for c in range(self.clusters)]

    def nearest(self, vector: np.ndarray, count: int) -> list[tuple[int, float]]:
        similarity = self.centres @ vector
        top = np.argsort(-similarity, kind="stable")[: max(1, min(count, self.clusters))]
        return [(int(c), float(similarity[c])) for c in top]

    def route(self, vector: np.ndarray, *, blended: int, beta: float, select: int, available: Collection[str]) -> Route:
        """Score each available model over the nearest centres and keep the best `select`.

        Available models missing from the map (added after calibration) get the worst rank."""
        nearest = self.nearest(vector, blended)
        distances = np.array([1.0 - similarity for _, similarity in nearest])
        logits = -beta * distances
        weights = np.exp(logits - logits.max())
        weights = weights / weights.sum()
        worst = len(self.models) + 1
        global_by_name = dict(zip(self.models, self.global_accuracy.tolist(), strict=True))
        rank_tables = [{name: i + 1 for i, name in enumerate(self.ranking(c))} for c, _ in nearest]
        scores = {
            name: float(
                sum(w / (table.get(name, worst) + RANK_OFFSET) for w, table in zip(weights, rank_tables, strict=True))
            )
            for name in available
        }
        chosen = sorted(scores, key=lambda n: (-round(scores[n], 12), -global_by_name.get(n, -1.0), n))[:select]
        return Route(
            clusters=[c for c, _ in nearest],
            weights=[float(w) for w in weights],
            models=chosen,
            scores={n: scores[n] for n in chosen},
        )


def select_pool(task_map: TaskMap, keep: int) -> tuple[dict[str, float], list[str]]:
    """The paper's pool selection: s(m) = Σ_clusters 1/rank_c(m) (rank 1 = best), highest first; keep the top
    `keep`. Ties by global accuracy, then name (the ranking's own tie-break)."""
    scores = dict.fromkeys(task_map.models, 0.0)
    for cluster in range(task_map.clusters):
        for rank, model in enumerate(task_map.ranking(cluster), start=1):
            scores[model] += 1.0 / rank
    global_by_name = dict(zip(task_map.models, task_map.global_accuracy.tolist(), strict=True))
    order = sorted(scores, key=lambda m: (-round(scores[m], 9), -global_by_name[m], m))
    return {m: scores[m] for m in order}, order[:keep]


def build_task_map(
    vectors: np.ndarray,
    scores: np.ndarray,
    models: Sequence[str],
    tasks: Sequence[str],
    *,
    clusters: int,
    seed: int,
    shrinkage: float,
    min_cluster_size: int = 1,
    centres: np.ndarray | None = None,
) -> tuple[TaskMap, np.ndarray]:
    """Cluster (unless `centres` are given: adding a model re-scores without re-clustering), merge clusters
    below `min_cluster_size`, and score."""
    if centres is None:
        centres = merge_small_clusters(vectors, kmeans_centres(vectors, clusters, seed), min_cluster_size)
    assignments = assign(vectors, centres)
    k = centres.shape[0]
    accuracy, global_accuracy = cluster_accuracy(assignments, scores, k, shrinkage)
    sizes = np.bincount(assignments, minlength=k).tolist()
    dominant: list[str | None] = []
    for cluster in range(k):
        counts = Counter(task for task, a in zip(tasks, assignments, strict=True) if a == cluster)
        dominant.append(min(counts, key=lambda t: (-counts[t], t)) if counts else None)
    task_map = TaskMap(
        centres=centres,
        models=list(models),
        accuracy=accuracy,
        global_accuracy=global_accuracy,
        cluster_sizes=sizes,
        cluster_tasks=dominant,
    )
    return task_map, assignments
