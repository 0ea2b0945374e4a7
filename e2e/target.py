"""What the CLI and the fixtures need from any cluster: the local plane or a kind cluster.

Both expose a kubeconfig and the same kubectl helpers, so a test written against `control_plane` runs
unchanged on either (QUORUM_E2E_CLUSTER picks which).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

from e2e.kube import Kube, Manifest

CRD_ESTABLISH_TIMEOUT = 60.0


class Cluster(abc.ABC):
    """A running (or startable) Kubernetes API with an admin kubeconfig."""

    name: str

    @property
    @abc.abstractmethod
    def kubeconfig(self) -> Path: ...

    @abc.abstractmethod
    def start(self) -> Cluster: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @property
    def kube(self) -> Kube:
        """kubectl as the cluster admin."""
        return Kube(self.kubeconfig)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.kube.kubectl(*args, input=input).stdout

    def apply(self, source: Path | str | Manifest | list[Manifest]) -> str:
        return self.kube.apply(source)

    def impersonate(self, service_account: str, namespace: str = "default") -> Kube:
        return self.kube.impersonate(service_account, namespace)

    def install_crds(self, *directories: Path) -> list[str]:
        """Apply every CRD in `directories` (server-side) and wait until the API serves them all."""
        files = [p for d in directories if d.is_dir() for p in sorted(d.glob("*.yaml")) if p.is_file()]
        for path in files:
            self.kube.apply(path)
        names = [
            line.strip()
            for path in files
            for line in self.kube.kubectl("get", "--filename", str(path), "--output=name").stdout.splitlines()
            if line.startswith("customresourcedefinition")
        ]
        for name in names:
            self.kube.wait(name, "condition=Established", timeout=CRD_ESTABLISH_TIMEOUT)
        return names

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kubeconfig": str(self.kubeconfig)}
