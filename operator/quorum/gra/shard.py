"""One shard of a SynthesisJob: its slice of the seeds, every round, committed round by round.

This is what a worker pod runs (`quorum worker synth` calls `run_shard`) and what local mode runs for each
shard in one process. Shard `i` of `n` owns the generation slots with `slot % n == i` (and, in refine mode,
the seeds with `index % n == i`); domains, demos and calibration come from the whole seed set, so the plan
is the same whatever the shard count and shards never need to talk to each other.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quorum.api.synthesis import DedupScope, DomainAllocation, DomainMode, Role, SynthesisCounts
from quorum.gra import funnel, prompts
from quorum.gra.calibration import ROUNDS, CalibrationItem, calibration_items, observation
from quorum.gra.config import GraConfig
from quorum.gra.dedup import DedupIndex, Embedder, shared_embedder
from quorum.gra.pipeline import ReviewPrompt, SampleFailed, SampleRunner, Slot, Tokens, review_once
from quorum.gra.reliability import PanelHealth, assess
from quorum.gra.roles import rng_for, with_role
from quorum.gra.sample import CallError, Neighbour, Review, SampleRecord, tokens_from_json, tokens_to_json
from quorum.gra.schedule import samples_in_flight
from quorum.gra.seeds import OnBadSeed, Seed, SeedSet, read_instruction_file, read_seeds, shard_of
from quorum.gra.store import JournalWriter, ShardStore, claim_output
from quorum.llm import CallFailed, ClientPool, ModelEndpoint, RetryPolicy
from quorum.llm.slots import Slots
from quorum.locations import Location

ProgressCallback = Callable[[str, int, int, SynthesisCounts], None]
"""(stage, done, total, counts): called as work advances; stage names match `StageStatus.name`."""

STAGES = (
    "domains",
    "calibrate",
    "digest",
    "generate",
    "review-instruction",
    "review-response",
    "adjudicate",
    "dedup",
    "write",
)
UNLABELLED_DOMAIN = "general"


@dataclass
class ShardResult:
    shard_index: int
    counts: SynthesisCounts
    rounds: int
    reason: str
    degenerate_reviewers: list[str] = field(default_factory=list)
    """Reviewer models calibration found degenerate (excluded from the gate when review.excludeDegenerate)."""


@dataclass
class _Progress:
    callback: ProgressCallback | None
    counts: SynthesisCounts
    stages: dict[str, list[int]] = field(default_factory=lambda: {s: [0, 0] for s in STAGES})

    def hook(self, stage: str, delta: int) -> None:
        """delta > 0 plans work, -1 finishes one unit, 0 plans one unit (generation)."""
        done_total = self.stages[stage]
        if delta < 0:
            done_total[0] += 1
        else:
            done_total[1] += delta or 1
        self.emit(stage)

    def round(self, number: int, rounds: int) -> None:
        """`round` on the progress channel: done is the round in progress, total the rounds planned."""
        if self.callback is not None:
            self.callback("round", number, rounds, self.counts)

    def emit(self, stage: str) -> None:
        if self.callback is not None:
            done, total = self.stages[stage]
            self.callback(stage, done, total, self.counts)


def load_seed_set(config: GraConfig, on_bad_seed: OnBadSeed) -> SeedSet:
    source = config.spec.seeds
    return read_seeds(config.location(source.uri), source.format, source.fields, on_bad_seed)


async def run_shard(
    config: GraConfig,
    shard_index: int,
    endpoints: list[ModelEndpoint],
    out_dir: Path | Location,
    *,
    shard_count: int | None = None,
    progress: ProgressCallback | None = None,
    on_bad_seed: OnBadSeed = OnBadSeed.FAIL,
    pool: ClientPool | None = None,
    seed_set: SeedSet | None = None,
    embedder: Embedder | None = None,
    quota: int | None = None,
) -> ShardResult:
    """Run (or resume) shard `shard_index`: every round until its share of the target is reached.

    Committed rounds are skipped, a round's journal is replayed so finished samples are not asked again, and a
    changed spec (fingerprint) is refused with `FingerprintMismatch`. `pool` lets several shards in one
    process share connections and per-model concurrency limits. `quota` (default `ceil(target / shards)`) is
    the shard's share of accepted samples; a done shard that stopped at a smaller share goes on (top-up).
    """
    spec = config.spec
    shard_count = shard_count or spec.workers.shards
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard index {shard_index} is outside 0..{shard_count - 1}")
    claim_output(out_dir, config.fingerprint(), spec.to_wire())
    store = ShardStore(out_dir, shard_index)
    quota = quota or math.ceil(spec.generation.target / shard_count)
    if (finished := store.done()) is not None and not _tops_up(finished, quota):
        counts = SynthesisCounts.model_validate(finished["counts"])
        degenerate = list(finished.get("degenerateReviewers", []))
        return ShardResult(
            shard_index, counts, finished["rounds"], f"already committed ({finished['reason']})", degenerate
        )
    seed_set = seed_set or load_seed_set(config, on_bad_seed)
    mine = [s for s in seed_set.seeds if shard_of(s, shard_count) == shard_index]
    owns_pool = pool is None
    pool = pool or ClientPool(endpoints, RetryPolicy.from_spec(spec.calls))
    try:
        worker = _ShardWorker(config, store, shard_index, shard_count, pool, seed_set, mine, progress, embedder, quota)
        return await worker.run()
    finally:
        if owns_pool:
            await pool.__aexit__(None, None, None)


class _ShardWorker:
    def __init__(
        self,
        config: GraConfig,
        store: ShardStore,
        shard_index: int,
        shard_count: int,
        pool: ClientPool,
        seed_set: SeedSet,
        mine: list[Seed],
        progress: ProgressCallback | None,
        embedder: Embedder | None,
        quota: int,
    ) -> None:
        self.quota = quota
        self.config = config
        self.spec = config.spec
        self.store = store
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.pool = pool
        self.seed_set = seed_set
        self.mine = mine
        self.progress = _Progress(progress, SynthesisCounts(seeds=len(mine)))
        self.embedder = embedder
        self.book = config.prompt_book
        self.cache: dict[str, dict[str, Any]] = {}
        for entry in store.read_digests():
            self.cache.setdefault(entry["key"], entry)
        self.progress.counts.failed_calls = sum(1 for e in self.cache.values() if e.get("error"))
        self.digest_journal = JournalWriter(store.digests_journal)

    # --- the round loop ------------------------------------------------------------------------------------

    async def run(self) -> ShardResult:
        spec = self.spec
        index = await self._dedup_index()
        domains = await self._domains()
        self.store.write_domains(domains)
        # calibration runs beside the first round (its calls first in every queue): only the gate needs it
        calibration = asyncio.ensure_future(self._calibration(domains))

        async def excluded() -> frozenset[str]:
            if not spec.review.exclude_degenerate:
                return frozenset()
            # shielded: a cancelled sample must not cancel the measurement every other sample waits on
            return frozenset((await asyncio.shield(calibration))["degenerate"])

        digests: dict[str, dict[str, Any] | None] = {}
        runner = SampleRunner(
            spec, self.pool, digests, self.progress.hook, book=self.book, exclusions=excluded, shard=self.shard_index
        )
        rounds = 1 if self.config.is_refine else spec.generation.rounds
        quota = self.quota
        kept_total, rounds_run, reason = 0, 0, "rounds exhausted"
        for round_number in range(1, rounds + 1):
            self.progress.round(round_number, rounds)
            marker = self.store.committed(round_number)
            if marker is None:
                self.digest_journal.flush()
                marker = await self._run_round(round_number, runner, domains, index)
            else:
                self._restore_round(round_number, index)
            self.progress.counts = funnel.merged(
                [self.progress.counts, SynthesisCounts.model_validate(marker["counts"])]
            )
            kept_total += marker["counts"]["accepted"]
            rounds_run = round_number
            if not self.config.is_refine and kept_total >= quota:
                reason = f"target share {quota} reached"
                break
        health = await calibration
        self.progress.emit("write")
        self.digest_journal.close()
        summary = {
            "counts": self.progress.counts.to_wire(),
            "rounds": rounds_run,
            "reason": reason,
            "quota": quota,
            "degenerateReviewers": health["degenerate"],
        }
        self.store.mark_done(summary)
        return ShardResult(self.shard_index, self.progress.counts, rounds_run, reason, list(health["degenerate"]))

    async def _run_round(
        self, round_number: int, runner: SampleRunner, domains: dict[str, str], index: DedupIndex | None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        slots = self._plan(round_number, domains)
        done = self.store.read_journal(round_number)
        live = funnel.count(done.values())
        self.progress.counts = funnel.merged([self.progress.counts, live])
        todo = [s for s in slots if s.id not in done]
        digested, digesting = self._digest_demos(slots, runner.digests)
        journal = self.store.open_journal(round_number)
        limit = Slots(samples_in_flight(c.endpoint.max_concurrency for c in self.pool))

        async def one(slot: Slot) -> None:
            async with limit:
                # only this sample's own seeds: a round-wide barrier would leave slots idle while its last
                # digests finish, and no sample reads another's digests
                waiting = [f for seed in _shown(slot) if (f := digested.get(seed.id)) is not None and not f.done()]
                if waiting:  # once the digests are in, a sample awaits nothing (gather costs loop turns)
                    await asyncio.gather(*waiting)
                record = await runner.run(slot)
            journal.write(record)
            done[record.id] = record
            funnel.add(self.progress.counts, record)

        try:
            await asyncio.gather(*(one(slot) for slot in todo))
            await digesting
        finally:
            journal.close()
            digesting.cancel()  # a no-op once done; after a failure it stops the digests still in flight
        self.progress.counts = funnel.merged([self.progress.counts, funnel.negated(funnel.count(done.values()))])
        records = sorted(done.values(), key=lambda r: r.slot)
        vectors = await self._dedup(records, index)
        await self._fill_digests(records)
        self.digest_journal.flush()
        counts = funnel.count(records)
        marker = {
            "round": round_number,
            "shard": self.shard_index,
            "fingerprint": self.config.fingerprint(),
            "counts": counts.to_wire(),
            "slots": len(slots),
            "seconds": round(time.perf_counter() - started, 3),
        }
        self.store.commit_round(round_number, records, vectors, marker)
        return marker

    def _plan(self, round_number: int, domains: dict[str, str]) -> list[Slot]:
        """This shard's slots of the round. Domains and demos come from the whole seed set, so the plan is
        the same whatever the shard count; slot `j` of the run gets its domain from a low-discrepancy
        sequence over the domains' shares (`domains.allocation`)."""
        if self.config.is_refine:
            return [Slot(round_number, s.index, domains[s.id], seed=s) for s in self.mine]
        by_domain: dict[str, list[Seed]] = {}
        for seed in self.seed_set.seeds:
            by_domain.setdefault(domains[seed.id], []).append(seed)
        if not by_domain:
            return []
        generation = self.spec.generation
        per_round = generation.samples_per_round or math.ceil(generation.target / generation.rounds)
        allocation = domain_allocation(by_domain, self.spec.domains.allocation)
        slots = []
        for slot_index in range(self.shard_index, per_round, self.shard_count):
            domain = allocation((round_number - 1) * per_round + slot_index)
            pool = by_domain[domain]
            rng = rng_for(generation.seed, "demos", round_number, slot_index)
            demos = tuple(rng.sample(pool, min(generation.few_shot, len(pool))))
            slots.append(Slot(round_number, slot_index, domain, demos))
        return slots

    # --- stage 1 and 2: domains and digests ----------------------------------------------------------------

    async def _domains(self) -> dict[str, str]:
        mode = self.spec.domains.mode
        if mode == DomainMode.FIELD:
            return {s.id: s.domain or UNLABELLED_DOMAIN for s in self.seed_set.seeds}
        if mode == DomainMode.CLUSTER:
            return self._cluster_domains()
        names = self.spec.domains.names
        schema = prompts.classify_schema(names)

        sampling = {"temperature": self.spec.domains.temperature, "max_tokens": self.spec.domains.max_tokens}

        async def classify(seed: Seed) -> dict[str, Any]:
            messages = self.book.messages(prompts.CLASSIFY, task=seed.prompt_text(), domains=names)
            return await self._cached_call(
                f"domain:{seed.id}", "domains", messages, schema, prompts.CLASSIFY, seed, sampling
            )

        # every shard labels the whole set: slots and demos need every seed's domain, the same in every shard
        entries = await self._staged("domains", [classify(s) for s in self.seed_set.seeds])
        return {
            seed.id: (entry.get("value") or {}).get("domain") or UNLABELLED_DOMAIN
            for seed, entry in zip(self.seed_set.seeds, entries, strict=True)
        }

    def _cluster_domains(self) -> dict[str, str]:
        import faiss

        vectors = self._seed_vectors()
        clusters = min(self.spec.domains.clusters, len(vectors))
        kmeans = faiss.Kmeans(vectors.shape[1], clusters, niter=20, seed=self.spec.generation.seed, spherical=True)
        kmeans.train(vectors)
        _, labels = kmeans.index.search(vectors, 1)
        ids = [s.id for s in self.seed_set.seeds]
        return {seed_id: f"cluster-{int(label[0])}" for seed_id, label in zip(ids, labels, strict=True)}

    def _digest_demos(
        self, slots: list[Slot], digests: dict[str, dict[str, Any] | None]
    ) -> tuple[dict[str, asyncio.Future[Any]], asyncio.Future[Any]]:
        """Starts the digests of the seeds this round shows (or refines) that are not known yet (cached across
        rounds); returns seed id → the call that puts its digest in `digests`, and the whole stage. Samples wait
        for their own seeds' calls only, so generation starts while later digests still run."""
        wanted = {s.id: s for slot in slots for s in _shown(slot)}
        todo = [seed for seed_id, seed in sorted(wanted.items()) if seed_id not in digests]
        schema = prompts.digest_schema(self.spec.digest.max_tokens)
        sampling = {"temperature": self.spec.digest.temperature, "max_tokens": self.spec.digest.max_tokens}

        async def digest(seed: Seed) -> dict[str, Any]:
            messages = self.book.messages(prompts.DIGEST, **prompts.task_variables(seed.__dict__))
            entry = await self._cached_call(
                f"digest:{seed.id}", "digest", messages, schema, prompts.DIGEST, seed, sampling
            )
            digests[seed.id] = prompts.clean_digest(entry["value"]) if entry.get("value") else None
            return entry

        calls = {seed.id: asyncio.ensure_future(digest(seed)) for seed in todo}
        return calls, asyncio.ensure_future(self._staged("digest", list(calls.values())))

    async def _calibration(self, domains: dict[str, str]) -> dict[str, Any]:
        """The run's calibration: every shard would measure the same thing (same items, same call seeds), so
        a shard reuses what a sibling already wrote under the output directory, and shards of one process
        share one measurement in flight."""
        shared = self.store.shared_calibration_path
        fingerprint = self.config.fingerprint()
        if shared.exists() and (found := json.loads(shared.read_text())).get("fingerprint") == fingerprint:
            health = found["health"]
        else:
            loop = asyncio.get_running_loop()
            task = _CALIBRATIONS.get((shared.uri, fingerprint))
            if task is None or task.get_loop() is not loop:
                task = _CALIBRATIONS[(shared.uri, fingerprint)] = loop.create_task(self._calibrate(domains))
            health = (await task).to_wire()
            shared.write_bytes(json.dumps({"fingerprint": fingerprint, "health": health}, indent=2).encode())
        self.store.write_calibration(health)
        return health

    async def _calibrate(self, domains: dict[str, str]) -> PanelHealth:
        """Every reviewer model reviews the calibration items in both rounds (cached, so resumes reuse it)."""
        review = self.spec.review
        items = calibration_items(self.seed_set.seeds, review.calibration_items, self.spec.generation.seed, domains)
        reviewers = with_role(self.spec, Role.REVIEWER)
        jobs = [(m, r, i) for m in reviewers for r, variants in ROUNDS.items() for i in items if i.variant in variants]

        async def one(model: str, round_name: str, item: CalibrationItem) -> dict[str, Any]:
            async def call() -> tuple[dict[str, Any], dict[str, list[int]]]:
                tokens = Tokens()
                seed = rng_for(self.spec.generation.seed, "calibration", model, round_name, item.unit).randrange(2**31)
                prompt = ReviewPrompt.build(self.spec, self.book, round_name, item.domain, item.sample)
                review = await review_once(self.spec, self.pool, model, prompt, seed, tokens)
                return review.to_json(), tokens_to_json(tokens.by_model)

            key = f"calibration:{model}:{round_name}:{item.seed_id}:{item.variant}"
            return await self._remember(key, "calibrate", item.seed_id, model, call)

        entries = await self._staged("calibrate", [one(*job) for job in jobs])
        observations = [
            observation(item, round_name, Review.from_json(entry["value"]))
            for (_, round_name, item), entry in zip(jobs, entries, strict=True)
            if entry.get("value")
        ]
        return assess(observations, review.scale)

    async def _staged(self, stage: str, calls: list[Any]) -> list[dict[str, Any]]:
        self.progress.hook(stage, len(calls))

        async def tracked(call: Any) -> dict[str, Any]:
            try:
                return await call
            finally:
                self.progress.hook(stage, -1)

        return list(await asyncio.gather(*(tracked(c) for c in calls)))

    async def _cached_call(
        self,
        key: str,
        stage: str,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        name: str,
        seed: Seed,
        sampling: dict[str, Any],
    ) -> dict[str, Any]:
        """One structured call per seed by a helper model (digest, classification)."""
        model = self._helper_model(key)

        async def call() -> tuple[dict[str, Any], dict[str, list[int]]]:
            value, completion = await self.pool[model].chat_json(messages, schema, schema_name=name, **sampling)
            return value, {model: [completion.prompt_tokens, completion.completion_tokens]}

        return await self._remember(key, stage, seed.id, model, call)

    async def _remember(self, key: str, stage: str, seed_id: str, model: str, call: Any) -> dict[str, Any]:
        """A call whose answer is kept in `digests.jsonl` so rounds and resumes reuse it. A failed call is
        remembered too (and reported in rejected.jsonl); the run goes on without it."""
        if key in self.cache:
            return self.cache[key]
        entry: dict[str, Any] = {"key": key, "stage": stage, "seedId": seed_id, "model": model}
        try:
            value, tokens = await call()
            entry.update(value=value, tokens=tokens)
        except (CallFailed, SampleFailed) as error:
            failure = error.failure if isinstance(error, SampleFailed) else error
            entry.update(value=None, error={"stage": stage, **failure.as_record()})
            self.progress.counts.failed_calls += 1
        self.cache[key] = entry
        self.digest_journal.write(entry)
        return entry

    def _helper_model(self, key: str) -> str:
        candidates = with_role(self.spec, Role.GENERATOR) or [m.name for m in self.spec.models]
        return rng_for(self.spec.generation.seed, key).choice(candidates)

    # --- stage 8: dedup and digest completion --------------------------------------------------------------

    def _embedder(self) -> Embedder:
        if self.embedder is None:
            self.embedder = shared_embedder(self.spec.postprocess.dedup.embedding_model)
        return self.embedder

    def _seed_vectors(self) -> np.ndarray:
        return self._embedder().encode([s.prompt_text() for s in self.seed_set.seeds])

    async def _dedup_index(self) -> DedupIndex | None:
        dedup = self.spec.postprocess.dedup
        if not dedup.enabled:
            return None
        embedder = await asyncio.to_thread(self._embedder)
        index = DedupIndex(embedder.dimension, dedup.threshold)
        if DedupScope.SEEDS in dedup.against and not self.config.is_refine:
            vectors = await asyncio.to_thread(self._seed_vectors)
            index.add(vectors, [f"seed:{s.id}" for s in self.seed_set.seeds])
        if DedupScope.DECONTAMINATION in dedup.against and dedup.decontamination_uri:
            texts = read_instruction_file(self.config.location(dedup.decontamination_uri))
            vectors = await asyncio.to_thread(embedder.encode, texts)
            index.add(vectors, [f"decontamination:{i + 1}" for i in range(len(texts))])
        return index

    def _restore_round(self, round_number: int, index: DedupIndex | None) -> None:
        """Committed kept samples join the shard's dedup index before later rounds run."""
        if index is None or DedupScope.ACCEPTED not in self.spec.postprocess.dedup.against:
            return
        vectors = self.store.round_vectors(round_number)
        if vectors is not None:
            kept, _ = self.store.round_records(round_number)
            index.add(vectors, [f"sample:{r.id}" for r in kept])

    async def _dedup(self, records: list[SampleRecord], index: DedupIndex | None) -> np.ndarray | None:
        if index is None:
            return None
        candidates = [r for r in records if r.is_kept]
        self.progress.hook("dedup", len(candidates))
        texts = [r.sample.prompt_text() for r in candidates if r.sample is not None]  # kept ones have a sample
        vectors = await asyncio.to_thread(self._embedder().encode, texts)
        if DedupScope.ACCEPTED in self.spec.postprocess.dedup.against:
            decisions = index.admit(vectors, [f"sample:{r.id}" for r in candidates])
        else:
            decisions = [(m.similarity < index.threshold, m) for m in index.nearest(vectors)]
        kept_rows = []
        for row, (record, (kept, match)) in enumerate(zip(candidates, decisions, strict=True)):
            neighbour = Neighbour(match.label, match.similarity)
            if kept:
                record.dedup = neighbour
                kept_rows.append(row)
            else:
                record.mark_duplicate(neighbour)
            self.progress.hook("dedup", -1)
        return vectors[kept_rows] if kept_rows else np.zeros((0, vectors.shape[1]), dtype=np.float32)

    async def _fill_digests(self, records: list[SampleRecord]) -> None:
        if not self.spec.postprocess.fill_digests:
            return
        missing = [r for r in records if r.is_kept and r.sample is not None and not r.sample.has_digest]
        schema = prompts.digest_schema(self.spec.digest.max_tokens)
        sampling = {"temperature": self.spec.digest.temperature, "max_tokens": self.spec.digest.max_tokens}

        async def fill(record: SampleRecord) -> None:
            assert record.sample is not None
            seed = Seed(id=record.id, instruction=record.sample.instruction)
            messages = self.book.messages(prompts.DIGEST, **prompts.task_variables(record.sample.task()))
            entry = await self._cached_call(
                f"fill:{record.id}", "digest", messages, schema, prompts.DIGEST, seed, sampling
            )
            if entry.get("value"):
                record.fill_digest(prompts.clean_digest(entry["value"]), tokens_from_json(entry.get("tokens")))
            elif entry.get("error"):
                record.digest_error = CallError.from_json(entry["error"])

        await self._staged("digest", [fill(r) for r in missing])


_CALIBRATIONS: dict[tuple[Path, str], asyncio.Task[PanelHealth]] = {}
"""Calibrations in flight in this process, by output directory and fingerprint."""


def _shown(slot: Slot) -> tuple[Seed, ...]:
    """The seeds whose digests a sample's prompt shows: its demos, and in refine mode the seed it reviews."""
    return (*slot.demos, *((slot.seed,) if slot.seed else ()))


def _tops_up(finished: dict[str, Any], quota: int) -> bool:
    """A done shard runs again only when it stopped at its share and the share has grown."""
    return str(finished.get("reason", "")).startswith("target share") and quota > int(finished.get("quota") or 0)


def domain_allocation(by_domain: dict[str, list[Seed]], allocation: DomainAllocation) -> Callable[[int], str]:
    """Slot number → domain. Each domain's share is its seed count (`proportional`) or equal (`equal`);
    the golden-ratio sequence spreads every prefix of slots close to those shares."""
    names = sorted(by_domain)
    weights = [len(by_domain[n]) if allocation == DomainAllocation.PROPORTIONAL else 1 for n in names]
    total = sum(weights)
    bounds = list(itertools.accumulate(w / total for w in weights))

    def domain(slot: int) -> str:
        position = math.fmod((slot + 0.5) * GOLDEN, 1.0)
        return names[min(bisect.bisect_right(bounds, position), len(names) - 1)]

    return domain


GOLDEN = (math.sqrt(5) - 1) / 2
