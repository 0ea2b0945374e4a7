"""Plain router configuration built from an EnsembleRouter spec: backend endpoints and the auth token.

How a pod learns what the spec cannot say (the operator sets these; local mode passes overrides):
- `QUORUM_BACKEND_URL_<MODEL>`: base URL (with `/v1`) of a Quorum-deployed model; default
  `http://<resource>-<model>:8000/v1`, the model's Service in the router's namespace.
- `QUORUM_API_KEY_<MODEL>`: the bearer token of an external endpoint (from its `apiKeySecretRef`).
- `QUORUM_ROUTER_TOKEN_FILE` (a mounted Secret key) or `QUORUM_ROUTER_TOKEN`: the token clients must send.
- `QUORUM_EMBEDDING_API_KEY`: the bearer token of `spec.embedding.endpoint`.
`<MODEL>` is the model name upper-cased with `-` → `_`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from quorum.api.ensemble import EnsembleRouterSpec

if TYPE_CHECKING:  # the operator reads this module's names; its image carries no model client
    from quorum.llm import ModelEndpoint

TOKEN_FILE_ENV = "QUORUM_ROUTER_TOKEN_FILE"
TOKEN_ENV = "QUORUM_ROUTER_TOKEN"
DEFAULT_BACKEND_CONCURRENCY = 256
EMBEDDING_API_KEY_ENV = "QUORUM_EMBEDDING_API_KEY"
"""The bearer token of `spec.embedding.endpoint` (from its `apiKeySecretRef`), set by the operator in the
calibration and router pods."""


def env_name(prefix: str, model: str) -> str:
    return f"{prefix}{model.upper().replace('-', '_')}"


def backend_endpoints(
    resource: str,
    spec: EnsembleRouterSpec,
    *,
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[ModelEndpoint]:
    """One endpoint per model in spec order; `overrides` (model → base URL) win over the environment."""
    from quorum.llm import ModelEndpoint

    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    endpoints = []
    for model in spec.models:
        api_key = environ.get(env_name("QUORUM_API_KEY_", model.name)) or None
        concurrency = model.max_concurrency or DEFAULT_BACKEND_CONCURRENCY
        if model.name in overrides:
            url, served = overrides[model.name], (model.endpoint.model if model.endpoint else model.model or model.name)
        elif model.endpoint is not None:
            url, served = model.endpoint.url, model.endpoint.model
        else:
            default = f"http://{resource}-{model.name}:8000/v1"
            url, served = environ.get(env_name("QUORUM_BACKEND_URL_", model.name), default), model.model or model.name
        endpoints.append(
            ModelEndpoint(name=model.name, base_url=url, model=served, api_key=api_key, max_concurrency=concurrency)
        )
    return endpoints


@dataclass
class TokenSource:
    """The router's bearer token, re-read when its file changes (Secret rotation needs no restart)."""

    path: Path | None = None
    value: str | None = None
    _mtime: float | None = None

    @classmethod
    def from_environment(cls, token_file: Path | None = None, environ: Mapping[str, str] | None = None) -> TokenSource:
        environ = os.environ if environ is None else environ
        path = token_file or (Path(environ[TOKEN_FILE_ENV]) if environ.get(TOKEN_FILE_ENV) else None)
        if path is not None:
            source = cls(path=path)
            if source.current() is None:
                raise ValueError(f"router token file {path} is missing or empty")
            return source
        return cls(value=environ.get(TOKEN_ENV) or None)

    @property
    def enabled(self) -> bool:
        return self.path is not None or self.value is not None

    def require_beyond_loopback(self, host: str, *, allow_none: bool = False) -> None:
        """A router reachable from other machines requires a token unless `allow_none` (`--no-auth`)."""
        if self.enabled or allow_none or _is_loopback(host):
            return
        raise ValueError(
            f"--host {host} exposes the router beyond this machine without a token: give one "
            f"(--token-file, ${TOKEN_FILE_ENV} or ${TOKEN_ENV}) or pass --no-auth"
        )

    def current(self) -> str | None:
        if self.path is None:
            return self.value
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self.value = self.path.read_text(encoding="utf-8").strip() or None
                self._mtime = mtime
        except OSError:
            pass  # keep the last good token while a Secret update swaps the file
        return self.value


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
