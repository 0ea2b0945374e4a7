"""The final step: gather committed shards into `dataset.*`, `rejected.jsonl`, `manifest.json` and `report/`.

Runs after every shard is done (in local mode right after them; in a cluster as the job's last step). Samples
are merged in (round, slot) order and deduplicated across shards once more, so the result does not depend on
how many shards ran or which finished first.
"""

from __future__ import annotations

import io
import itertools
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from quorum.api.synthesis import DedupScope
from quorum.gra import funnel
from quorum.gra.config import GraConfig
from quorum.gra.dedup import DedupIndex, Embedder, shared_embedder
from quorum.gra.output import dataset_card, llama_factory_info, write_dataset
from quorum.gra.records import is_kept, jsonl_bytes
from quorum.gra.report import write_report
from quorum.gra.seeds import OnBadSeed
from quorum.gra.store import FingerprintMismatch, ShardStore, run_fingerprint
from quorum.locations import Location, as_location


class ShardsIncomplete(RuntimeError):
    """Some shards have not finished; the merge would publish a partial dataset."""


def merge_shards(
    config: GraConfig,
    out_dir: Path | Location,
    *,
    shard_count: int | None = None,
    extra: dict[str, Any] | None = None,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Write the run's outputs from committed shards and return the manifest. `extra` adds fields such as
    wall-clock timings and the token usage measured by the caller's client pool."""
    started = time.perf_counter()
    spec = config.spec
    out = as_location(out_dir)
    shard_count = shard_count or spec.workers.shards
    fingerprint = config.fingerprint()
    if run_fingerprint(out) != fingerprint:
        raise FingerprintMismatch(f"{out} holds no committed work for fingerprint {fingerprint}")
    stores = [ShardStore(out, i) for i in range(shard_count)]
    missing = [i for i, store in enumerate(stores) if store.done() is None]
    if missing:
        raise ShardsIncomplete(f"shards not finished: {', '.join(map(str, missing))}")

    records, vectors, shard_info, round_seconds = _collect(stores)
    kept_vectors = _dedup_across_shards(config, records, vectors)
    failures = _call_failures(stores)
    from quorum.gra.shard import load_seed_set

    seed_set = load_seed_set(config, OnBadSeed.SKIP)
    kept = [r for r in records if is_kept(r)]
    rejected = [r for r in records if not is_kept(r)]
    dataset_path = write_dataset(out, kept, spec.postprocess.format, spec.output.format)
    (out / "rejected.jsonl").write_bytes(jsonl_bytes([*rejected, *failures]))

    manifest = _manifest(config, records, failures, seed_set, shard_info, round_seconds)
    manifest["files"] = {
        "dataset": dataset_path.name,
        "rejected": "rejected.jsonl",
        "report": "report/index.md",
        "card": "README.md",
        "llamaFactory": "dataset_info.json",
    }
    manifest.update(extra or {})
    seed_vectors = None
    if kept_vectors is not None:
        seed_vectors = (embedder or shared_embedder(spec.postprocess.dedup.embedding_model)).encode(
            [s.prompt_text() for s in seed_set.seeds]
        )
    manifest.setdefault("timings", {})["mergeSeconds"] = round(time.perf_counter() - started, 3)
    with tempfile.TemporaryDirectory(prefix="quorum-report-") as drawn:
        manifest["report"] = write_report(Path(drawn), manifest, records, seed_vectors, kept_vectors)
        (out / "report").delete_tree()
        (out / "report").upload_tree(Path(drawn))
    layout = spec.postprocess.format
    info = llama_factory_info(config.name, dataset_path.name, layout)
    (out / "dataset_info.json").write_bytes(json.dumps(info, indent=2).encode())
    (out / "README.md").write_bytes(dataset_card(manifest, dataset_path.name, layout).encode())
    write_manifest(out, manifest)
    return manifest


def write_manifest(out_dir: Path | Location, manifest: dict[str, Any]) -> None:
    (as_location(out_dir) / "manifest.json").write_bytes(json.dumps(manifest, indent=2, ensure_ascii=False).encode())


def _collect(
    stores: list[ShardStore],
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray], dict[str, Any], dict[str, float]]:
    records: list[dict[str, Any]] = []
    vectors: dict[str, np.ndarray] = {}
    shard_info: dict[str, Any] = {}
    seconds: dict[str, float] = defaultdict(float)
    for index, store in enumerate(stores):
        done = store.done() or {}
        shard_info[str(index)] = {"rounds": done.get("rounds"), "reason": done.get("reason")}
        for round_number, marker in store.committed_rounds():
            seconds[str(index)] += marker.get("seconds", 0.0)
            accepted, rejected = store.round_records(round_number)
            records.extend(accepted)
            records.extend(rejected)
            path = store.round_dir(round_number) / "embeddings.npy"
            if path.exists():
                for record, vector in zip(accepted, np.load(io.BytesIO(path.read_bytes())), strict=True):
                    vectors[record["id"]] = vector
    records.sort(key=lambda r: (r["round"], r["slot"], r["id"]))
    return records, vectors, shard_info, dict(seconds)


def _dedup_across_shards(
    config: GraConfig, records: list[dict[str, Any]], vectors: dict[str, np.ndarray]
) -> np.ndarray | None:
    dedup = config.spec.postprocess.dedup
    kept = [r for r in records if is_kept(r)]
    if not dedup.enabled or not vectors:
        return None if not dedup.enabled else np.zeros((0, 384), dtype=np.float32)
    matrix = np.stack([vectors[r["id"]] for r in kept]) if kept else np.zeros((0, 384), dtype=np.float32)
    if DedupScope.ACCEPTED not in dedup.against:
        return matrix
    index = DedupIndex(matrix.shape[1], dedup.threshold)
    rows = []
    for row, (record, (keep, match)) in enumerate(zip(kept, index.admit(matrix, [r["id"] for r in kept]), strict=True)):
        if keep:
            rows.append(row)
            continue
        record["status"] = "duplicate"
        record["dedup"] = {"neighbour": f"sample:{match.label}", "similarity": match.similarity}
        record["gatePath"] += ">dedup:duplicate"
    return matrix[rows]


def _call_failures(stores: list[ShardStore]) -> list[dict[str, Any]]:
    """Failed digest/classification calls, so nothing that failed is silent."""
    failures = []
    for store in stores:
        for entry in store.read_digests():
            if entry.get("error"):
                failures.append(
                    {"id": entry["key"], "status": "failed", "seedId": entry["seedId"], "error": entry["error"]}
                )
    return failures


def _manifest(
    config: GraConfig,
    records: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    seed_set: Any,
    shard_info: dict[str, Any],
    round_seconds: dict[str, float],
) -> dict[str, Any]:
    spec = config.spec
    counts = funnel.count(records, seeds=len(seed_set.seeds))
    counts.failed += len(failures)
    by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_domain[record["domain"]].append(record)
    rounds = [o for r in records for o in r.get("review", {}).values()]
    reviewed = sum(1 for r in records if r.get("review"))
    tokens: dict[str, dict[str, int]] = defaultdict(lambda: {"prompt": 0, "completion": 0})
    for entry in [*records]:
        for model, (prompt, completion) in entry.get("tokens", {}).items():
            tokens[model]["prompt"] += prompt
            tokens[model]["completion"] += completion
    independent = all(r.get("independent", True) for r in records) and not spec.review.allow_same_model
    return {
        "name": config.name,
        "fingerprint": config.fingerprint(),
        "mode": str(spec.mode),
        "independent": independent,
        "counts": counts.to_wire(),
        "byDomain": {d: funnel.count(rs).to_wire() for d, rs in sorted(by_domain.items())},
        "rates": {
            "acceptance": counts.accepted / counts.generated if counts.generated else 0.0,
            "adjudication": counts.adjudicated / reviewed if reviewed else 0.0,
            "reviewerAgreement": (
                sum(o["sigma"] <= spec.review.max_std for o in rounds) / len(rounds) if rounds else 0.0
            ),
        },
        "reviewerPairs": _pairwise_agreement(rounds),
        "adjudicatorFallbacks": sum(1 for o in rounds if o.get("adjudication") and o["adjudication"].get("fallback")),
        "tokens": dict(tokens),
        "timings": {"shardSeconds": round_seconds},
        "shards": shard_info,
        "badSeeds": [{"line": b.line, "reason": b.reason} for b in seed_set.bad],
        "spec": spec.to_wire(),
    }


def _pairwise_agreement(rounds: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean absolute score difference per reviewer pair (reviewer-vs-reviewer agreement)."""
    gaps: dict[str, list[float]] = defaultdict(list)
    for outcome in rounds:
        for a, b in itertools.combinations(outcome.get("reviews", []), 2):
            key = "|".join(sorted((a["model"], b["model"])))
            gaps[key].append(abs(a["score"] - b["score"]))
    return {k: {"meanAbsDiff": round(statistics.fmean(v), 3), "pairs": len(v)} for k, v in sorted(gaps.items())}
