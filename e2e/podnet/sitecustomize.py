"""Cluster DNS and kube-proxy for the pod runner's processes (imported by Python at start through
`PYTHONPATH`): a Service name (`<service>.<namespace>.svc[.cluster.local]`) resolves to the loopback port of
a ready pod behind it, read from the map the runner keeps in `$QUORUM_E2E_SERVICES` (`{"host:port":
"127.0.0.1:port"}`). Other names resolve as usual. Only the e2e harness sets this up; Quorum knows nothing of it.
"""

from __future__ import annotations

import json
import os
import socket

_MAP = os.environ.get("QUORUM_E2E_SERVICES", "")
_real_getaddrinfo = socket.getaddrinfo


def _service_address(host: str, port: object) -> tuple[str, int] | None:
    name = host.removesuffix(".cluster.local")
    if not _MAP or not name.endswith(".svc"):
        return None
    try:
        with open(_MAP, encoding="utf-8") as handle:
            target = json.load(handle).get(f"{name}:{port}")
    except (OSError, ValueError):
        return None
    if not target:
        raise socket.gaierror(socket.EAI_NONAME, f"no ready endpoint behind Service {name}:{port}")
    address, _, mapped = target.rpartition(":")
    return address, int(mapped)


def _getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    found = _service_address(host, port) if isinstance(host, str) else None
    if found is None:
        return _real_getaddrinfo(host, port, family, type, proto, flags)
    return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", found)]


socket.getaddrinfo = _getaddrinfo


def _patch_aiohttp() -> None:
    """uvloop (the router's loop) resolves names in libuv, past `socket.getaddrinfo`: resolve Service names in
    aiohttp's resolver too, before it asks the loop."""
    try:
        from aiohttp import resolver
    except ImportError:
        return
    original = resolver.ThreadedResolver.resolve

    async def resolve(self, host, port=0, family=socket.AF_INET):
        found = _service_address(host, port)
        if found is None:
            return await original(self, host, port, family)
        flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [
            {"hostname": host, "host": found[0], "port": found[1], "family": socket.AF_INET, "proto": 0, "flags": flags}
        ]

    resolver.ThreadedResolver.resolve = resolve


def _patch_uvloop() -> None:
    """uvloop's `create_connection` resolves in libuv too: the model client of the router and the workers
    (`quorum.llm.http1`) connects through it, so Service names are mapped there as well."""
    try:
        import uvloop
    except ImportError:
        return
    original = uvloop.Loop.create_connection

    async def create_connection(self, protocol_factory, host=None, port=None, **kwargs):
        found = _service_address(host, port) if isinstance(host, str) else None
        if found is not None:
            host, port = found
        return await original(self, protocol_factory, host, port, **kwargs)

    uvloop.Loop.create_connection = create_connection


_patch_aiohttp()
_patch_uvloop()
