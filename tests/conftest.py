"""Shared fixtures. Component-specific fixtures live in the plugins listed here: the e2e plugin provides
control_plane, kubeconfig, namespace and kube; the charts plugin provides helm."""

from pathlib import Path

import pytest

pytest_plugins = ["e2e.fixtures", "tests.charts.fixtures"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
