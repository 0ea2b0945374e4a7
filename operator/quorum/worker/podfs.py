"""Paths as a pod sees them.

In a pod every path is what the pod spec says (`/etc/quorum/...`, `/data/pvc/<claim>/...`,
`/dev/termination-log`). `QUORUM_FS_ROOT`, unset in real pods, names a directory that stands in for the
container's root file system: the e2e pod runner (a kubelet played on the test machine) materializes volumes
under it and sets it, so the very same code paths run on a laptop without touching `/etc` or `/data`.
"""

from __future__ import annotations

import os
from pathlib import Path

FS_ROOT_ENV = "QUORUM_FS_ROOT"
TERMINATION_LOG = "/dev/termination-log"
"""Where the container writes its termination message (the pod templates' `terminationMessagePath`)."""
TERMINATION_MESSAGE_LIMIT = 4096
"""The kubelet keeps at most 4 KiB of the message."""


def fs_root() -> Path | None:
    root = os.environ.get(FS_ROOT_ENV)
    return Path(root) if root else None


def pod_path(path: str | Path) -> Path:
    """The file behind a pod path: itself in a pod, under `QUORUM_FS_ROOT` when one is set."""
    path = Path(path)
    root = fs_root()
    if root is None or not path.is_absolute() or path.is_relative_to(root):
        return path
    return root / path.relative_to(path.anchor)


def write_termination_message(text: str) -> None:
    """What `kubectl describe pod` and the operator show for a finished container (kept within 4 KiB)."""
    data = text.encode()[-TERMINATION_MESSAGE_LIMIT:]
    target = pod_path(TERMINATION_LOG)
    if target.is_file():  # the kubelet creates it; a worker run by hand has none and keeps its exit code
        target.write_bytes(data)
