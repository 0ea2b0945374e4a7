"""pytest plugin: a real Kubernetes API for tests marked `cluster` (register with pytest_plugins).

Fixtures:
- `control_plane` (session): a started cluster (e2e.target.Cluster) with crds/*.yaml (and the harness's own
  tests/cluster/crds/*.yaml) installed and Established. Started on first use only, so unit-only runs never
  pay for it; stopped at session end whatever the tests did.
- `kubeconfig` (session): path of its admin kubeconfig (for kopf, the Python client, subprocesses).
- `namespace` (function): a fresh namespace per test, whose default service account exists; deleted after
  the test (without waiting); when the test failed, its pods and events are printed first.
- `kube` (function): kubectl bound to the admin kubeconfig and that namespace (e2e.kube.Kube).
- `fake_kubelets` (function): skips the test unless pods run on kwok (it sets pod status by hand).

$QUORUM_E2E_CLUSTER picks the cluster: `local` (default: our own plane under .cache/e2e/session-<pid>),
`up` (the plane of `make cluster-up`, left running), or `kind` (see e2e/kind.py).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e import paths
from e2e.attached import AttachedCluster
from e2e.kind import KindCluster
from e2e.kube import Kube, eventually
from e2e.plane import ControlPlane, reap_stale_sessions
from e2e.target import Cluster

CLUSTER_ENV = "QUORUM_E2E_CLUSTER"
CRDS_DIR = paths.REPO_ROOT / "crds"
# Installed into every test cluster: the product's CRDs, and tiny ones that the harness's own tests use.
CRD_DIRS = (CRDS_DIR, paths.REPO_ROOT / "tests" / "cluster" / "crds")
NAMESPACE_LABEL = "quorum.dev/e2e"
_started: list[Cluster] = []


def make_cluster(mode: str | None = None) -> Cluster:
    """The cluster $QUORUM_E2E_CLUSTER asks for, not yet started."""
    mode = (mode if mode is not None else os.environ.get(CLUSTER_ENV, "")).strip().lower() or "local"
    if mode == "local":
        sessions = paths.state_root() / "e2e"
        sessions.mkdir(parents=True, exist_ok=True)
        reap_stale_sessions(sessions)
        return ControlPlane(sessions / f"session-{os.getpid()}", crd_dirs=CRD_DIRS)
    if mode == "up":
        return AttachedCluster(paths.cli_cluster_dir() / "kubeconfig", name="cluster-up")
    if mode == "kind":
        return KindCluster()
    raise pytest.UsageError(f"{CLUSTER_ENV}={mode!r}: expected local, up or kind")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[Cluster]:
    cluster = make_cluster()
    cluster.start()  # a failed start cleans up after itself and keeps the logs for inspection
    _started.append(cluster)
    try:
        cluster.install_crds(*CRD_DIRS)  # idempotent; the local plane already has them
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: Cluster) -> Path:
    return control_plane.kubeconfig


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].rstrip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(control_plane: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    admin = control_plane.kube
    name = _namespace_name(request.node.name)
    admin.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}},
        }
    )
    # Pods are rejected until the service-account controller has created `default` in a new namespace.
    eventually(
        lambda: admin.in_namespace(name).exists("serviceaccount", "default"),
        timeout=30,
        what=f"service account default in {name}",
    )
    yield name
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        _print_diagnostics(admin.in_namespace(name))
    admin.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def kube(control_plane: Cluster, namespace: str) -> Kube:
    return control_plane.kube.in_namespace(namespace)


@pytest.fixture
def fake_kubelets(control_plane: Cluster) -> None:
    """Skip on kind: the test relies on kwok (pods whose status the test sets by hand, see e2e.pods)."""
    if isinstance(control_plane, KindCluster):
        pytest.skip("needs kwok's fake kubelets; kind runs real ones")


def _print_diagnostics(kube: Kube) -> None:
    for args in (("get", "all", "--output=wide"), ("get", "events", "--sort-by=.lastTimestamp")):
        result = kube.kubectl(*args, check=False)
        print(f"$ kubectl -n {kube.namespace} {' '.join(args)}\n{result.stdout}{result.stderr}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    """Keep each phase's report on the item, so fixtures can tell in teardown whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per cluster the session used, with the start-up phases of a local plane."""
    for cluster in _started:
        timings: dict[str, float] = getattr(cluster, "timings", {})
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in timings.items() if k != "total")
        started = f": started in {timings['total']:.1f}s ({phases})" if timings else ""
        terminalreporter.write_line(f"e2e cluster {cluster.name} [{type(cluster).__name__}]{started}")
