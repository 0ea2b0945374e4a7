"""An httpx transport over aiohttp's connection pool.

Why: httpcore 1.0's pool re-scans all connections for every request it adds or removes (quadratic per event),
so a few hundred in-flight requests on one `httpx.AsyncClient` burn whole CPU seconds (measured: 300
concurrent router requests took 22 s instead of ~1 s). aiohttp's connector keeps per-host queues. The rest
of `quorum.llm` stays on the httpx API (timeouts, errors, streaming) unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except TimeoutError as error:
            raise httpx.ReadTimeout(str(error) or "read timed out") from None
        except aiohttp.ClientError as error:
            raise httpx.ReadError(str(error)) from None

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`httpx.AsyncClient(transport=AiohttpTransport())`: httpx semantics, aiohttp pooling."""

    def __init__(self, limit: int = 0, limit_per_host: int = 0) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=self._limit_per_host)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        try:
            response = await self._client().request(
                request.method,
                str(request.url),
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                data=await request.aread() or None,
                timeout=timeout,
                allow_redirects=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except TimeoutError as error:
            raise httpx.TimeoutException(str(error) or "timed out", request=request) from None
        except aiohttp.ClientConnectionError as error:
            raise httpx.ConnectError(str(error), request=request) from None
        except aiohttp.ClientError as error:
            raise httpx.TransportError(str(error), request=request) from None
        return httpx.Response(
            status_code=response.status,
            headers=list(response.raw_headers),
            stream=_Body(response),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
