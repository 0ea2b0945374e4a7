"""Dedup at scale: Quorum's clustered index against plain faiss IVF (nprobe 16), measured in the same run.

The data: isotropic random unit vectors (nearly orthogonal in 384-d, the hardest case for any clustering),
written as memory-mapped `.npy` shards, with planted duplicates of earlier rows: 1% exact copies and 1% near
copies at cosine 0.91–0.99. Every planted row must be dropped and no other row may be, so the ground truth is
known exactly. Beside it, an exact all-against-all greedy on the first `--exact-n` rows checks the decisions
one by one (a row's fate depends only on the rows before it).

Each method runs in its own process that maps the shards, so its wall time and peak RSS are its own.

Usage: python bench/dedup.py [--n 300000 1000000] [--exact-n 20000] [--ivf-queries 100000] [--skip-ivf]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIMENSION = 384
THRESHOLD = 0.9
SHARD_ROWS = 125_000


def planted(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from quorum.gra.testing import planted_duplicates

    return planted_duplicates(n, DIMENSION, exact_share=0.01, near_share=0.01)


def write_shards(vectors: np.ndarray, directory: Path) -> list[Path]:
    paths = []
    for number, start in enumerate(range(0, len(vectors), SHARD_ROWS)):
        path = directory / f"vectors-{number:03d}.npy"
        np.save(path, vectors[start : start + SHARD_ROWS])
        paths.append(path)
    return paths


def ours(paths: list[Path], limit: int | None) -> np.ndarray:
    from quorum.gra.dedup import DedupIndex, Vectors

    data = Vectors.open(paths)
    index = DedupIndex(DIMENSION, THRESHOLD, cluster_above=limit if limit is not None else 10_000)
    decisions = index.admit(data, [str(i) for i in range(len(data))])
    return np.array([not kept for kept, _ in decisions])


def exact(paths: list[Path], rows: int) -> np.ndarray:
    """All-against-all greedy on the first `rows` rows (the reference)."""
    from quorum.gra.dedup import DedupIndex, Vectors

    data = Vectors([np.load(paths[0], mmap_mode="r")[:rows]])
    index = DedupIndex(DIMENSION, THRESHOLD, cluster_above=rows + 1)
    decisions = index.admit(data, [str(i) for i in range(rows)])
    return np.array([not kept for kept, _ in decisions])


def plain_ivf(paths: list[Path], queries: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The usual faiss recipe: IVF-Flat (4·√n lists, nprobe 16) over all vectors, a k-nearest search, then the
    same greedy in order over the pairs found at or above the threshold.

    Searching every vector costs n^1.5 (12 minutes for 300k under a load of 14), so only `queries` rows drawn
    at random search, and the search time is scaled to n. Returns the drops, the rows whose fate was searched
    (recall is scored on them) and the seconds (build + scaled search).
    """
    import faiss

    from quorum.gra.dedup import Vectors

    started = time.perf_counter()
    data = Vectors.open(paths)
    n = len(data)
    lists = int(4 * np.sqrt(n))
    faiss.omp_set_num_threads(1)  # as ours: on a busy node one thread beats two spin-waiting ones
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIMENSION), DIMENSION, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 8  # the training budget ours gets (16 points per list, 8 iterations)
    rng = np.random.default_rng(0)
    index.train(data.take(np.sort(rng.choice(n, size=min(n, lists * 16), replace=False))))
    for _, chunk in data.chunks(65_536):
        index.add(chunk)
    index.nprobe = 16
    built = time.perf_counter()
    searched = np.sort(rng.choice(n, size=min(n, queries), replace=False))
    later, earlier = [], []
    for start in range(0, len(searched), 16_384):
        rows = searched[start : start + 16_384]
        sims, ids = index.search(data.take(rows), 8)
        hit = (sims >= THRESHOLD) & (ids >= 0) & (ids != rows[:, None])
        a, b = np.broadcast_to(rows[:, None], ids.shape)[hit], ids[hit]
        later.append(np.maximum(a, b))
        earlier.append(np.minimum(a, b))
    search_seconds = (time.perf_counter() - built) * n / len(searched)
    dropped = np.zeros(n, dtype=bool)
    pairs = np.unique(np.stack([np.concatenate(later), np.concatenate(earlier)], axis=1), axis=0)
    for j, i in pairs.tolist():  # sorted by the later row: earlier rows are final when a later one is decided
        if not dropped[i]:
            dropped[j] = True
    scored = np.zeros(n, dtype=bool)
    scored[searched] = True
    return dropped, scored, built - started + search_seconds


def worker(method: str, directory: Path, argument: int | None) -> None:
    paths = sorted(directory.glob("vectors-*.npy"))
    started = time.perf_counter()
    if method == "ivf":
        dropped, scored, seconds = plain_ivf(paths, argument or 0)
    else:
        dropped = ours(paths, argument) if method == "ours" else exact(paths, argument or 0)
        scored, seconds = np.ones(len(dropped), dtype=bool), time.perf_counter() - started
    np.save(directory / f"dropped-{method}.npy", np.stack([dropped, scored]))
    peak = peak_rss_mb()
    print(json.dumps({"seconds": seconds, "peakMB": peak, "load": os.getloadavg()[0]}))


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM). Not ru_maxrss: Linux carries the parent's mark across the
    fork and exec that start the worker, which made every worker report the data generator's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(method: str, directory: Path, argument: int | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    command = [sys.executable, __file__, "--worker", method, "--dir", str(directory)]
    if argument is not None:
        command += ["--argument", str(argument)]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode:
        raise SystemExit(f"{method} failed:\n{completed.stderr[-3000:]}")
    output = completed.stdout
    dropped, scored = np.load(directory / f"dropped-{method}.npy")
    return json.loads(output.strip().splitlines()[-1]), dropped, scored


def score(dropped: np.ndarray, scored: np.ndarray, exact_rows: np.ndarray, near_rows: np.ndarray) -> dict:
    """Recall over the planted rows among `scored`; false drops among all rows."""
    planted_rows = np.zeros(len(dropped), dtype=bool)
    planted_rows[exact_rows] = planted_rows[near_rows] = True
    exact_rows, near_rows = exact_rows[scored[exact_rows]], near_rows[scored[near_rows]]
    return {
        "recall": float(dropped[planted_rows & scored].mean()),
        "recallExact": float(dropped[exact_rows].mean()),
        "recallNear": float(dropped[near_rows].mean()),
        "falseDrops": int((dropped & ~planted_rows).sum()),
        "planted": int((planted_rows & scored).sum()),
    }


def measure(n: int, exact_n: int, ivf_queries: int, skip_ivf: bool) -> None:
    vectors, exact_rows, near_rows = planted(n)
    data_mb = vectors.nbytes / 2**20
    with tempfile.TemporaryDirectory(prefix="quorum-dedup-") as folder:
        directory = Path(folder)
        write_shards(vectors, directory)
        del vectors
        reference_stats, reference, _ = run_worker("exact", directory, min(exact_n, SHARD_ROWS, n))
        ours_stats, ours_dropped, scored = run_worker("ours", directory)
        mismatches = int((ours_dropped[: len(reference)] != reference).sum())
        ours_score = score(ours_dropped, scored, exact_rows, near_rows)
        print(
            f"dedup {n:,} x {DIMENSION}-d ({data_mb:.0f} MB): ours {ours_stats['seconds']:.1f}s, peak RSS "
            f"{ours_stats['peakMB']:.0f} MB ({ours_stats['peakMB'] / data_mb:.2f} x data), recall "
            f"{ours_score['recall']:.4f} (exact copies {ours_score['recallExact']:.4f}, near "
            f"{ours_score['recallNear']:.4f}), false drops {ours_score['falseDrops']}; against the exact greedy "
            f"on the first {len(reference):,} rows ({reference_stats['seconds']:.1f}s): {mismatches} decisions "
            f"differ; load average {ours_stats['load']:.1f}"
        )
        if skip_ivf:
            return
        ivf_stats, ivf_dropped, ivf_scored = run_worker("ivf", directory, ivf_queries)
        ivf_score = score(ivf_dropped, ivf_scored, exact_rows, near_rows)
        sampled = f"search of {int(ivf_scored.sum()):,} random rows scaled to {n:,}, " if not ivf_scored.all() else ""
        print(
            f"  plain faiss IVF (nprobe 16): {ivf_stats['seconds']:.1f}s ({sampled}recall on its "
            f"{ivf_score['planted']:,} planted rows), peak RSS {ivf_stats['peakMB']:.0f} MB, "
            f"recall {ivf_score['recall']:.4f} (exact {ivf_score['recallExact']:.4f}, near "
            f"{ivf_score['recallNear']:.4f}), false drops {ivf_score['falseDrops']}; load average "
            f"{ivf_stats['load']:.1f}"
        )
        print(
            f"  ratio ours / IVF: time {ours_stats['seconds'] / ivf_stats['seconds']:.2f}, recall "
            f"{ours_score['recall'] / max(ivf_score['recall'], 1e-9):.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[300_000, 1_000_000])
    parser.add_argument("--exact-n", type=int, default=20_000)
    parser.add_argument("--skip-ivf", action="store_true")
    parser.add_argument("--ivf-queries", type=int, default=100_000, help="rows the IVF peer searches")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--argument", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.dir, args.argument)
        return
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for n in args.n:
        measure(n, args.exact_n, args.ivf_queries, args.skip_ivf)


if __name__ == "__main__":
    main()
