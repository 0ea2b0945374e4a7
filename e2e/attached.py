"""QUORUM_E2E_CLUSTER=up: run the tests against the plane that `make cluster-up` keeps running.

Saves the few seconds of a plane start on every test run while iterating; the tests still get a namespace
each, and the plane is left running afterwards (stop it with `make cluster-down`).
"""

from __future__ import annotations

from pathlib import Path

from e2e.target import Cluster


class AttachedCluster(Cluster):
    def __init__(self, kubeconfig: Path, name: str = "attached") -> None:
        self._kubeconfig = kubeconfig
        self.name = name

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    def start(self) -> AttachedCluster:
        if not self._kubeconfig.is_file():
            raise RuntimeError(f"no kubeconfig at {self._kubeconfig}: run `make cluster-up` first")
        self.kube.kubectl("get", "--raw=/readyz")
        return self

    def stop(self) -> None:
        """Not ours to stop."""
