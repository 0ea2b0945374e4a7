"""Fixtures for router tests: simulated backends on 127.0.0.1 and a spec pointing at them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.llm import ModelEndpoint
from quorum.llm.simulated import SimulatedBackend
from quorum.routing.artifact import Artifact
from quorum.routing.calibrate import calibrate
from quorum.routing.config import TokenSource, backend_endpoints
from quorum.routing.dataset import load_dataset
from quorum.routing.embedding import Embedder, EmbeddingBatcher, shared_embedder
from quorum.routing.engine import RouterEngine
from quorum.routing.server import RunningRouter
from tests.routing.pool import responder_for, write_dataset


def router_spec(models: dict[str, str], **overrides: Any) -> EnsembleRouterSpec:
    """A spec whose models are external endpoints at the given base URLs (`name → url`)."""
    document: dict[str, Any] = {
        "models": [{"name": n, "endpoint": {"url": u, "model": n}} for n, u in models.items()],
        "calibration": {
            "dataset": {"uri": "file://calibration.jsonl"},
            "tasks": [
                {"name": "arithmetic", "kind": "math"},
                {"name": "trivia", "kind": "multiple-choice", "choices": "ABCD"},
            ],
            "clusters": 8,
            "samples": 1,
            "maxTokens": 64,
        },
        "voting": {"strategy": "self-consistency", "samples": 3},
    }
    for key, value in overrides.items():
        document[key] = {**document.get(key, {}), **value} if isinstance(value, dict) else value
    return EnsembleRouterSpec.model_validate(document)


@pytest.fixture(scope="session")
def embedder():
    return shared_embedder("sentence-transformers/all-MiniLM-L6-v2")


async def calibrated_pool(directory: Path, embedder: Embedder, models: list[str]):
    """Calibrate the synthetic pool (tests/routing/pool.py) against simulated backends; they stop afterwards."""
    write_dataset(directory / "calibration.jsonl")
    async with AsyncExitStack() as stack:
        sims = {m: await stack.enter_async_context(SimulatedBackend(responder_for(m), models=[m])) for m in models}
        spec = router_spec({m: s.base_url for m, s in sims.items()})
        items = load_dataset(spec.calibration.dataset, base_dir=directory)
        endpoints = [ModelEndpoint(m, s.base_url, m) for m, s in sims.items()]
        artifact = await calibrate(spec, endpoints, items, embedder)
        return spec, items, artifact, sims


@pytest.fixture(scope="session")
def full_pool(tmp_path_factory, embedder):
    """One calibration of the three-model pool, shared by the tests that only read it."""
    return asyncio.run(calibrated_pool(tmp_path_factory.mktemp("pool"), embedder, ["alpha", "beta", "gamma"]))


@asynccontextmanager
async def serving(
    spec: EnsembleRouterSpec,
    *,
    artifact: Artifact | None = None,
    embedder: Embedder | None = None,
    token: str | None = None,
    name: str = "ensemble",
) -> AsyncIterator[RunningRouter]:
    """The real router on 127.0.0.1 for `spec` (its endpoints are the simulated backends)."""
    batcher = EmbeddingBatcher(embedder) if embedder is not None else None
    engine = RouterEngine(
        name,
        spec,
        backend_endpoints(name, spec),
        artifact=artifact,
        batcher=batcher,
        require_artifact=artifact is not None,
    )
    async with RunningRouter(engine, TokenSource(value=token)) as router:
        yield router
