"""Semantic deduplication: in journal order, a sample is dropped when its cosine similarity to a kept sample, a
seed or a decontamination item reaches the threshold.

Small sets are searched exactly (flat inner product on unit vectors). Past `CLUSTER_ABOVE` vectors the index
turns into an inverted file over k-means clusters (the SemDeDup / NeMo Curator idea) that stays exact where it
matters:

- candidates come from a batched search: every vector is compared, in a PCA-reduced space, with the vectors
  whose home cluster is among its `probes` nearest clusters, in both directions (a pair is found when either
  side's home is probed by the other), one matrix product per cluster;
- every candidate is verified with the exact full-dimension cosine, so nothing is ever dropped for a
  similarity below the threshold;
- the greedy resolution runs in order over the verified edges, so decisions do not depend on batching, on
  thread count or on which candidates were found first.

Vectors are read in chunks from anything row-addressable, including memory-mapped `.npy` shards (`Vectors`),
and the index keeps only the reduced vectors in memory: 1M × 384-d costs 256 MB beside the mapped data.
`bench/dedup.py` measures recall against planted duplicates and an exact reference.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from quorum.embedding import Embedder, shared_embedder

__all__ = ["CLUSTER_ABOVE", "DedupIndex", "Embedder", "Match", "Vectors", "shared_embedder"]

CLUSTER_ABOVE = 10_000
"""Indexed + new vectors above which the search goes through clusters. Exact search is quadratic: 10k vectors
take about 2 s on two busy cores, 50k about 10 s, 1M would take hours."""
PROBES = 4
"""Nearest clusters each vector is compared with, per view (bench/dedup.py at 300k and 1M: recall ≥ 0.99 of
near duplicates at cosine 0.91–0.99 on isotropic random vectors, the hardest case for clusters)."""
REDUCED_DIMENSION = 32
"""Dimension of each view's candidate search; verification always uses the full vectors."""
VIEWS = 2
"""Independent clusterings (disjoint PCA components): a pair is a candidate when any view finds it."""
CANDIDATE_MARGIN = 0.15
"""A pair becomes a candidate when its reduced cosine reaches threshold − margin. For a pair at cosine 0.9 the
reduced cosine deviates by about 0.03 (one σ) on isotropic vectors, so the margin is five σ."""
POINTS_PER_CLUSTER = 16
"""Training sample per k-means centre, up to `TRAINING_SAMPLE` rows in all."""
TRAINING_SAMPLE = 40_000
"""k-means quality barely matters here (verification is exact); training time does."""
DEDUP_THREADS_ENV = "QUORUM_DEDUP_THREADS"
VERIFY_CHUNK = 65_536
"""Candidate pairs verified per gather, which bounds the memory of the exact check."""


@dataclass(frozen=True)
class Match:
    """The nearest earlier kept sample, seed or decontamination item and its cosine. Exact up to the switch;
    after it, the nearest among the verified candidates, or (None, -1.0) when none is within 0.15 of the
    threshold."""

    label: str | None
    similarity: float


class Vectors:
    """A float32 matrix split over parts (arrays or memory-mapped `.npy` files), read row by row or in chunks.

    Nothing is loaded whole: chunks and gathered rows are copied out, so a million 384-d vectors on disk cost
    only what is being worked on.
    """

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        parts = [p for p in parts if len(p)] or list(parts[:1])
        if not parts:
            raise ValueError("Vectors needs at least one part")
        dimensions = {p.shape[1] for p in parts}
        if len(dimensions) != 1:
            raise ValueError(f"parts differ in dimension: {sorted(dimensions)}")
        self.parts = parts
        self.dimension = dimensions.pop()
        self.offsets = np.cumsum([0, *(len(p) for p in parts)])

    @classmethod
    def open(cls, paths: Sequence[Path]) -> Vectors:
        """Memory-map `.npy` shards in order."""
        return cls([np.load(path, mmap_mode="r") for path in paths])

    @classmethod
    def of(cls, data: Vectors | np.ndarray) -> Vectors:
        if isinstance(data, Vectors):
            return data
        array = np.asarray(data)
        if array.ndim != 2:  # an (n, d) matrix stays as it is, an empty one (0, d) included
            array = array.reshape(len(array), -1) if len(array) else array.reshape(0, 0)
        return cls([array])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def chunks(self, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """(start row, float32 copy) over all rows, at most `size` rows at a time."""
        for offset, part in zip(self.offsets, self.parts, strict=False):
            for start in range(0, len(part), size):
                chunk = np.array(part[start : start + size], dtype=np.float32)
                _release(part, start, start + len(chunk))
                yield int(offset) + start, chunk

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (any order, repeats allowed) as one float32 array."""
        if len(self.parts) == 1:
            return _rows(self.parts[0], rows)
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for number in np.unique(which):
            positions = np.flatnonzero(which == number)
            out[positions] = _rows(self.parts[number], rows[positions] - self.offsets[number])
        return out


def _release(part: np.ndarray, start: int, stop: int) -> None:
    """Unmap rows already read from a memory-mapped part (MADV_DONTNEED): the pages stay in the page cache but
    leave this process's resident set, so a pass over 1.5 GB of vectors does not hold 1.5 GB."""
    if not isinstance(part, np.memmap) or not isinstance(part.base, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    row_bytes = part.strides[0]
    base = part.offset % mmap.ALLOCATIONGRANULARITY  # where the array begins inside the mapping
    first = -(-(base + start * row_bytes) // mmap.PAGESIZE) * mmap.PAGESIZE
    last = (base + stop * row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if last > first:
        part.base.madvise(mmap.MADV_DONTNEED, first, last - first)


def _rows(part: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of one part; a memory map is read in ascending order, which is kind to the page cache."""
    if not isinstance(part, np.memmap) or not len(rows) or np.all(rows[1:] >= rows[:-1]):
        return np.asarray(part[rows], dtype=np.float32)
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), part.shape[1]), dtype=np.float32)
    out[order] = part[rows[order]]
    return out


class _Members:
    """Full vectors of indexed items as (source, rows) segments: references, not copies, so a million mapped
    vectors stay on disk. Callers hand over arrays they no longer change (the shard's and merge's do not)."""

    def __init__(self) -> None:
        self._segments: list[tuple[Vectors, np.ndarray]] = []
        self._offsets = [0]

    def __len__(self) -> int:
        return self._offsets[-1]

    def add(self, source: Vectors, rows: np.ndarray) -> None:
        if not len(rows):
            return
        self._segments.append((source, rows))
        self._offsets.append(self._offsets[-1] + len(rows))

    def take(self, members: np.ndarray) -> np.ndarray:
        out = np.empty((len(members), self._segments[0][0].dimension), dtype=np.float32)
        which = np.searchsorted(self._offsets, members, side="right") - 1
        for number in np.unique(which):
            positions = np.flatnonzero(which == number)
            source, rows = self._segments[number]
            out[positions] = source.take(rows[members[positions] - self._offsets[number]])
        return out

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for source, rows in self._segments:
            for start in range(0, len(rows), size):
                yield source.take(rows[start : start + size])


@dataclass
class _View:
    """One reduced space the candidate search runs in: a projection and spherical k-means centres over it."""

    projection: np.ndarray  # d × k
    centres: np.ndarray  # lists × k, unit rows
    _search: Any = None

    def reduce(self, chunk: np.ndarray) -> np.ndarray:
        reduced = chunk @ self.projection
        reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
        return reduced

    def nearest_lists(self, reduced: np.ndarray, probes: int) -> np.ndarray:
        """The `probes` nearest centres of each row, nearest first (exact search over the centres)."""
        if self._search is None:
            import faiss

            self._search = faiss.IndexFlatIP(self.centres.shape[1])
            self._search.add(self.centres)
        _, lists = self._search.search(reduced, min(probes, len(self.centres)))
        return lists.astype(np.int32)


def train_views(sample: np.ndarray, lists: int, reduced_dimension: int, views: int, seed: int = 0) -> list[_View]:
    """Uncentred PCA (cosine keeps the common direction), its leading components dealt round-robin to the views
    so that each gets a fair share of the variance, then spherical k-means per view. On isotropic vectors the
    views are independent, so a pair that one view's clusters split is found by another."""
    import faiss

    dimension = sample.shape[1]
    _, basis = np.linalg.eigh((sample.T @ sample).astype(np.float64))
    basis = basis[:, ::-1]
    result = []
    for view in range(views):
        columns = np.arange(view, dimension, views)[:reduced_dimension]
        projection = np.ascontiguousarray(basis[:, columns], dtype=np.float32)
        reduced = _View(projection, np.zeros((0, len(columns)), np.float32)).reduce(sample)
        kmeans = faiss.Kmeans(
            len(columns),
            lists,
            niter=8,
            seed=seed + view,
            spherical=True,
            max_points_per_centroid=POINTS_PER_CLUSTER,
            min_points_per_centroid=1,
        )
        kmeans.train(reduced)
        centres = kmeans.centroids.astype(np.float32)
        result.append(_View(projection, centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)))
    return result


def list_count(total: int, probes: int) -> int:
    """Balances the two costs, assignment (∝ lists) and candidate search (∝ total × probes / lists)."""
    return int(min(16_384, max(16, round(math.sqrt(total * probes)))))


@dataclass
class _Edges:
    """Verified similarities ≥ the candidate floor: new row → indexed member, and earlier → later new row."""

    member_query: np.ndarray
    member: np.ndarray
    member_similarity: np.ndarray
    earlier: np.ndarray
    later: np.ndarray
    similarity: np.ndarray


class DedupIndex:
    """Indexed vectors with labels; `admit` decides a batch in order, so results do not depend on batching."""

    def __init__(
        self,
        dimension: int,
        threshold: float,
        *,
        cluster_above: int = CLUSTER_ABOVE,
        probes: int = PROBES,
        reduced_dimension: int = REDUCED_DIMENSION,
        views: int = VIEWS,
        seed: int = 0,
    ) -> None:
        import faiss

        self.dimension = dimension
        self.threshold = threshold
        self.cluster_above = cluster_above
        self.probes = probes
        self.reduced_dimension = reduced_dimension
        self.seed = seed
        self.labels: list[str] = []
        self._flat: faiss.IndexFlatIP | None = faiss.IndexFlatIP(dimension)
        self._members = _Members()
        self.views = views
        self._views: list[_View] = []
        self._trained_for = 0
        self._reduced: list[np.ndarray] = []
        self._home: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def exact(self) -> bool:
        """Whether searches are still all-against-all (before the switch to clusters)."""
        return not self._views

    def add(self, vectors: Vectors | np.ndarray, labels: Sequence[str]) -> None:
        """Index reference vectors (seeds, decontamination items, committed samples) without deciding."""
        data = Vectors.of(vectors)
        if not len(labels):
            return
        with _threads():
            self._prepare(len(data), data)
            self._index_rows(data, np.arange(len(data)), list(labels))

    def nearest(self, vectors: Vectors | np.ndarray) -> list[Match]:
        """The closest indexed vector for each row, without adding anything. Once clustered, "closest" means
        closest among the verified candidates; a row with none has Match(None, -1.0)."""
        data = Vectors.of(vectors)
        if not self.labels:
            return [Match(None, -1.0) for _ in range(len(data))]
        return [match for _, match in self._decide(data, [""] * len(data), join=False)]

    def admit(
        self, vectors: Vectors | np.ndarray, labels: Sequence[str], batch: int = 2048
    ) -> list[tuple[bool, Match]]:
        """For each vector in order: (kept, nearest earlier match). Kept vectors join the index, so later ones
        in the same call are compared with them too. `batch` only bounds the memory of exact search."""
        data = Vectors.of(vectors)
        if len(data) != len(labels):
            raise ValueError(f"{len(data)} vectors but {len(labels)} labels")
        return self._decide(data, list(labels), join=True, batch=batch)

    def _decide(self, data: Vectors, labels: list[str], *, join: bool, batch: int = 2048) -> list[tuple[bool, Match]]:
        if not len(data):
            return []
        with _threads():
            self._prepare(len(data), data)
            if not self._views:
                return self._decide_exact(data, labels, join, batch)
            return self._decide_clustered(data, labels, join)

    # --- switching to clusters ---------------------------------------------------------------------------------

    def _prepare(self, incoming: int, data: Vectors) -> None:
        """Train (or retrain after 4× growth) the clustered space when the index will pass its limit."""
        total = len(self) + incoming
        if total <= self.cluster_above or (self._views and total <= 4 * self._trained_for):
            return
        lists = list_count(total, self.probes)
        rng = np.random.default_rng(self.seed)
        wanted = min(total, lists * POINTS_PER_CLUSTER, TRAINING_SAMPLE)
        picked = np.sort(rng.choice(total, size=wanted, replace=False))
        old, new = picked[picked < len(self)], picked[picked >= len(self)] - len(self)
        parts = [self._existing_rows(old), data.take(new)]
        self._views = train_views(np.concatenate(parts), lists, self.reduced_dimension, self.views, self.seed)
        self._trained_for = total
        self._reduce_existing()

    def _existing_rows(self, rows: np.ndarray) -> np.ndarray:
        if self._flat is not None:
            return np.stack([self._flat.reconstruct(int(r)) for r in rows]) if len(rows) else self._empty()
        return self._members.take(rows)

    def _reduce_existing(self) -> None:
        if self._flat is not None:
            everything = self._flat.reconstruct_n(0, self._flat.ntotal) if self._flat.ntotal else self._empty()
            self._members.add(Vectors([everything]), np.arange(len(everything)))
            self._flat = None
        self._reduced, self._home = [], []
        for view in self._views:
            parts = [view.reduce(chunk) for chunk in self._members.chunks(65_536)]
            reduced = np.concatenate(parts) if parts else np.zeros((0, view.projection.shape[1]), np.float32)
            self._reduced.append(reduced)
            self._home.append(view.nearest_lists(reduced, 1)[:, 0])

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dimension), dtype=np.float32)

    def _index_rows(
        self,
        data: Vectors,
        rows: np.ndarray,
        labels: list[str],
        assigned: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        """Index `rows` of `data`; `assigned` holds their reduced vectors and probe lists per view if known."""
        if not len(rows):
            return
        self.labels.extend(labels)
        if self._flat is not None:
            for start in range(0, len(rows), 65_536):
                self._flat.add(data.take(rows[start : start + 65_536]))
            return
        self._members.add(data, rows)
        if assigned is None:
            assigned = self._assign(Vectors([data.take(rows)]), probes=1)
        for view, (reduced, lists) in enumerate(assigned):
            self._reduced[view] = np.concatenate([self._reduced[view], reduced])
            self._home[view] = np.concatenate([self._home[view], lists[:, 0]])

    # --- exact search ------------------------------------------------------------------------------------------

    def _decide_exact(self, data: Vectors, labels: list[str], join: bool, batch: int) -> list[tuple[bool, Match]]:
        results: list[tuple[bool, Match]] = []
        for start, chunk in data.chunks(batch):
            results.extend(self._exact_chunk(chunk, labels[start : start + len(chunk)], join))
        return results

    def _exact_chunk(self, chunk: np.ndarray, labels: list[str], join: bool) -> list[tuple[bool, Match]]:
        assert self._flat is not None
        if len(self.labels):
            sims, ids = self._flat.search(chunk, 1)
            prior = [(float(s[0]), self.labels[i[0]] if i[0] >= 0 else None) for s, i in zip(sims, ids, strict=True)]
        else:
            prior = [(-1.0, None)] * len(labels)
        if not join:
            return [(s < self.threshold, Match(label, round(s, 4))) for s, label in prior]
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
            self._index_rows(Vectors([chunk]), np.asarray(kept_rows), [labels[r] for r in kept_rows])
        return results

    # --- clustered search --------------------------------------------------------------------------------------

    def _decide_clustered(self, data: Vectors, labels: list[str], join: bool) -> list[tuple[bool, Match]]:
        assigned = self._assign(data, self.probes)
        edges = self._verify(data, *self._candidates(assigned, join))
        kept, best, best_similarity = _resolve(len(data), edges, self.threshold, join)
        results = []
        for row in range(len(data)):
            neighbour = int(best[row])
            if neighbour == _NONE:
                match = Match(None, -1.0)
            else:
                label = self.labels[neighbour] if neighbour >= 0 else labels[-neighbour - 1]
                match = Match(label, round(float(best_similarity[row]), 4))
            results.append((bool(kept[row]), match))
        if join:
            rows = np.flatnonzero(kept)
            kept_assigned = [(reduced[rows], lists[rows]) for reduced, lists in assigned]
            self._index_rows(data, rows, [labels[r] for r in rows], kept_assigned)
        return results

    def _assign(self, data: Vectors, probes: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per view: reduced vectors and the `probes` nearest lists of every row (the first is its home)."""
        assigned = []
        for view in self._views:
            reduced = np.empty((len(data), view.projection.shape[1]), dtype=np.float32)
            lists = np.empty((len(data), min(probes, len(view.centres))), dtype=np.int32)
            for start, chunk in data.chunks(16_384):
                rows = slice(start, start + len(chunk))
                reduced[rows] = view.reduce(chunk)
                lists[rows] = view.nearest_lists(reduced[rows], probes)
            assigned.append((reduced, lists))
        return assigned

    def _candidates(
        self, assigned: list[tuple[np.ndarray, np.ndarray]], join: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pairs whose reduced cosine reaches the floor in some view: (new row, member) and (earlier new row,
        later new row). A new–new pair counts when either row probes the other's home."""
        member_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        new_pairs: list[tuple[np.ndarray, np.ndarray]] = []
        for view, (reduced, lists) in enumerate(assigned):
            self._scan_view(view, reduced, lists, join, member_pairs, new_pairs)
        count = len(assigned[0][0])
        member_q, member = _unique_pairs(*_concat(member_pairs), max(len(self), 1))
        earlier, later = _unique_pairs(*_concat(new_pairs), count)
        return member_q, member, earlier, later

    def _scan_view(
        self,
        view: int,
        reduced: np.ndarray,
        lists: np.ndarray,
        join: bool,
        member_pairs: list[tuple[np.ndarray, np.ndarray]],
        new_pairs: list[tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """One matrix product per cluster: the rows probing it against the members and new rows homed there."""
        floor = self.threshold - CANDIDATE_MARGIN
        member_lists = _group(self._home[view])
        new_lists = _group(lists[:, 0]) if join else {}
        for cluster, flat in _group(lists.ravel()).items():
            queries = flat // lists.shape[1]
            block = reduced[queries]
            members = member_lists.get(cluster)
            if members is not None:
                hit_q, hit_m = _hits(block @ self._reduced[view][members].T, floor)
                member_pairs.append((queries[hit_q], members[hit_m]))
            homes = new_lists.get(cluster)
            if homes is not None:
                hit_q, hit_h = _hits(block @ reduced[homes].T, floor)
                a, b = queries[hit_q], homes[hit_h]
                distinct = a != b
                new_pairs.append((np.minimum(a, b)[distinct], np.maximum(a, b)[distinct]))

    def _verify(
        self, data: Vectors, member_q: np.ndarray, member: np.ndarray, earlier: np.ndarray, later: np.ndarray
    ) -> _Edges:
        """Exact full-dimension cosine of every candidate; keeps those at or above the candidate floor."""
        floor = self.threshold - CANDIDATE_MARGIN
        member_sims = _rowwise_cosine(
            lambda rows: data.take(member_q[rows]), lambda rows: self._members.take(member[rows]), len(member)
        )
        new_sims = _rowwise_cosine(
            lambda rows: data.take(earlier[rows]), lambda rows: data.take(later[rows]), len(earlier)
        )
        keep_m, keep_n = member_sims >= floor, new_sims >= floor
        return _Edges(
            member_q[keep_m], member[keep_m], member_sims[keep_m], earlier[keep_n], later[keep_n], new_sims[keep_n]
        )


def _rowwise_cosine(
    left: Callable[[slice], np.ndarray], right: Callable[[slice], np.ndarray], count: int
) -> np.ndarray:
    """Dot products of paired rows, gathered `VERIFY_CHUNK` pairs at a time."""
    sims = np.empty(count, dtype=np.float32)
    for start in range(0, count, VERIFY_CHUNK):
        rows = slice(start, min(count, start + VERIFY_CHUNK))
        sims[rows] = np.einsum("ij,ij->i", left(rows), right(rows))
    return sims


_NONE = np.iinfo(np.int64).min


@contextlib.contextmanager
def _threads() -> Iterator[None]:
    """BLAS and faiss limited to `DEDUP_THREADS_ENV` threads (default 1) while the index works: on a busy node
    two spin-waiting threads ran k-means at half the speed of one and small products seven times slower
    (measured under a load average of 10 on two cores)."""
    import faiss
    from threadpoolctl import threadpool_limits

    threads = max(1, int(os.environ.get(DEDUP_THREADS_ENV, "1")))
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        with threadpool_limits(threads, user_api="blas"):
            yield
    finally:
        faiss.omp_set_num_threads(before)


def _group(values: np.ndarray) -> dict[int, np.ndarray]:
    """Positions of each value, ascending within a value."""
    if not len(values):
        return {}
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    return {int(sorted_values[s]): order[s:e] for s, e in zip(starts, ends, strict=True)}


def _hits(similarities: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of entries at or above `floor` (one flat scan: twice as fast as a 2-D nonzero)."""
    flat = np.flatnonzero(similarities >= floor)
    return flat // similarities.shape[1], flat % similarities.shape[1]


def _unique_pairs(left: np.ndarray, right: np.ndarray, base: int) -> tuple[np.ndarray, np.ndarray]:
    if not len(left):
        return left, right
    pair = np.unique(left * base + right)
    return pair // base, pair % base


def _concat(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in pairs]).astype(np.int64), np.concatenate([p[1] for p in pairs]).astype(
        np.int64
    )


def _resolve(count: int, edges: _Edges, threshold: float, join: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy in order over verified edges: a row is dropped when an indexed member or an earlier kept row of
    this batch reaches the threshold. Returns kept flags and each row's best neighbour among indexed members
    (index ≥ 0) and earlier kept rows (encoded −row − 1), with its similarity."""
    best = np.full(count, _NONE, dtype=np.int64)
    best_similarity = np.full(count, -1.0, dtype=np.float32)
    if len(edges.member):
        order = np.lexsort((-edges.member_similarity, edges.member_query))
        rows, first = np.unique(edges.member_query[order], return_index=True)
        best[rows] = edges.member[order][first]
        best_similarity[rows] = edges.member_similarity[order][first]
    kept = best_similarity < threshold
    if join and len(edges.later):
        order = np.lexsort((edges.earlier, edges.later))
        for earlier, later, similarity in zip(
            edges.earlier[order].tolist(), edges.later[order].tolist(), edges.similarity[order].tolist(), strict=True
        ):
            if kept[earlier] and similarity > best_similarity[later]:
                best[later], best_similarity[later] = -earlier - 1, similarity
                if similarity >= threshold:
                    kept[later] = False
    return kept, best, best_similarity
