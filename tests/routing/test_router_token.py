"""The router requires a token by default: a router reachable from other machines never starts open unless
`--no-auth` says so; on loopback it may (a laptop's own processes only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from quorum.cli.main import app
from quorum.routing.config import TokenSource


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::"])
def test_a_router_beyond_loopback_without_a_token_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="without a token"):
        TokenSource().require_beyond_loopback(host)
    TokenSource().require_beyond_loopback(host, allow_none=True)
    TokenSource(value="t").require_beyond_loopback(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_a_loopback_router_may_run_without_a_token(host: str) -> None:
    TokenSource().require_beyond_loopback(host)


def test_router_serve_refuses_to_listen_on_all_addresses_without_a_token(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("QUORUM_ROUTER_TOKEN", raising=False)
    monkeypatch.delenv("QUORUM_ROUTER_TOKEN_FILE", raising=False)
    manifest = {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "r"},
        "spec": {
            "models": [{"name": "m", "endpoint": {"url": "http://127.0.0.1:9/v1", "model": "m"}}],
            "calibration": {"dataset": {"uri": "file://calib.jsonl"}},
        },
    }
    config = tmp_path / "r.yaml"
    config.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(app, ["router", "serve", "--config", str(config), "--host", "0.0.0.0"])
    assert result.exit_code != 0
    assert "without a token" in result.output and "--no-auth" in result.output
