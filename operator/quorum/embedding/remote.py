"""An OpenAI-compatible `/v1/embeddings` server as the embedder (vLLM, TEI, a Quorum `Model`, `quorum embedder
serve`): batched requests with a time-out, behind a circuit breaker like the model backends. Imports no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from quorum.routing.breaker import CircuitBreaker

ENGINE = "remote"


class EmbedderUnavailable(RuntimeError):
    """The embeddings server failed or its circuit is open."""


class RemoteEmbedder:
    """Vectors from `POST {url}/embeddings`, re-normalized (servers differ on whether they normalize)."""

    engine = ENGINE

    def __init__(
        self,
        url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout_seconds: float = 10.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.model_id = model
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.breaker = breaker or CircuitBreaker()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.AsyncClient | None = None
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        """The model's dimension, asked of the server once (never assumed)."""
        if self._dimension is None:
            self.encode(["dimension"])
        assert self._dimension is not None
        return self._dimension

    def _body(self, texts: Sequence[str]) -> dict[str, Any]:
        return {"model": self.model_id, "input": list(texts), "encoding_format": "float"}

    def _vectors(self, response: httpx.Response, count: int) -> np.ndarray:
        if response.status_code != 200:
            raise EmbedderUnavailable(f"{self.url}/embeddings answered {response.status_code}: {response.text[:200]}")
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        if len(data) != count:
            raise EmbedderUnavailable(f"{self.url}/embeddings returned {len(data)} vectors for {count} inputs")
        vectors = np.asarray([item["embedding"] for item in data], dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        if self._dimension is not None and vectors.shape[1] != self._dimension:
            raise EmbedderUnavailable(f"dimension changed from {self._dimension} to {vectors.shape[1]}")
        self._dimension = int(vectors.shape[1])
        return vectors

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Blocking encode for calibration and dedup (no event loop there)."""
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        parts = []
        with httpx.Client(timeout=self.timeout_seconds, headers=self._headers) as client:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                parts.append(
                    self._guarded(
                        lambda chunk=chunk: client.post(f"{self.url}/embeddings", json=self._body(chunk)), len(chunk)
                    )
                )
        return np.concatenate(parts)

    def _guarded(self, send: Any, count: int) -> np.ndarray:
        if not self.breaker.acquire():
            raise EmbedderUnavailable(f"embeddings server {self.url} is unavailable (circuit open)")
        try:
            vectors = self._vectors(send(), count)
        except (httpx.HTTPError, EmbedderUnavailable, ValueError, KeyError) as error:
            self.breaker.record_failure()
            raise EmbedderUnavailable(f"embeddings server {self.url}: {type(error).__name__} {error}") from error
        self.breaker.record_success()
        return vectors

    async def aencode(self, texts: Sequence[str]) -> np.ndarray:
        """One request from the event loop (the batcher groups concurrent queries into it)."""
        if self._client is None:
            limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
            self._client = httpx.AsyncClient(timeout=self.timeout_seconds, headers=self._headers, limits=limits)
        if not self.breaker.acquire():
            raise EmbedderUnavailable(f"embeddings server {self.url} is unavailable (circuit open)")
        try:
            response = await self._client.post(f"{self.url}/embeddings", json=self._body(texts))
            vectors = self._vectors(response, len(texts))
        except (httpx.HTTPError, EmbedderUnavailable, ValueError, KeyError) as error:
            self.breaker.record_failure()
            raise EmbedderUnavailable(f"embeddings server {self.url}: {type(error).__name__} {error}") from error
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        return vectors

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
