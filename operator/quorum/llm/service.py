"""An aiohttp application served on a host and port (0 picks a free one) inside the running event loop.

Shared by the router and the simulated model server, which differ only in the application they serve.
"""

from __future__ import annotations

from typing import Self

from aiohttp import web

LISTEN_BACKLOG = 4096
"""aiohttp's default of 128 overflows when a thousand clients connect at once (the kernel caps it at somaxconn)."""


class AppService:
    """Subclasses provide `application()`; `async with` (or start/stop) serves it and fills in `port`."""

    shutdown_timeout: float = 60.0

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, API prefix included."""
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> str:
        self._runner = web.AppRunner(
            self.application(), access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=LISTEN_BACKLOG, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
