"""Pod paths: themselves in a pod, under QUORUM_FS_ROOT for the e2e pod runner; the termination message."""

from __future__ import annotations

from pathlib import Path

import pytest

from quorum.worker.podfs import FS_ROOT_ENV, pod_path, write_termination_message


def test_without_a_root_pod_paths_are_themselves(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(FS_ROOT_ENV, raising=False)
    assert pod_path("/etc/quorum/synthesisjob.yaml") == Path("/etc/quorum/synthesisjob.yaml")


def test_with_a_root_absolute_paths_live_under_it_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(FS_ROOT_ENV, str(tmp_path))
    inside = pod_path("/etc/quorum/synthesisjob.yaml")
    assert inside == tmp_path / "etc/quorum/synthesisjob.yaml"
    assert pod_path(inside) == inside  # a path the runner already mapped stays as it is
    assert pod_path("relative/file") == Path("relative/file")


def test_termination_message_goes_to_the_kubelets_file_and_keeps_the_last_4_kib(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.setenv(FS_ROOT_ENV, str(tmp_path))
    write_termination_message("no file yet: nothing written, no error")
    assert not (tmp_path / "dev").exists()
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/termination-log").write_text("")
    write_termination_message("x" * 5000 + "END")
    written = (tmp_path / "dev/termination-log").read_text()
    assert len(written) == 4096 and written.endswith("END")
