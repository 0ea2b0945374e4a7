"""The HTTP/1.1 client for model servers (the router's backends, the workers' ChatClient) frames every answer
shape a server may send, reuses keep-alive connections only when that is safe, and turns hangs and broken
answers into `TimeoutError` and `BackendConnectionError` (which the router counts as backend failures and the
ChatClient retries)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from quorum.llm import http1
from quorum.llm.http1 import BackendConnectionError, Pool
from tests.llm.raw import Script, raw_server, read_request, server_tls


@asynccontextmanager
async def backend(script: Script, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[Pool, list[int]]]:
    """A raw server (TLS with `tls`) answering with scripted bytes; yields a pool for it and the connections it
    accepted."""
    async with raw_server(script, tls) as (url, accepted):
        pool = Pool(url, {"Content-Type": "application/json"})
        try:
            yield pool, accepted
        finally:
            pool.close()


def answering(*answers: bytes, trickle: bool = False) -> Script:
    """Answers each request on a connection with the next of `answers` (byte by byte when `trickle`)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await read_request(reader)
            for piece in [answer[i : i + 1] for i in range(len(answer))] if trickle else [answer]:
                writer.write(piece)
                await writer.drain()
        await reader.read()

    return script


LENGTH = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"6;ext=1\r\ndata: \r\n5\r\nhello\r\n2\r\n\n\n\r\n0\r\nX-Trailer: yes\r\n\r\n"
)


async def read_length_then_chunked(pool: Pool) -> None:
    """LENGTH read whole, then CHUNKED streamed, on what should be one connection."""
    first = await pool.post("chat/completions", b"{}", 5, stream=False)
    assert first.status == 200 and await first.read() == b'{"ok":true}'
    first.release()
    second = await pool.post("chat/completions", b"{}", 5, stream=True)
    assert b"".join([piece async for piece in second.iter_any()]) == b"data: hello\n\n"
    second.release()


@pytest.mark.parametrize("trickle", [False, True], ids=["whole", "byte-by-byte"])
async def test_content_length_and_chunked_bodies_are_read_whole_and_the_connection_is_reused(trickle: bool):
    async with backend(answering(LENGTH, CHUNKED, trickle=trickle)) as (pool, accepted):
        await read_length_then_chunked(pool)
    assert len(accepted) == 1


async def test_the_request_carries_path_host_headers_and_body():
    seen: list[tuple[bytes, bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(LENGTH)

    async with backend(script) as (pool, _):
        response = await pool.post("completions", b'{"model":"m"}', 5, stream=False)
        await response.read()
        response.release()
    head, body = seen[0]
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/completions HTTP/1.1"
    assert f"Host: 127.0.0.1:{pool.port}".encode() in lines and b"Content-Type: application/json" in lines
    assert body == b'{"model":"m"}'


async def test_an_answer_framed_by_the_connection_end_is_read_whole_and_not_reused():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nbackend fell over")

    async with backend(script) as (pool, accepted):
        for _ in range(2):
            response = await pool.post("chat/completions", b"{}", 5, stream=False)
            assert response.status == 500 and await response.read() == b"backend fell over"
            response.release()
    assert len(accepted) == 2


async def test_an_answer_left_unread_closes_its_connection_instead_of_returning_it():
    async with backend(answering(LENGTH, LENGTH)) as (pool, accepted):
        for _ in range(2):
            (await pool.post("chat/completions", b"{}", 5, stream=False)).release()
    assert len(accepted) == 2


async def test_an_idle_connection_past_the_reuse_window_is_replaced(monkeypatch: pytest.MonkeyPatch):
    async with backend(answering(LENGTH, LENGTH)) as (pool, accepted):
        response = await pool.post("chat/completions", b"{}", 5, stream=False)
        await response.read()
        response.release()
        monkeypatch.setattr(http1, "IDLE_REUSE_SECONDS", 0.0)
        response = await pool.post("chat/completions", b"{}", 5, stream=False)
        assert await response.read() == b'{"ok":true}'
        response.release()
    assert len(accepted) == 2


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(30)


async def test_a_backend_that_never_answers_times_out_within_the_limit():
    async with backend(hang) as (pool, _):
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await pool.post("chat/completions", b"{}", 0.3, stream=False)
        assert asyncio.get_running_loop().time() - started < 2


async def test_a_whole_answer_must_arrive_by_the_deadline_but_a_stream_only_needs_each_piece_in_time():
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):
            await asyncio.sleep(0.15)
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await reader.read()

    async with backend(slow) as (pool, _):
        whole = await pool.post("chat/completions", b"{}", 0.4, stream=False)
        with pytest.raises(TimeoutError):
            await whole.read()
        whole.release()
        stream = await pool.post("chat/completions", b"{}", 0.4, stream=True)
        assert b"".join([p async for p in stream.iter_any()]) == b"xxxx"
        stream.release()


@pytest.mark.parametrize(
    "answer",
    [b"SPDY/9 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ncut short", b"HTTP/1.1 200 OK\r\n"],
    ids=["malformed-status", "closed-mid-body", "closed-mid-head"],
)
async def test_a_broken_answer_is_a_connection_error(answer: bytes):
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()

    async with backend(script) as (pool, _):
        with pytest.raises(BackendConnectionError):
            response = await pool.post("chat/completions", b"{}", 5, stream=False)
            await response.read()


async def test_a_refused_connection_is_a_connection_error():
    pool = Pool("http://127.0.0.1:9/v1", {})
    with pytest.raises(BackendConnectionError):
        await pool.post("chat/completions", b"{}", 5, stream=False)


async def test_a_stream_the_reader_does_not_keep_up_with_pauses_the_backend_and_still_arrives_whole():
    piece = b"x" * 65536
    count = 4 * http1.PAUSE_AT // len(piece)

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (len(piece) * count))
        for _ in range(count):
            writer.write(piece)
            await writer.drain()
        await reader.read()

    async with backend(script) as (pool, _):
        response = await pool.post("chat/completions", b"{}", 5, stream=True)
        await asyncio.sleep(0.3)  # the backend writes ahead until reading pauses
        assert response._paused and response._buffered <= 2 * http1.PAUSE_AT
        total = sum([len(p) async for p in response.iter_any()])
        response.release()
    assert total == len(piece) * count


async def test_https_answers_are_read_whole_over_a_verified_reused_connection(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # the backend's CA, trusted as a pod would mount it
    async with backend(answering(LENGTH, CHUNKED), tls=server_tls(certificate)) as (pool, accepted):
        await read_length_then_chunked(pool)
    assert len(accepted) == 1


async def test_an_https_backend_whose_certificate_is_not_trusted_is_a_connection_error(
    certificate: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    async with backend(answering(LENGTH), tls=server_tls(certificate)) as (pool, _):
        with pytest.raises(BackendConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await pool.post("chat/completions", b"{}", 5, stream=False)
