"""The remote embedder (`spec.embedding.endpoint`) against a real embeddings server made from the packaged MiniLM
on 127.0.0.1: it routes like the in-process embedder, calibration records it, a router configured with it never
imports torch, and a dead server opens its circuit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest

from quorum.api.common import Endpoint
from quorum.api.ensemble import EnsembleRouterSpec
from quorum.embedding import EmbeddingBatcher
from quorum.embedding.remote import EmbedderUnavailable, RemoteEmbedder
from quorum.embedding.server import EmbeddingServerProcess
from quorum.llm.local import free_port
from quorum.routing.artifact import save_artifact
from quorum.routing.breaker import BreakerState, CircuitBreaker
from quorum.routing.config import backend_endpoints
from quorum.routing.embedding import EmbedderMismatch, artifact_embedder, spec_embedder
from quorum.routing.engine import ChatRequest, RouterEngine
from tests.routing.conftest import calibrated_pool


@pytest.fixture(scope="module")
def embedding_server():
    with EmbeddingServerProcess() as server:
        yield server


def with_endpoint(spec: EnsembleRouterSpec, url: str, model: str) -> EnsembleRouterSpec:
    # a generous time-out: the server shares two busy cores with the test
    update = {"endpoint": Endpoint(url=url, model=model), "timeout_seconds": 300.0}
    embedding = spec.embedding.model_copy(update=update)
    return spec.model_copy(update={"embedding": embedding})


def fresh_questions() -> list[str]:
    """240 questions the pool was not calibrated on, in its four topics' wordings and some others."""
    out = []
    for i in range(60):
        out.append(f"Compute the sum {101 + 11 * i} + {7 + 5 * i}. Put the final number in \\boxed{{}}.")
        out.append(f"A car covers {90 * (i % 4 + 1)} kilometres in {i % 4 + 1} hours. What is its average speed?")
        out.append(f"Which city is the capital of country number {i}? A. Paris B. Lima C. Oslo D. Rome")
        out.append(f"Tell me something about topic {i}: the history of {['bridges', 'tea', 'chess'][i % 3]}.")
    return out


async def routes(engine: RouterEngine, questions: list[str]) -> list[tuple[list[str], int | None]]:
    requests = [ChatRequest(messages=[{"role": "user", "content": q}]) for q in questions]
    try:
        return list(await asyncio.gather(*(engine.route(r) for r in requests)))
    finally:
        await engine.aclose()


def test_remote_embedder_routes_240_questions_exactly_like_the_in_process_one(
    full_pool, embedder, embedding_server
) -> None:
    spec, _, artifact, _ = full_pool
    remote_spec = with_endpoint(spec, embedding_server.base_url, artifact.embedder)
    questions = fresh_questions()

    def engine(of: EnsembleRouterSpec, batcher: EmbeddingBatcher) -> RouterEngine:
        return RouterEngine("ensemble", of, backend_endpoints("ensemble", of), artifact=artifact, batcher=batcher)

    local = asyncio.run(routes(engine(spec, EmbeddingBatcher(embedder)), questions))
    remote = asyncio.run(routes(engine(remote_spec, EmbeddingBatcher(spec_embedder(remote_spec))), questions))
    assert len(questions) >= 200
    assert remote == local
    assert len({cluster for _, cluster in local}) > 1  # the questions do land in different clusters


def test_calibration_through_the_server_records_it_and_finds_the_same_clusters(
    tmp_path: Path, full_pool, embedding_server
) -> None:
    spec, _, local_artifact, _ = full_pool
    served = RemoteEmbedder(embedding_server.base_url, local_artifact.embedder, timeout_seconds=300)
    _, _, artifact, _ = asyncio.run(calibrated_pool(tmp_path, served, ["alpha", "beta", "gamma"]))
    assert (artifact.embedder_engine, artifact.embedder_url) == ("remote", embedding_server.base_url)
    assert artifact.dimension == local_artifact.dimension == 384
    assert (artifact.assignments == local_artifact.assignments).all()
    assert np.allclose(artifact.task_map.centres, local_artifact.task_map.centres, atol=1e-4)
    with pytest.raises(EmbedderMismatch, match=r"spec\.embedding\.endpoint"):
        artifact_embedder(artifact, spec)  # serving without the endpoint would embed differently


def test_a_router_with_a_remote_embedder_never_imports_torch(tmp_path: Path, full_pool, embedding_server) -> None:
    spec, _, local_artifact, _ = full_pool
    served = RemoteEmbedder(embedding_server.base_url, local_artifact.embedder, timeout_seconds=300)
    (tmp_path / "calibration").mkdir()
    _, _, artifact, _ = asyncio.run(calibrated_pool(tmp_path / "calibration", served, ["alpha", "beta", "gamma"]))
    save_artifact(artifact, tmp_path / "artifact")
    remote_spec = with_endpoint(spec, embedding_server.base_url, artifact.embedder)
    (tmp_path / "spec.json").write_text(remote_spec.model_dump_json(by_alias=True))
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        from pathlib import Path
        import quorum.cli.router, quorum.routing.server
        from quorum.api.ensemble import EnsembleRouterSpec
        from quorum.embedding import EmbeddingBatcher
        from quorum.routing.artifact import load_artifact
        from quorum.routing.config import backend_endpoints
        from quorum.routing.embedding import artifact_embedder
        from quorum.routing.engine import ChatRequest, RouterEngine

        spec = EnsembleRouterSpec.model_validate_json(Path({str(tmp_path / "spec.json")!r}).read_text())
        artifact = load_artifact(Path({str(tmp_path / "artifact")!r}))
        batcher = EmbeddingBatcher(artifact_embedder(artifact, spec))

        async def main():
            engine = RouterEngine("e", spec, backend_endpoints("e", spec), artifact=artifact, batcher=batcher)
            models, cluster = await engine.route(ChatRequest(messages=[{{"role": "user", "content": "2 + 2?"}}]))
            await engine.aclose()
            return models, cluster

        models, cluster = asyncio.run(main())
        heavy = sorted(m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules)
        print(json.dumps({{"models": models, "cluster": cluster, "heavy": heavy, "engine": batcher.embedder.engine}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["engine"] == "remote" and report["cluster"] is not None and len(report["models"]) == 3
    assert report["heavy"] == []


def test_a_dead_embeddings_server_opens_the_circuit_after_the_threshold() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_seconds=60)
    dead = RemoteEmbedder(f"http://127.0.0.1:{free_port()}/v1", "m", timeout_seconds=2, breaker=breaker)

    async def attempts() -> list[str]:
        errors = []
        for _ in range(3):
            try:
                await dead.aencode(["hello"])
            except EmbedderUnavailable as error:
                errors.append(str(error))
        await dead.aclose()
        return errors

    errors = asyncio.run(attempts())
    assert breaker.state is BreakerState.OPEN
    assert len(errors) == 3 and "circuit open" in errors[2] and "circuit open" not in errors[0]


def test_the_server_answers_in_openai_shape_and_rejects_token_arrays(embedding_server) -> None:
    url = f"{embedding_server.base_url}/embeddings"
    answer = httpx.post(url, json={"model": "m", "input": ["a", "b c"]}, timeout=60).json()
    assert [d["index"] for d in answer["data"]] == [0, 1] and len(answer["data"][0]["embedding"]) == 384
    assert httpx.post(url, json={"model": "m", "input": [[1, 2]]}, timeout=60).status_code == 400
