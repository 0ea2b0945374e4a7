"""The final step: gather committed shards into `dataset.*`, `rejected.jsonl`, `manifest.json` and `report/`.

Runs after every shard is done (in local mode right after them; in a cluster as the job's last step). Samples
are merged in (round, slot) order and deduplicated across shards once more, so the result does not depend on
how many shards ran or which finished first.
"""

from __future__ import annotations

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
from quorum.gra import funnel, reliability
from quorum.gra.config import GraConfig
from quorum.gra.dedup import DedupIndex, Embedder, shared_embedder
from quorum.gra.output import dataset_card, llama_factory_info, write_dataset, write_rejected
from quorum.gra.reliability import Observation, assess
from quorum.gra.report import write_report
from quorum.gra.sample import Neighbour, RoundOutcome, SampleRecord, tokens_from_json
from quorum.gra.seeds import OnBadSeed, SeedSet
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
    kept_vectors = _dedup_across_shards(config, records, vectors, embedder)
    kept_vectors = _trim_to_target(config, records, kept_vectors)
    entries = [entry for store in stores for entry in store.read_digests()]
    from quorum.gra.shard import load_seed_set

    seed_set = load_seed_set(config, OnBadSeed.SKIP)
    kept = [r for r in records if r.is_kept]
    dataset_path = write_dataset(out, kept, spec.postprocess.format, spec.output.format)
    write_rejected(out, [r for r in records if not r.is_kept], [e for e in entries if e.get("error")])

    manifest = _manifest(config, records, entries, seed_set, stores, shard_info, round_seconds)
    manifest["reviewers"] = reviewer_reliability(config, records, stores)
    manifest["files"] = {
        "dataset": dataset_path.name,
        "rejected": "rejected.jsonl",
        "report": "report/index.md",
        "card": "README.md",
        "llamaFactory": "dataset_info.json",
    }
    manifest.update(extra or {})
    _publish_report(config, out, manifest, records, kept_vectors, seed_set, stores, embedder)
    manifest.setdefault("timings", {})["mergeSeconds"] = round(time.perf_counter() - started, 3)
    layout = spec.postprocess.format
    info = llama_factory_info(config.name, dataset_path.name, layout)
    (out / "dataset_info.json").write_bytes(json.dumps(info, indent=2).encode())
    (out / "README.md").write_bytes(dataset_card(manifest, dataset_path.name, layout).encode())
    write_manifest(out, manifest)
    return manifest


def _publish_report(
    config: GraConfig,
    out: Location,
    manifest: dict[str, Any],
    records: list[SampleRecord],
    kept_vectors: np.ndarray | None,
    seed_set: SeedSet,
    stores: list[ShardStore],
    embedder: Embedder | None,
) -> None:
    """Draw the report in a scratch folder and replace the output's `report/` with it: a rerun's report never
    mixes with an older run's plots. Seeds are embedded only when dedup embedded the kept samples."""
    seed_vectors = None
    if kept_vectors is not None:
        seed_vectors = (embedder or shared_embedder(config.spec.postprocess.dedup.embedding_model)).encode(
            [s.prompt_text() for s in seed_set.seeds]
        )
    labels = stores[0].domains() if stores else {}
    seed_domains = [labels.get(s.id, "general") for s in seed_set.seeds]
    with tempfile.TemporaryDirectory(prefix="quorum-report-") as drawn:
        manifest["report"] = write_report(Path(drawn), manifest, records, seed_vectors, kept_vectors, seed_domains)
        (out / "report").delete_tree()
        (out / "report").upload_tree(Path(drawn))


def write_manifest(out_dir: Path | Location, manifest: dict[str, Any]) -> None:
    (as_location(out_dir) / "manifest.json").write_bytes(json.dumps(manifest, indent=2, ensure_ascii=False).encode())


def _collect(
    stores: list[ShardStore],
) -> tuple[list[SampleRecord], dict[str, np.ndarray], dict[str, Any], dict[str, float]]:
    records: list[SampleRecord] = []
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
            round_vectors = store.round_vectors(round_number)
            if round_vectors is not None:
                for record, vector in zip(accepted, round_vectors, strict=True):
                    vectors[record.id] = vector
    records.sort(key=lambda r: (r.round, r.slot, r.id))
    return records, vectors, shard_info, dict(seconds)


def _dedup_across_shards(
    config: GraConfig, records: list[SampleRecord], vectors: dict[str, np.ndarray], embedder: Embedder | None
) -> np.ndarray | None:
    """Kept samples against each other across shards; `dimension()` (the embedder's) sizes an empty set."""
    dedup = config.spec.postprocess.dedup
    if not dedup.enabled:
        return None
    kept = [r for r in records if r.is_kept]
    if not kept or not vectors:  # the dimension is the model's, whatever it is
        dimension = len(next(iter(vectors.values()))) if vectors else None
        if dimension is None:
            dimension = (embedder or shared_embedder(dedup.embedding_model)).dimension
        return np.zeros((0, dimension), dtype=np.float32)
    matrix = np.stack([vectors[r.id] for r in kept])
    if DedupScope.ACCEPTED not in dedup.against:
        return matrix
    index = DedupIndex(matrix.shape[1], dedup.threshold)
    rows = []
    for row, (record, (keep, match)) in enumerate(zip(kept, index.admit(matrix, [r.id for r in kept]), strict=True)):
        if keep:
            rows.append(row)
        else:
            record.mark_duplicate(Neighbour(f"sample:{match.label}", match.similarity))
    return matrix[rows]


def _trim_to_target(
    config: GraConfig, records: list[SampleRecord], kept_vectors: np.ndarray | None
) -> np.ndarray | None:
    """Exactly `generation.target` records: kept samples past it, in (round, slot) order, become `surplus`
    (kept in rejected.jsonl, never silently dropped). Refine mode keeps every seed that passed."""
    if config.is_refine:
        return kept_vectors
    kept = [r for r in records if r.is_kept]
    target = config.spec.generation.target
    for record in kept[target:]:
        record.mark_surplus()
    return None if kept_vectors is None else kept_vectors[:target]


def reviewer_reliability(config: GraConfig, records: list[SampleRecord], stores: list[ShardStore]) -> dict[str, Any]:
    """Per reviewer model: calibration health (what the gate acted on) and the same measures over the run."""
    calibrations = [c for c in (store.calibration() for store in stores) if c is not None]
    observations = [
        Observation(review.model, f"{round_name}:{record.id}", review.score, review.critique, review.prompt_copy)
        for record in records
        for round_name, outcome in record.review.items()
        for review in outcome.reviews
    ]
    run = assess(observations, config.spec.review.scale).to_wire()
    calibration = calibrations[0] if calibrations else None
    excluded = calibration["degenerate"] if calibration and config.spec.review.exclude_degenerate else []
    return {
        "excludeDegenerate": config.spec.review.exclude_degenerate,
        "excluded": excluded,
        "calibration": calibration,
        "calibrationAgreesAcrossShards": all(c == calibration for c in calibrations),
        "run": run,
        "thresholds": {
            "copiedShare": reliability.COPIED_SHARE,
            "maxCopyRate": reliability.MAX_COPY_RATE,
            "minScoreStd": reliability.MIN_SCORE_STD,
            "maxModalShare": reliability.MAX_MODAL_SHARE,
            "minReviews": reliability.MIN_REVIEWS,
        },
    }


def _manifest(
    config: GraConfig,
    records: list[SampleRecord],
    entries: list[dict[str, Any]],
    seed_set: Any,
    stores: list[ShardStore],
    shard_info: dict[str, Any],
    round_seconds: dict[str, float],
) -> dict[str, Any]:
    spec = config.spec
    failed_calls = sum(1 for e in entries if e.get("error"))
    counts = funnel.count(records, seeds=len(seed_set.seeds), failed_calls=failed_calls)
    by_domain: dict[str, list[SampleRecord]] = defaultdict(list)
    for record in records:
        by_domain[record.domain].append(record)
    seeds_by_domain = _seed_domains(stores)
    rounds = [o for r in records for o in r.review.values()]
    tokens: dict[str, dict[str, int]] = defaultdict(lambda: {"prompt": 0, "completion": 0})
    used = [*(r.tokens for r in records), *(tokens_from_json(e.get("tokens")) for e in entries)]
    for by_model in used:
        for model, use in by_model.items():
            tokens[model]["prompt"] += use.prompt
            tokens[model]["completion"] += use.completion
    independent = all(r.independent for r in records) and not spec.review.allow_same_model
    domains = sorted({*by_domain, *seeds_by_domain})
    return {
        "name": config.name,
        "fingerprint": config.fingerprint(),
        "mode": str(spec.mode),
        "independent": independent,
        "counts": counts.to_wire(),
        "byDomain": {d: funnel.count(by_domain.get(d, []), seeds=seeds_by_domain.get(d, 0)).to_wire() for d in domains},
        "rates": funnel.rates(counts, records, spec.review.max_std),
        "reviewerPairs": _pairwise_agreement(rounds),
        "adjudicatorFallbacks": sum(1 for o in rounds if o.adjudication is not None and o.adjudication.fallback),
        "tokens": dict(tokens),
        "timings": {"shardSeconds": round_seconds},
        "shards": shard_info,
        "badSeeds": [{"line": b.line, "reason": b.reason} for b in seed_set.bad],
        "prompts": {name: stage.source for name, stage in config.prompt_book.stages.items()},
        "spec": spec.to_wire(),
    }


def _seed_domains(stores: list[ShardStore]) -> dict[str, int]:
    """Seeds per domain as the run labelled them (every shard labels the whole set the same way)."""
    counted: dict[str, int] = defaultdict(int)
    for label in (stores[0].domains() if stores else {}).values():
        counted[label] += 1
    return dict(counted)


def _pairwise_agreement(rounds: list[RoundOutcome]) -> dict[str, dict[str, float]]:
    """Mean absolute score difference per reviewer pair (reviewer-vs-reviewer agreement)."""
    gaps: dict[str, list[float]] = defaultdict(list)
    for outcome in rounds:
        for a, b in itertools.combinations(outcome.reviews, 2):
            key = "|".join(sorted((a.model, b.model)))
            gaps[key].append(abs(a.score - b.score))
    return {k: {"meanAbsDiff": round(statistics.fmean(v), 3), "pairs": len(v)} for k, v in sorted(gaps.items())}
