"""The harness itself: cached builds are instant, and the repository's CRDs are served by the plane."""

from __future__ import annotations

import time

import pytest

from e2e import build, paths, versions
from e2e.fixtures import CRDS_DIR
from e2e.kind import KindCluster
from e2e.target import Cluster

pytestmark = pytest.mark.cluster


def test_second_build_with_everything_cached_is_near_instant(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    build.build_all()
    elapsed = time.monotonic() - started

    out = capsys.readouterr().out
    assert "building" not in out, out
    assert out.count("up to date") == 4
    assert elapsed < 5.0
    assert (paths.bin_dir() / "kube-apiserver").is_file()


def test_api_server_reports_the_pinned_version(control_plane: Cluster) -> None:
    version = control_plane.kube.json("version")
    if not isinstance(control_plane, KindCluster):
        assert version["serverVersion"]["gitVersion"] == versions.KUBERNETES
    assert version["clientVersion"]["minor"] == versions.KUBERNETES.split(".")[1]


def test_repository_crds_are_established(control_plane: Cluster) -> None:
    files = sorted(CRDS_DIR.glob("*.yaml")) if CRDS_DIR.is_dir() else []
    if not files:
        pytest.skip("no crds/ in this checkout yet")
    for path in files:
        for name in control_plane.kubectl("get", "--filename", str(path), "--output=name").split():
            conditions = {c["type"]: c["status"] for c in control_plane.kube.get(name)["status"]["conditions"]}
            assert conditions["Established"] == "True", name
