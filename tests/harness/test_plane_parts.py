"""Pieces of the plane that need no cluster: names, nodes, ports, pid files, certificates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from e2e import pki
from e2e.fixtures import _namespace_name
from e2e.netutil import free_ports
from e2e.nodes import DEFAULT_NODES, GPU_RESOURCE
from e2e.plane import REQUIRED_BINARIES, ControlPlane, PlaneError
from e2e.procs import PidFile

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_namespace_names_are_valid_dns_labels_and_unique() -> None:
    long_name = "test_something[with-params-and-a-very-long-name-" + "x" * 80 + "]"
    names = {_namespace_name(long_name) for _ in range(20)}
    assert len(names) == 20
    assert all(len(n) <= 63 and DNS_LABEL.match(n) for n in names)


def test_gpu_node_advertises_gpus_in_capacity_and_allocatable() -> None:
    gpu = next(n for n in DEFAULT_NODES if n.gpus).manifest()
    assert gpu["status"]["capacity"][GPU_RESOURCE] == gpu["status"]["allocatable"][GPU_RESOURCE] == "8"
    assert gpu["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    cpu = next(n for n in DEFAULT_NODES if not n.gpus).manifest()
    assert GPU_RESOURCE not in cpu["status"]["capacity"]


def test_free_ports_are_distinct() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6


def test_pid_file_never_names_a_process_running_another_binary(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = PidFile(tmp_path / "x.pid")
        pid_file.write(child.pid, Path(sys.executable))
        assert pid_file.live_pid() == child.pid
        pid_file.write(child.pid, Path("/usr/bin/some-other-binary"))
        assert pid_file.live_pid() is None
    finally:
        child.kill()
        child.wait()
    pid_file.write(child.pid, Path(sys.executable))
    assert pid_file.live_pid() is None


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0, reason="no openssl")
def test_certificates_carry_the_identities_rbac_sees(tmp_path: Path) -> None:
    certs = pki.Pki(tmp_path)
    certs.generate()

    def subject(path: Path) -> str:
        return subprocess.run(
            ["openssl", "x509", "-in", str(path), "-noout", "-subject", "-nameopt", "compat"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert "O=system:masters/CN=quorum-e2e-admin" in subject(certs.cert(pki.ADMIN))
    assert "CN=system:kube-controller-manager" in subject(certs.cert(pki.CONTROLLER_MANAGER))
    sans = subprocess.run(
        ["openssl", "x509", "-in", str(certs.server_cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in sans and "DNS:kubernetes.default.svc" in sans
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(certs.front_proxy_ca_cert), str(certs.front_proxy_client_cert)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stderr


@pytest.fixture
def fake_binaries(tmp_path: Path) -> Path:
    """Empty files where start() looks for binaries: enough for tests that replace the start phases."""
    binaries = tmp_path / "bin"
    binaries.mkdir()
    for name in REQUIRED_BINARIES:
        (binaries / name).write_text("")
    return binaries


def test_start_retries_once_when_another_process_took_a_port(
    tmp_path: Path, fake_binaries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def flaky_start(self: ControlPlane) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise PlaneError("kube-apiserver exited with 1:\nlisten tcp 127.0.0.1:4242: bind: address already in use")

    monkeypatch.setattr(ControlPlane, "_start_phases", flaky_start)
    monkeypatch.setattr(ControlPlane, "_write_state", lambda self: None)
    ControlPlane(tmp_path / "plane", binaries=fake_binaries).start()
    assert len(attempts) == 2


def test_start_gives_up_on_other_failures_and_keeps_the_logs(
    tmp_path: Path, fake_binaries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    def broken(self: ControlPlane) -> None:
        self.layout.logs.mkdir(parents=True)
        raise RuntimeError("etcd exploded")

    monkeypatch.setattr(ControlPlane, "_start_phases", broken)
    with pytest.raises(PlaneError, match="etcd exploded"):
        ControlPlane(tmp_path / "plane", binaries=fake_binaries).start()
    assert (tmp_path / "plane" / "logs").is_dir()
