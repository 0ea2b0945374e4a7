"""The pod runner rewrites what a bind mount and a port-forward would change, and nothing else."""

from __future__ import annotations

from pathlib import Path

from e2e.pod_runner import container_argv

CONTAINER = {
    "command": ["quorum"],
    "args": ["router", "serve", "--config", "/etc/quorum/er.yaml", "--host", "0.0.0.0", "--port", "8000"],
    "volumeMounts": [{"name": "config", "mountPath": "/etc/quorum"}, {"name": "tmp", "mountPath": "/tmp"}],
}


def test_mounted_paths_and_ports_are_mapped_to_the_stand_in_root_and_loopback() -> None:
    argv = container_argv(CONTAINER, {"quorum": "/opt/venv/bin/quorum"}, {8000: 41234}, Path("/run/pod"))
    assert argv == [
        "/opt/venv/bin/quorum", "router", "serve", "--config", "/run/pod/etc/quorum/er.yaml",
        "--host", "127.0.0.1", "--port", "41234",
    ]  # fmt: skip


def test_the_local_executable_is_never_remapped_even_under_a_mount_path() -> None:
    executable = "/tmp/checkout/.venv/bin/quorum"  # a CI clone under /tmp while the pod mounts /tmp
    argv = container_argv(CONTAINER, {"quorum": executable}, {}, Path("/run/pod"))
    assert argv[0] == executable
