"""`python -m e2e.cluster up|status|down` (what `make cluster-up/down` run): a detached plane that outlives
the command, answers kubectl, and leaves no process or file behind after `down`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e import paths
from e2e.kube import Kube
from e2e.plane import ControlPlane

pytestmark = pytest.mark.cluster


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "e2e.cluster", *args],
        cwd=paths.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cluster_up_runs_detached_and_down_leaves_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "cluster"
    up = _cli("up", "--workdir", str(workdir), "--crds", str(tmp_path / "no-crds"))
    assert up.returncode == 0, up.stderr
    assert "plane ready" in up.stdout
    try:
        pids = ControlPlane(workdir).pids()
        assert all(pids.values()), pids  # the components outlived the command that started them
        nodes = Kube(workdir / "kubeconfig").get("nodes")["items"]
        assert {n["metadata"]["name"] for n in nodes} == {"kwok-cpu-0", "kwok-gpu-0"}
        assert _cli("status", "--workdir", str(workdir)).returncode == 0
        assert "already running" in _cli("up", "--workdir", str(workdir)).stdout
    finally:
        down = _cli("down", "--workdir", str(workdir))
    assert down.returncode == 0, down.stderr
    assert not workdir.exists()
    assert not [pid for pid in pids.values() if pid and _alive(pid)]
    assert _cli("status", "--workdir", str(workdir)).returncode == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
