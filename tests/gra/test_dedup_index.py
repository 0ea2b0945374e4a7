"""The dedup index decides in order, independent of batching, and keeps its recall after it switches from exact
search to clusters (the old HNSW switch kept about half of the duplicates past 250k vectors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from quorum.gra.dedup import DedupIndex, Vectors
from quorum.gra.testing import planted_duplicates


def _planted(n: int, dimension: int = 384, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1% exact and 2% near copies (cosine 0.91–0.99) of earlier, unplanted rows."""
    return planted_duplicates(n, dimension, exact_share=0.01, near_share=0.02, seed=seed)


def _dropped(index: DedupIndex, vectors: np.ndarray | Vectors, batch: int = 2048) -> np.ndarray:
    decisions = index.admit(vectors, [str(i) for i in range(len(vectors))], batch=batch)
    return np.array([not kept for kept, _ in decisions])


def test_exact_index_drops_exactly_the_planted_duplicates_whatever_the_batch() -> None:
    vectors, exact, near = _planted(1000, dimension=64)
    planted = np.zeros(1000, dtype=bool)
    planted[exact] = planted[near] = True
    assert (_dropped(DedupIndex(64, 0.9), vectors, batch=7) == planted).all()
    assert (_dropped(DedupIndex(64, 0.9), vectors, batch=1000) == planted).all()


def test_recall_stays_above_099_past_the_switch_to_clusters_with_no_false_drop() -> None:
    vectors, exact, near = _planted(40_000)
    index = DedupIndex(384, 0.9, cluster_above=5_000)
    dropped = _dropped(index, vectors)
    assert not index.exact
    planted = np.zeros(len(vectors), dtype=bool)
    planted[exact] = planted[near] = True
    assert dropped[exact].all()
    assert dropped[near].mean() >= 0.99
    assert not (dropped & ~planted).any()
    reference = _dropped(DedupIndex(384, 0.9, cluster_above=10**9), vectors[:4000])
    assert (dropped[:4000] == reference).all()


def test_splitting_the_journal_into_several_admits_changes_no_decision() -> None:
    vectors, exact, near = _planted(20_000)
    vectors = np.delete(vectors, near, axis=0)  # exact copies only: every view finds them, in any split
    whole = _dropped(DedupIndex(384, 0.9, cluster_above=3_000), vectors)
    index = DedupIndex(384, 0.9, cluster_above=3_000)
    parts = [_dropped(index, vectors[s : s + 4_000]) for s in range(0, len(vectors), 4_000)]
    assert (np.concatenate(parts) == whole).all()
    assert whole.sum() == len(exact)


def test_memory_mapped_shards_decide_like_the_array(tmp_path: Path) -> None:
    vectors, _, _ = _planted(12_000)
    paths = []
    for number, start in enumerate(range(0, len(vectors), 5_000)):
        paths.append(tmp_path / f"part-{number}.npy")
        np.save(paths[-1], vectors[start : start + 5_000])
    mapped = _dropped(DedupIndex(384, 0.9, cluster_above=2_000), Vectors.open(paths))
    assert (mapped == _dropped(DedupIndex(384, 0.9, cluster_above=2_000), vectors)).all()


def test_references_added_before_the_switch_still_match_after_it() -> None:
    vectors, _, _ = _planted(9_000)
    index = DedupIndex(384, 0.9, cluster_above=5_000)
    index.add(vectors[:10], [f"seed:{i}" for i in range(10)])
    decisions = index.admit(vectors, [str(i) for i in range(len(vectors))])
    assert not index.exact
    assert all(not kept and match.label == f"seed:{i}" for i, (kept, match) in enumerate(decisions[:10]))
    assert [m.label for m in index.nearest(vectors[:3])] == ["seed:0", "seed:1", "seed:2"]


def test_a_duplicate_names_its_earlier_neighbour() -> None:
    vectors = np.random.default_rng(1).standard_normal((20, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[1] = vectors[0]
    decisions = DedupIndex(64, 0.9).admit(vectors, [f"s{i}" for i in range(20)])
    kept, match = decisions[1]
    assert not kept and match.label == "s0" and match.similarity >= 0.999


def test_an_empty_batch_decides_nothing_and_leaves_the_index_as_it_was() -> None:
    """A round where nothing passed the gate hands dedup a (0, d) matrix: the `make demo` crash of round 2."""
    index = DedupIndex(64, 0.9)
    vectors, _, _ = _planted(10, dimension=64)
    index.admit(vectors, [str(i) for i in range(10)])
    assert index.admit(np.zeros((0, 64), dtype=np.float32), []) == []
    assert index.nearest(np.zeros((0, 64), dtype=np.float32)) == []
    assert len(index) == len(index.labels) == 10
