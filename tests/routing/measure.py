"""Routed, per-topic oracle and best-single accuracy of a simulated pool, measured the way a user would: the
real router on 127.0.0.1, the official `openai` client, answers graded client-side on the held-out split.

Shared by the routed-accuracy tests and `bench/routing_pools.py` (the before/after figures)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.llm import ModelEndpoint
from quorum.llm.simulated import SimulatedBackend
from quorum.routing.artifact import Artifact
from quorum.routing.calibrate import calibrate
from quorum.routing.config import TokenSource, backend_endpoints
from quorum.routing.dataset import load_dataset, split
from quorum.routing.embedding import Embedder, EmbeddingBatcher
from quorum.routing.engine import RouterEngine
from quorum.routing.server import RunningRouter
from quorum.routing.tasks import rule_for, task_rules
from tests.routing.pools import Pool


def pool_spec(pool: Pool, urls: dict[str, str], **overrides: Any) -> EnsembleRouterSpec:
    document: dict[str, Any] = {
        "models": [{"name": m, "endpoint": {"url": urls[m], "model": m}} for m in pool.models],
        "calibration": {"dataset": {"uri": "file://calibration.jsonl"}, "tasks": list(pool.tasks), "maxTokens": 64},
        "voting": pool.voting,
        "routing": pool.routing,
    }
    for key, value in overrides.items():
        document[key] = {**document.get(key, {}), **value}
    return EnsembleRouterSpec.model_validate(document)


@dataclass
class Served:
    """Held-out accuracies measured through the router: routed, each model pinned, per-topic oracle."""

    routed: float
    models: dict[str, float]
    oracle: float
    questions: int
    published: dict[str, Any]
    artifact: Artifact

    @property
    def best_single(self) -> float:
        return max(self.models.values())

    def figures(self) -> dict[str, float]:
        return {
            "routed": round(self.routed, 4),
            "perTopicOracle": round(self.oracle, 4),
            "bestSingle": round(self.best_single, 4),
            "publishedRouted": round(float(self.published.get("routed") or 0.0), 4),
            "heldOut": self.questions,
        }


async def _ask_all(
    client: openai.AsyncOpenAI, model: str, items: list[dict[str, str]], spec: EnsembleRouterSpec, seed: int | None
) -> list[bool]:
    rules = task_rules(spec.calibration.tasks)
    gate = asyncio.Semaphore(8)

    async def one(position: int, item: dict[str, str]) -> bool:
        async with gate:
            completion = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": item["question"]}],
                max_tokens=spec.calibration.max_tokens,
                seed=None if seed is None else seed + position,
            )
        return await rule_for(rules, item["task"]).grade(completion.choices[0].message.content, item["answer"])

    return list(await asyncio.gather(*(one(p, item) for p, item in enumerate(items))))


async def measure(
    pool: Pool, directory: Path, embedder: Embedder, *, seed: int | None = None, **overrides: Any
) -> Served:
    """Calibrate `pool`, serve it, and grade the routed and the pinned answers to every held-out question."""
    pool.write_dataset(directory / "calibration.jsonl")
    questions = pool.questions()
    async with AsyncExitStack() as stack:
        sims = {
            m: await stack.enter_async_context(SimulatedBackend(pool.responder(m), models=[m], record=False))
            for m in pool.models
        }
        spec = pool_spec(pool, {m: s.base_url for m, s in sims.items()}, **overrides)
        items = load_dataset(spec.calibration.dataset, base_dir=directory)
        endpoints = [ModelEndpoint(m, s.base_url, m) for m, s in sims.items()]
        artifact = await calibrate(spec, endpoints, items, embedder)
        _, held_out = split(items, spec.calibration.test_fraction, spec.calibration.seed)
        held = [questions[i] for i in held_out]
        engine = RouterEngine(
            "ensemble", spec, backend_endpoints("ensemble", spec), artifact=artifact, batcher=EmbeddingBatcher(embedder)
        )
        router = await stack.enter_async_context(RunningRouter(engine, TokenSource()))
        client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
        stack.push_async_callback(client.close)
        routed = await _ask_all(client, "ensemble", held, spec, seed)
        pinned = {m: await _ask_all(client, m, held, spec, seed) for m in pool.models}
    topics = sorted({q["topic"] for q in held})
    oracle = 0.0
    for topic in topics:
        members = [i for i, q in enumerate(held) if q["topic"] == topic]
        oracle += max(sum(pinned[m][i] for i in members) for m in pool.models)
    return Served(
        routed=sum(routed) / len(held),
        models={m: sum(v) / len(held) for m, v in pinned.items()},
        oracle=oracle / len(held),
        questions=len(held),
        published=artifact.evaluation.get("overall", {}),
        artifact=artifact,
    )
