"""A thin typed wrapper over the `helm` binary for the chart tests (rendering here, installing on the plane)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

CHARTS = REPO / "charts"
OPERATOR_CHART = CHARTS / "quorum"
CRDS_CHART = CHARTS / "quorum-crds"
KUBERNETES_VERSION = "1.35.0"
"""The Kubernetes version the rendered manifests are validated against (the local control plane's minor)."""


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""


@dataclass(frozen=True)
class Helm:
    """helm with its own config/cache/data homes (never the developer's) and an optional kubeconfig."""

    binary: Path
    home: Path
    kubeconfig: Path | None = None

    def run(self, *args: str, stdin: str | None = None, timeout: float = 180) -> str:
        command = [str(self.binary), *args]
        if self.kubeconfig is not None:
            command.append(f"--kubeconfig={self.kubeconfig}")
        env = {
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
            "HOME": str(self.home),  # kubectl's discovery cache (~/.kube/cache) goes here, not into the checkout
            "PATH": "/usr/bin:/bin",
        }
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def template(
        self,
        chart: Path,
        values: dict[str, Any] | None = None,
        *,
        release: str = "quorum",
        namespace: str = "quorum-system",
        extra: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """The rendered manifests, parsed; `values` go in on stdin as a values file."""
        args = ["template", release, str(chart), "--namespace", namespace, "--values", "-", *extra]
        rendered = self.run(*args, stdin=yaml.safe_dump(values or {}))
        return [d for d in yaml.safe_load_all(rendered) if d]

    def with_kubeconfig(self, kubeconfig: Path) -> Helm:
        return Helm(self.binary, self.home, kubeconfig)


def find(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
