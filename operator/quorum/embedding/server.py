"""An OpenAI-compatible `/v1/embeddings` server over a local embedder (`quorum embedder serve`).

For a router pool that shares one embeddings service, for tests of the remote engine against the packaged
MiniLM, and as the in-house peer of vLLM/TEI. Concurrent requests are batched together (`EmbeddingBatcher`).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from quorum.embedding import Embedder, EmbeddingBatcher
from quorum.llm.service import AppService


class EmbeddingService(AppService):
    """Serves `embedder` under the model name `served_model` (any requested name is answered)."""

    def __init__(self, embedder: Embedder, served_model: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.embedder = embedder
        self.served_model = served_model
        self.batcher = EmbeddingBatcher(embedder)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def _embeddings(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            texts = body["input"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "body must be JSON with an `input` string or list of strings")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "`input` must be a string or a list of strings (token arrays are not supported)")
        vectors = await asyncio.gather(*(self.batcher.embed(text) for text in texts))
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.json_response(
            {"object": "list", "model": body.get("model", self.served_model), "data": data, "usage": usage}
        )

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.served_model, "object": "model"}]})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def stop(self) -> None:
        await super().stop()
        await self.batcher.aclose()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=status)
