"""The dedup index decides in order, independent of batching, and keeps deciding right after it switches from
exact search to the HNSW graph."""

from __future__ import annotations

import numpy as np

from quorum.gra.dedup import DedupIndex


def _planted(n: int, every: int = 10) -> tuple[np.ndarray, set[int]]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    copies = np.arange(1, n, every)
    vectors[copies] = vectors[copies - 1]
    return vectors, set(copies.tolist())


def _dropped(index: DedupIndex, vectors: np.ndarray, batch: int) -> set[int]:
    decisions = index.admit(vectors, [str(i) for i in range(len(vectors))], batch=batch)
    return {i for i, (kept, _) in enumerate(decisions) if not kept}


def test_exact_index_drops_exactly_the_planted_duplicates_whatever_the_batch() -> None:
    vectors, planted = _planted(600)
    assert _dropped(DedupIndex(64, 0.9), vectors, batch=7) == planted
    assert _dropped(DedupIndex(64, 0.9), vectors, batch=1000) == planted


def test_index_turns_approximate_past_its_limit_and_still_finds_duplicates() -> None:
    vectors, planted = _planted(2000)
    index = DedupIndex(64, 0.9, exact_limit=300)
    dropped = _dropped(index, vectors, batch=128)
    assert not index.exact
    assert dropped == planted


def test_a_duplicate_names_its_earlier_neighbour() -> None:
    vectors, _ = _planted(20, every=5)
    decisions = DedupIndex(64, 0.9).admit(vectors, [f"s{i}" for i in range(20)])
    kept, match = decisions[1]
    assert not kept and match.label == "s0" and match.similarity >= 0.999
