"""What routing embeds (the conversation's text) and with which embedder (the spec's, or the artifact's when
serving). The embedder itself is shared with dedup (`quorum.embedding`)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from quorum.embedding import (
    REMOTE,
    Embedder,
    EmbeddingBatcher,
    EngineUnavailable,
    limit_torch_threads,
    require_engine,
    shared_embedder,
)
from quorum.routing.config import EMBEDDING_API_KEY_ENV

if TYPE_CHECKING:
    from quorum.api.ensemble import EnsembleRouterSpec
    from quorum.routing.artifact import Artifact

__all__ = [
    "Embedder",
    "EmbeddingBatcher",
    "EngineUnavailable",
    "artifact_embedder",
    "conversation_text",
    "limit_torch_threads",
    "shared_embedder",
    "spec_embedder",
]


def _content_text(content: Any) -> str:
    """Text of an OpenAI message content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def conversation_text(messages: Sequence[dict[str, Any]]) -> str:
    """The text that is embedded for routing: the whole conversation, not just the last turn.

    A single user message embeds as its bare content, exactly as calibration questions do; longer
    conversations embed as `role: content` lines in order, so history changes the route (upstream dropped it).
    """
    if len(messages) == 1 and messages[0].get("role") == "user":
        return _content_text(messages[0].get("content"))
    return "\n".join(f"{m.get('role', 'user')}: {_content_text(m.get('content'))}" for m in messages)


def _local_embedder(model: str, engine: str) -> Embedder:
    """The shared local embedder, refused at start with the field to change when its engine is missing here."""
    try:
        require_engine(engine)
    except EngineUnavailable as error:
        raise EngineUnavailable(f"spec.embedding.engine: {engine}: {error}") from error
    return shared_embedder(model, engine)


def spec_embedder(spec: EnsembleRouterSpec, environ: Mapping[str, str] | None = None) -> Embedder:
    """The embedder `spec.embedding` names: the remote server when `endpoint` is set, else the local model."""
    environ = os.environ if environ is None else environ
    settings = spec.embedding
    if settings.endpoint is None:
        return _local_embedder(settings.model, settings.engine.value)
    from quorum.embedding.remote import RemoteEmbedder
    from quorum.routing.breaker import CircuitBreaker

    breaker = spec.router.circuit_breaker
    return RemoteEmbedder(
        settings.endpoint.url,
        settings.endpoint.model,
        api_key=environ.get(EMBEDDING_API_KEY_ENV) or None,
        timeout_seconds=settings.timeout_seconds,
        breaker=CircuitBreaker(breaker.failure_threshold, breaker.reset_seconds),
    )


class EmbedderMismatch(ValueError):
    """The spec's embedder is not the one that calibrated the artifact."""


def artifact_embedder(
    artifact: Artifact, spec: EnsembleRouterSpec, environ: Mapping[str, str] | None = None
) -> Embedder:
    """Serving embeds exactly as calibration did (the artifact records model and engine); vectors of another
    embedder would land in the wrong clusters, so a spec that changed since calibration is refused."""
    if artifact.embedder_engine == REMOTE:
        endpoint = spec.embedding.endpoint
        if endpoint is None or endpoint.model != artifact.embedder:
            raise EmbedderMismatch(
                f"the artifact was calibrated with embeddings server model {artifact.embedder!r}; "
                "spec.embedding.endpoint must name it (recalibrate to change the embedder)"
            )
        return spec_embedder(spec, environ)
    embedder = _local_embedder(artifact.embedder, artifact.embedder_engine)
    if embedder.dimension != artifact.dimension:
        raise EmbedderMismatch(
            f"embedder {artifact.embedder!r} gives {embedder.dimension}-d vectors, "
            f"the artifact has {artifact.dimension}-d centres"
        )
    return embedder
