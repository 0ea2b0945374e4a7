"""An OpenAI-compatible `/v1/embeddings` server over a local embedder (`quorum embedder serve`).

For a router pool that shares one embeddings service, for tests of the remote engine against the packaged
MiniLM, and as the in-house peer of vLLM/TEI. Concurrent requests are batched together (`EmbeddingBatcher`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
from aiohttp import web

from quorum.embedding import Embedder, EmbeddingBatcher
from quorum.embedding.onnx import THREADS_ENV
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


class EmbeddingServerProcess:
    """`quorum embedder serve` in its own process on 127.0.0.1 (tests and benches: a separate CPU budget, like
    a real embeddings server), ready when `/healthz` answers."""

    def __init__(self, engine: str = "onnxruntime", port: int | None = None, threads: int = 1) -> None:
        from quorum.llm.local import free_port

        self.engine = engine
        self.port = port or free_port()
        self.threads = threads
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The server process while it runs (benches read its CPU and memory from /proc)."""
        return self._process.pid if self._process is not None else None

    def start(self, timeout_s: float = 300.0) -> EmbeddingServerProcess:
        command = [sys.executable, "-m", "quorum.cli.main", "embedder", "serve", "--engine", self.engine]
        environment = {**os.environ, THREADS_ENV: str(self.threads)}
        self._process = subprocess.Popen([*command, "--port", str(self.port)], env=environment)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"embeddings server exited with {self._process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"embeddings server did not answer within {timeout_s}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None

    def __enter__(self) -> EmbeddingServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
