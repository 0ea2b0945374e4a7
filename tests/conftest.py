"""Shared fixtures. Component-specific fixtures live in the plugins listed here."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The real local control plane (control_plane, kubeconfig, namespace, kube): see e2e/README.md.
pytest_plugins = ["e2e.fixtures", "tests.charts.fixtures"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
