"""Offline calibration: sample every model on every question, grade, embed, cluster, score, evaluate.

Every model answers both splits once (`calibration.samples` samples per question); the calibration split
builds the task map, and the held-out split gives each model's accuracy and the per-question oracle. The
routed figure is measured differently: every held-out question goes through `RouterEngine.answer`, the code
`quorum router serve` runs, at `voting.samples` with the spec's strategy and `routing.modelsSelected`, so the
published `routedAccuracy` is the accuracy of what is served. That costs held-out × voting.samples ×
selected-models calls more. A call that fails after its retries is counted per model in the artifact and
scores 0 for that question (never dropped silently).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from quorum.api.ensemble import EnsembleRouterSpec, VotingStrategy
from quorum.llm import CallFailed, ChatClient, ClientPool, ModelEndpoint, RetryPolicy
from quorum.routing.artifact import Artifact
from quorum.routing.backend import choice_text
from quorum.routing.dataset import CalibrationItem, fingerprint, split
from quorum.routing.embedding import Embedder, EmbeddingBatcher
from quorum.routing.engine import BackendRejected, ChatRequest, NoBackendAvailable, RouterEngine
from quorum.routing.strategy import decide, make_samples
from quorum.routing.taskmap import TaskMap, build_task_map, cluster_accuracy, size_distribution
from quorum.routing.tasks import TaskRule, rule_for, task_rules

Progress = Callable[[int, int], None]


@dataclass
class ModelAnswers:
    """One model's samples per question (None where the call failed) and its per-question scores."""

    texts: list[list[str] | None]
    scores: np.ndarray
    failures: int


async def _sample(
    client: ChatClient, item: CalibrationItem, samples: int, temperature: float, max_tokens: int
) -> list[str]:
    """`samples` answers; servers that ignore `n` are topped up with single calls."""
    messages = [{"role": "user", "content": item.question}]
    completion = await client.chat(messages, n=samples, temperature=temperature, max_tokens=max_tokens)
    texts = list(completion.texts[:samples])
    while len(texts) < samples:
        extra = await client.chat(messages, n=samples - len(texts), temperature=temperature, max_tokens=max_tokens)
        texts.extend(extra.texts[: samples - len(texts)])
    return texts


async def _score(rule: TaskRule, texts: list[str], item: CalibrationItem) -> float:
    """Self-consistency correctness for voted kinds (the paper's measure); mean sample correctness otherwise."""
    if rule.votes_on_strings:
        decision = decide(VotingStrategy.SELF_CONSISTENCY, [make_samples("m", 0, texts, rule)], rule)
        return float(decision.answer is not None and decision.answer == rule.reference_key(item.answer))
    grades = await asyncio.gather(*(rule.grade(t, item.answer, item.tests) for t in texts))
    return float(np.mean(grades)) if grades else 0.0


async def answer_everywhere(
    spec: EnsembleRouterSpec,
    endpoints: Sequence[ModelEndpoint],
    items: Sequence[CalibrationItem],
    rules: dict[str, TaskRule],
    progress: Callable[[], None] | None = None,
) -> list[ModelAnswers]:
    """Every model's graded answers to `items`, concurrently, with the calibration's sampling settings."""
    cal = spec.calibration
    async with ClientPool(list(endpoints), endpoints_policy(spec)) as pool:
        return await asyncio.gather(
            *(
                answer_all(
                    pool[e.name],
                    items,
                    rules,
                    samples=cal.samples,
                    temperature=cal.temperature,
                    max_tokens=cal.max_tokens,
                    progress=progress,
                )
                for e in endpoints
            )
        )


async def answer_all(
    client: ChatClient,
    items: Sequence[CalibrationItem],
    rules: dict[str, TaskRule],
    *,
    samples: int,
    temperature: float,
    max_tokens: int,
    progress: Callable[[], None] | None = None,
) -> ModelAnswers:
    async def one(item: CalibrationItem) -> tuple[list[str] | None, float]:
        try:
            texts = await _sample(client, item, samples, temperature, max_tokens)
        except CallFailed:
            texts = None
        score = 0.0 if texts is None else await _score(rule_for(rules, item.task), texts, item)
        if progress:
            progress()
        return texts, score

    results = await asyncio.gather(*(one(item) for item in items))
    texts = [t for t, _ in results]
    return ModelAnswers(
        texts=texts,
        scores=np.array([s for _, s in results], dtype=np.float64),
        failures=sum(t is None for t in texts),
    )


EVALUATION_CONCURRENCY = 32
"""Held-out questions served at once during evaluation (each fans out to voting.samples backend calls)."""


def evaluation_seed(calibration_seed: int, position: int) -> int:
    """The client seed of the `position`-th held-out question: the published figure can be replayed exactly."""
    return calibration_seed * 100_003 + position


async def served_correctness(
    spec: EnsembleRouterSpec,
    artifact: Artifact,
    endpoints: Sequence[ModelEndpoint],
    items: Sequence[CalibrationItem],
    vectors: np.ndarray,
    rules: dict[str, TaskRule],
    embedder: Embedder,
) -> list[float | None]:
    """Each item asked through the serving path (`RouterEngine.answer`) and its returned text graded; None
    where the router could not serve it (every backend failed: the request's 503 or 400).

    The embedder picks the most central sample of open and code answers, as it does when serving; routing
    uses the vectors calibration computed already."""
    batcher = EmbeddingBatcher(embedder)
    engine = RouterEngine("calibration", spec, endpoints, artifact=artifact, batcher=batcher, require_artifact=False)
    gate = asyncio.Semaphore(EVALUATION_CONCURRENCY)

    async def one(position: int, item: CalibrationItem) -> float | None:
        messages = [{"role": "user", "content": item.question}]
        seed = evaluation_seed(spec.calibration.seed, position)
        request = ChatRequest(
            messages=messages, body={"messages": messages, "max_tokens": spec.calibration.max_tokens, "seed": seed}
        )
        async with gate:
            try:
                answer = await engine.answer(request, vector=vectors[position])
            except (NoBackendAvailable, BackendRejected):
                return None
        return float(await rule_for(rules, item.task).grade(choice_text(answer.choices[0]), item.answer, item.tests))

    try:
        return list(await asyncio.gather(*(one(p, item) for p, item in enumerate(items))))
    finally:
        await engine.aclose()


def summarize_evaluation(
    strategy: VotingStrategy,
    models: Sequence[str],
    tasks: Sequence[str],
    routed: Sequence[float],
    per_model: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Held-out accuracy per task and overall: routed (served), each model, the best single model, the oracle."""
    rows = [
        {"task": task, "routed": routed[q], "models": {m: float(per_model[m][q]) for m in models}}
        for q, task in enumerate(tasks)
    ]
    for row in rows:
        row["oracle"] = max(row["models"].values())

    def summarize(selected: list[dict[str, Any]]) -> dict[str, Any]:
        if not selected:
            return {"questions": 0}
        single = {m: float(np.mean([r["models"][m] for r in selected])) for m in models}
        return {
            "questions": len(selected),
            "routed": float(np.mean([r["routed"] for r in selected])),
            "oracle": float(np.mean([r["oracle"] for r in selected])),
            "models": single,
        }

    overall = summarize(rows)
    best = min(models, key=lambda m: (-overall.get("models", {}).get(m, 0.0), m)) if rows else None
    per_task = {task: summarize([r for r in rows if r["task"] == task]) for task in sorted({r["task"] for r in rows})}
    for summary in [overall, *per_task.values()]:
        if best is not None and summary.get("questions"):
            summary["bestSingle"] = {"model": best, "accuracy": summary["models"][best]}
    return {"strategy": strategy.value, "overall": overall, "tasks": per_task}


async def evaluate(
    spec: EnsembleRouterSpec,
    artifact: Artifact,
    endpoints: Sequence[ModelEndpoint],
    items: Sequence[CalibrationItem],
    vectors: np.ndarray,
    answers: dict[str, ModelAnswers],
    indices: Sequence[int],
    rules: dict[str, TaskRule],
    embedder: Embedder,
) -> dict[str, Any]:
    """The held-out evaluation: routed accuracy served through the engine, per-model accuracy from the
    calibration samples (self-consistency over `calibration.samples`), and the oracle over models."""
    held_out = [items[i] for i in indices]
    served = await served_correctness(spec, artifact, endpoints, held_out, vectors[list(indices)], rules, embedder)
    routed = [0.0 if score is None else score for score in served]  # an unserved question counts as wrong
    models = artifact.task_map.models
    per_model = {m: answers[m].scores[list(indices)] for m in models}
    evaluation = summarize_evaluation(spec.voting.strategy, models, [i.task for i in held_out], routed, per_model)
    evaluation["unservedQuestions"] = sum(score is None for score in served)
    evaluation["servedSamples"] = spec.voting.samples
    evaluation["modelsSelected"] = spec.routing.models_selected
    return evaluation


def endpoints_policy(spec: EnsembleRouterSpec) -> RetryPolicy:
    return RetryPolicy.from_spec(spec.calls)


def _counting(progress: Progress, total: int) -> Callable[[], None]:
    """One tick per answered question and model, reported as (done, total) to the calibration Job's status."""
    done = itertools.count(1)
    return lambda: progress(next(done), total)


async def calibrate(
    spec: EnsembleRouterSpec,
    endpoints: Sequence[ModelEndpoint],
    items: Sequence[CalibrationItem],
    embedder: Embedder,
    *,
    progress: Progress | None = None,
) -> Artifact:
    """Build the artifact for `items` with every model in `endpoints` (in spec order)."""
    cal = spec.calibration
    rules = task_rules(cal.tasks)
    calibration_idx, held_out_idx = split(list(items), cal.test_fraction, cal.seed)
    ticks = None if progress is None else _counting(progress, len(items) * len(endpoints))
    results = await answer_everywhere(spec, endpoints, items, rules, progress=ticks)
    answers = dict(zip([e.name for e in endpoints], results, strict=True))
    vectors = embedder.encode([item.question for item in items], batch_size=spec.embedding.batch_size)
    models = [e.name for e in endpoints]
    scores = np.stack([answers[m].scores for m in models], axis=1)
    task_map, assignments = build_task_map(
        vectors[calibration_idx],
        scores[calibration_idx],
        models,
        [items[i].task for i in calibration_idx],
        clusters=cal.clusters,
        seed=cal.seed,
        shrinkage=cal.shrinkage,
        min_cluster_size=cal.min_cluster_size,
    )
    artifact = Artifact(
        task_map=task_map,
        embedder=embedder.model_id,
        dimension=embedder.dimension,
        embedder_engine=embedder.engine,
        embedder_url=getattr(embedder, "url", None),
        seed=cal.seed,
        clusters_requested=cal.clusters,
        shrinkage=cal.shrinkage,
        dataset_fingerprint=fingerprint(list(items)),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        tasks={r.name: r.describe() for r in rules.values()},
        calibration={
            "questions": len(items),
            "calibrationQuestions": len(calibration_idx),
            "heldOutQuestions": len(held_out_idx),
            "samples": cal.samples,
            "minClusterSize": cal.min_cluster_size,
            "clusterSizes": size_distribution(task_map.cluster_sizes),
            "failedCalls": {m: answers[m].failures for m in models},
        },
        scores=scores[calibration_idx],
        assignments=assignments,
    )
    artifact.evaluation = await evaluate(
        spec, artifact, endpoints, items, vectors, answers, held_out_idx, rules, embedder
    )
    return artifact


async def add_models(
    artifact: Artifact,
    spec: EnsembleRouterSpec,
    endpoints: Sequence[ModelEndpoint],
    items: Sequence[CalibrationItem],
) -> Artifact:
    """Score new models on the existing calibration split and re-rank, keeping the centres (no re-clustering)."""
    if artifact.scores is None or artifact.assignments is None:
        raise ValueError("the artifact carries no calibration scores (scores.json); re-calibrate instead")
    if fingerprint(list(items)) != artifact.dataset_fingerprint:
        raise ValueError("the calibration data changed since the artifact was built; re-calibrate instead")
    cal = spec.calibration
    rules = task_rules(cal.tasks)
    calibration_idx, _ = split(list(items), cal.test_fraction, artifact.seed)
    subset = [items[i] for i in calibration_idx]
    results = await answer_everywhere(spec, endpoints, subset, rules)
    scores = np.concatenate([artifact.scores, np.stack([r.scores for r in results], axis=1)], axis=1)
    models = artifact.task_map.models + [e.name for e in endpoints]
    centres = artifact.task_map.centres
    accuracy, global_accuracy = cluster_accuracy(artifact.assignments, scores, centres.shape[0], artifact.shrinkage)
    task_map = TaskMap(
        centres=centres,
        models=models,
        accuracy=accuracy,
        global_accuracy=global_accuracy,
        cluster_sizes=artifact.task_map.cluster_sizes,
        cluster_tasks=artifact.task_map.cluster_tasks,
    )
    failed = dict(artifact.calibration.get("failedCalls", {}))
    failed.update({e.name: r.failures for e, r in zip(endpoints, results, strict=True)})
    return Artifact(
        task_map=task_map,
        embedder=artifact.embedder,
        dimension=artifact.dimension,
        seed=artifact.seed,
        clusters_requested=artifact.clusters_requested,
        shrinkage=artifact.shrinkage,
        dataset_fingerprint=artifact.dataset_fingerprint,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        tasks=artifact.tasks,
        evaluation={},  # held-out evaluation needs every model's held-out answers: re-run calibrate for it
        calibration={**artifact.calibration, "failedCalls": failed},
        scores=scores,
        assignments=artifact.assignments,
        centres_dtype=artifact.centres_dtype,
    )
