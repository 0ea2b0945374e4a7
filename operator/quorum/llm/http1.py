"""The HTTP/1.1 client for model servers, used by the router's backends and the workers' `ChatClient`:
keep-alive connections, one request at a time on each.

Why not aiohttp's client: a call spends most of its CPU in the HTTP layers, and aiohttp's client (request and
response objects, cookie, trace, redirect and timer machinery) cost 130-180 µs of CPU per call against about
25 µs for a protocol that writes one pre-built request and frames the answer. A model server needs little of
HTTP: POST a JSON body, read a status (and a Retry-After), and a body framed by Content-Length, chunked transfer
encoding or the connection's end, whole or as it arrives (streams). No redirects, cookies, proxies or
compression (no Accept-Encoding is sent, so a server answers in identity encoding). `https://` is verified
against the system's CA store (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured, as OpenSSL reads them).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

IDLE_REUSE_SECONDS = 4.0
"""An idle connection is reused only this long: uvicorn (vLLM's server) closes idle keep-alive connections
after 5 s, and a request written as the server closes would fail although the backend is healthy."""
PAUSE_AT = 1 << 18
"""Bytes of a streamed answer buffered before reading from the backend pauses (the client is slower)."""
MAX_HEAD = 1 << 16


class BackendConnectionError(Exception):
    """No usable answer: refused or reset connection, the backend closing mid-answer, or malformed HTTP."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses the status, headers and body framing of one answer at a time."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._response: Response | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._response is not None:
            self._response._closed(exc)

    def data_received(self, data: bytes) -> None:
        if self._response is None:  # bytes nobody asked for: the connection cannot be trusted
            self.close()
            return
        self._buffer += data
        self._response._feed(self._buffer)

    def eof_received(self) -> bool:
        return False

    def send(self, request: bytes, response: Response) -> None:
        self._response = response
        self.transport.write(request)  # type: ignore[union-attr]

    def detach(self) -> None:
        self._response = None
        self._buffer.clear()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """A backend's answer once its head arrived: `status`, then `read()` or `iter_any()`, then `release()`.

    Time limits: a non-streamed answer must be whole by `deadline` (a `time.monotonic()` instant); a stream
    may wait at most `read_timeout` for each piece."""

    def __init__(self, pool: Pool, connection: _Connection, deadline: float | None, read_timeout: float | None) -> None:
        self.status = 0
        self.retry_after: str | None = None
        """The Retry-After header's value, as sent (a 429 or 503 may ask the caller to wait)."""
        self._pool = pool
        self._connection: _Connection | None = connection
        self._deadline = deadline
        self._read_timeout = read_timeout
        self._head: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pieces: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._wakeup: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        self._length: int | None = None  # bytes of a Content-Length body still to come
        self._chunked = False
        self._chunk_left = 0  # data bytes of the current chunk still to come
        self._crlf_due = False  # the CRLF that ends a chunk's data
        self._until_close = False
        self._done = False
        self._keep_alive = True

    # parsing, called by the connection as bytes arrive

    def _feed(self, buffer: bytearray) -> None:
        try:
            if not self._head.done() and not self._parse_head(buffer):
                return
            self._parse_body(buffer)
        except (BackendConnectionError, ValueError) as error:
            self._fail(BackendConnectionError(f"malformed answer: {error}"))
            if self._connection is not None:
                self._connection.close()
            return
        if self._buffered > PAUSE_AT and not self._paused and self._connection is not None:
            self._paused = True
            self._connection.transport.pause_reading()  # type: ignore[union-attr]

    def _parse_head(self, buffer: bytearray) -> bool:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise BackendConnectionError("response head too large")
            return False
        lines = bytes(buffer[:end]).split(b"\r\n")
        del buffer[: end + 4]
        version, _, rest = lines[0].partition(b" ")
        code = rest[:3]
        if not version.startswith(b"HTTP/1.") or not code.isdigit():
            raise BackendConnectionError(f"malformed status line {lines[0][:80]!r}")
        status = int(code)
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            return self._parse_head(buffer)
        self._keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self._length = int(value)
            elif name == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
            elif name == b"retry-after":
                self.retry_after = value.strip().decode("latin-1")
            elif name == b"connection":
                token = value.strip().lower()
                self._keep_alive = token != b"close" and (self._keep_alive or token == b"keep-alive")
        if self._chunked:
            self._length = None
        elif status in (204, 304):
            self._length = 0
        elif self._length is None:
            self._until_close, self._keep_alive = True, False
        self.status = status
        self._head.set_result(None)
        return True

    def _parse_body(self, buffer: bytearray) -> None:
        if self._chunked:
            self._parse_chunks(buffer)
        elif self._until_close:
            self._push(bytes(buffer))
            buffer.clear()
        elif self._length is not None:
            take = min(self._length, len(buffer))
            if take:
                self._push(bytes(buffer[:take]))
                del buffer[:take]
                self._length -= take
            if self._length == 0:
                self._finish()

    def _parse_chunks(self, buffer: bytearray) -> None:
        while not self._done:
            if self._chunk_left:
                take = min(self._chunk_left, len(buffer))
                if not take:
                    return
                self._push(bytes(buffer[:take]))
                del buffer[:take]
                self._chunk_left -= take
                if self._chunk_left:
                    return
                self._crlf_due = True
            if self._crlf_due:
                if len(buffer) < 2:
                    return
                if buffer[:2] != b"\r\n":
                    raise BackendConnectionError("chunk data not followed by CRLF")
                del buffer[:2]
                self._crlf_due = False
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise BackendConnectionError("chunk size line too long")
                return
            size = int(bytes(buffer[:end]).split(b";")[0].strip(), 16)
            if size == 0:  # the last chunk: optional trailers, then an empty line
                last = buffer.find(b"\r\n\r\n", end)
                if last >= 0:
                    del buffer[: last + 4]
                    self._finish()
                return
            del buffer[: end + 2]
            self._chunk_left = size

    def _push(self, piece: bytes) -> None:
        if piece:
            self._pieces.append(piece)
            self._buffered += len(piece)
            self._wake()

    def _finish(self) -> None:
        self._done = True
        self._wake()

    def _fail(self, error: Exception) -> None:
        if self._error is None and not self._done:
            self._error = error
        if not self._head.done():
            self._head.set_exception(error)
            self._head.exception()  # retrieved: nobody may be waiting for it any more
        self._wake()

    def _closed(self, exc: Exception | None) -> None:
        if self._until_close and self._head.done() and exc is None:
            self._finish()
        else:
            self._fail(BackendConnectionError(f"the backend closed the connection ({exc or 'end of stream'})"))

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # reading, the caller's side

    async def _next(self) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while not self._pieces:
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await _within(self._wakeup, self._deadline, self._read_timeout)
            finally:
                self._wakeup = None
        piece = self._pieces.popleft()
        self._buffered -= len(piece)
        if self._paused and self._buffered <= PAUSE_AT // 2:
            self._paused = False
            if self._connection is not None and not self._connection.closed:
                self._connection.transport.resume_reading()  # type: ignore[union-attr]
        return piece

    async def read(self) -> bytes:
        """The whole body."""
        pieces = []
        while (piece := await self._next()) is not None:
            pieces.append(piece)
        return b"".join(pieces)

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive (de-chunked)."""
        while (piece := await self._next()) is not None:
            yield piece

    def release(self) -> None:
        """The connection goes back to the pool when the answer was read whole and may be kept; else closed."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        reusable = self._done and self._keep_alive and not self._pieces and not connection._buffer
        connection.detach()
        if reusable and not connection.closed:  # bytes beyond the answer: the server is not speaking HTTP
            self._pool._put(connection)
        else:
            connection.close()


async def _within(future: asyncio.Future[None], deadline: float | None, timeout: float | None) -> None:
    """Await `future` until `deadline` (monotonic) or for `timeout` seconds; a timer, not a task per wait."""
    loop = asyncio.get_running_loop()
    if deadline is None and timeout is None:
        await future
        return
    at = deadline if deadline is not None else time.monotonic() + timeout  # type: ignore[operator]
    if at <= time.monotonic():
        raise TimeoutError("the backend did not answer in time")
    handle = loop.call_at(loop.time() + (at - time.monotonic()), _expire, future)
    try:
        await future
    finally:
        handle.cancel()


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("the backend did not answer in time"))


class Pool:
    """Keep-alive connections to one backend (scheme, host and port of `base_url`), used last-in first-out."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path.rstrip("/") + "/"
        default_port = self.port == (443 if self.ssl else 80)
        host = self.host if ":" not in self.host else f"[{self.host}]"
        lines = [f"Host: {host if default_port else f'{host}:{self.port}'}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._headers = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._starts: dict[str, bytes] = {}
        self._idle: list[_Connection] = []

    def request(self, path: str, body: bytes) -> bytes:
        start = self._starts.get(path)
        if start is None:
            start = self._starts[path] = f"POST {self.prefix}{path} HTTP/1.1\r\n".encode() + self._headers
        return b"%s%d\r\n\r\n%s" % (start, len(body), body)

    async def post(self, path: str, body: bytes, timeout: float, *, stream: bool) -> Response:
        """Send the request and wait for the answer's head. Not streamed: the whole answer within `timeout`;
        streamed: the connection, the head and each later piece within `timeout` each.

        Raises `BackendConnectionError` (no connection, or it failed) or `TimeoutError`."""
        deadline = None if stream else time.monotonic() + timeout
        connection = self._idle_connection() or await self._connect(timeout)
        response = Response(self, connection, deadline, timeout if stream else None)
        connection.send(self.request(path, body), response)
        try:
            await _within(response._head, deadline, timeout)
        except BaseException:
            response.release()  # not read whole: closes the connection
            raise
        return response

    def _idle_connection(self) -> _Connection | None:
        now, loop = time.monotonic(), asyncio.get_running_loop()
        while self._idle:
            connection = self._idle.pop()
            fresh = now - connection.idle_since < IDLE_REUSE_SECONDS
            if fresh and not connection.closed and connection.loop is loop:  # a connection serves one loop
                return connection
            connection.close()
        return None

    async def _connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
                ),
                timeout,
            )
        except OSError as error:
            raise BackendConnectionError(f"cannot connect to {self.host}:{self.port}: {error}") from None
        return connection

    def _put(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()
