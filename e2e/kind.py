"""QUORUM_E2E_CLUSTER=kind: run the same fixtures against a kind cluster instead of the local plane.

kind needs a container engine, which our CI machines lack, so this path is deliberately thin: reuse the
cluster named $QUORUM_E2E_KIND_NAME (default quorum-e2e) or create it with the `kind` CLI, export its
kubeconfig to .cache/kind/kubeconfig, and advertise 8 `nvidia.com/gpu` on its first node the way the
Kubernetes docs show for extended resources (a status patch), so GPU-requesting pods schedule there too.
A cluster we created is deleted at the end unless $QUORUM_E2E_KIND_KEEP is set. On kind, pods run for real:
images must be pullable and Job containers must exit by themselves.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from e2e import paths
from e2e.nodes import GPU_RESOURCE
from e2e.target import Cluster

GPUS = 8


class KindCluster(Cluster):
    def __init__(self, name: str | None = None, workdir: Path | None = None) -> None:
        self.name = name or os.environ.get("QUORUM_E2E_KIND_NAME", "quorum-e2e")
        self.workdir = workdir or paths.state_root() / "kind"
        self.created = False

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def _kind(self, *args: str) -> str:
        kind = shutil.which("kind")
        if kind is None:
            raise RuntimeError("QUORUM_E2E_CLUSTER=kind needs the `kind` CLI on the PATH (and Docker or podman)")
        return subprocess.run([kind, *args], check=True, capture_output=True, text=True).stdout

    def start(self) -> KindCluster:
        existing = self._kind("get", "clusters").split()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.name in existing:
            self._kind("export", "kubeconfig", "--name", self.name, "--kubeconfig", str(self.kubeconfig))
        else:
            self._kind(
                "create",
                "cluster",
                "--name",
                self.name,
                "--kubeconfig",
                str(self.kubeconfig),
                "--wait",
                "180s",
            )
            self.created = True
        self._advertise_gpus()
        return self

    def _advertise_gpus(self) -> None:
        node = self.kube.kubectl("get", "nodes", "--output=jsonpath={.items[0].metadata.name}").stdout
        patch = [{"op": "add", "path": f"/status/capacity/{GPU_RESOURCE.replace('/', '~1')}", "value": str(GPUS)}]
        self.kube.kubectl("patch", "node", node, "--subresource=status", "--type=json", f"--patch={json.dumps(patch)}")

    def stop(self) -> None:
        if self.created and not os.environ.get("QUORUM_E2E_KIND_KEEP"):
            self._kind("delete", "cluster", "--name", self.name)
