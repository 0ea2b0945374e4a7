"""Fixtures for the operator's cluster tests: the real operator, in-process, against the local plane."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.pod_runner import PodRunner, dump_runs
from quorum.api.resources import EnsembleRouter, SynthesisJob, load_one
from quorum.handlers.kube import Kube, load_config
from quorum.handlers.runner import OperatorOptions, run_operator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def sjob() -> SynthesisJob:
    """examples/synthesisjob.yaml: three served models, one external endpoint with an API key."""
    return load_one(EXAMPLES / "synthesisjob.yaml", SynthesisJob)


@pytest.fixture
def ensr() -> EnsembleRouter:
    """examples/ensemblerouter.yaml: four served models, the router token named by the user."""
    return load_one(EXAMPLES / "ensemblerouter.yaml", EnsembleRouter)


MANUAL_PODS = {"quorum.dev/e2e-pod-status": "manual"}
"""kwok leaves pods with this annotation alone, so the test decides their fate (see e2e/pods.py)."""
QUORUM_PODS = "app.kubernetes.io/managed-by=quorum"


@contextmanager
def operator_running(options: OperatorOptions) -> Iterator[None]:
    """The operator as `quorum operator run` runs it, in a thread with its own event loop."""
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(run_operator(options, stop_flag=stop, ready_flag=ready))
        except BaseException as error:  # surfaced in the test thread
            errors.append(error)
            ready.set()

    thread = threading.Thread(target=main, name="quorum-operator", daemon=True)
    thread.start()
    assert ready.wait(60), "operator did not start"
    if errors:
        raise errors[0]
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture
def api(kubeconfig: Path) -> Kube:
    """Fast reads for polling (kubectl per poll would dominate the test time)."""
    return Kube(load_config(str(kubeconfig)))


@pytest.fixture
def start_operator(kubeconfig: Path, namespace: str) -> Callable[..., Any]:
    """Start the operator watching the test's namespace: `with start_operator(manual_pods=True): ...`."""

    def start(*, manual_pods: bool = False) -> Any:
        return operator_running(
            OperatorOptions(
                namespaces=[namespace],
                kubeconfig=str(kubeconfig),
                image="quorum:test",
                pod_annotations=MANUAL_PODS if manual_pods else {},
            )
        )

    return start


@pytest.fixture
def pod_runner(kubeconfig: Path, namespace: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PodRunner]:
    """Runs every Quorum pod of the test's namespace as a local process (see e2e/pod_runner.py); start the
    operator with `manual_pods=True` so kwok leaves those pods to it. Prints every pod's log on failure."""
    runner = PodRunner(kubeconfig, namespace, tmp_path / "node")
    with runner.serving(QUORUM_PODS):
        yield runner
    report = getattr(request.node, "rep_call", None)
    if runner.errors or (report is not None and report.failed):
        print(dump_runs(runner))


@pytest.fixture
def host_claim(kube: Any, namespace: str, tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`host_claim("results")` creates a PersistentVolumeClaim bound to a hostPath PersistentVolume in a
    temporary directory (what the pod runner mounts) and returns that directory."""
    volumes: list[str] = []

    def create(claim: str) -> Path:
        path = tmp_path / "volumes" / claim
        path.mkdir(parents=True)
        volume = f"{namespace}-{claim}"
        volumes.append(volume)
        storage = {"storage": "1Gi"}
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {
                    "capacity": storage,
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "hostPath": {"path": str(path)},
                    "claimRef": {"namespace": namespace, "name": claim},
                },
            }
        )
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": storage},
                },
            }
        )
        return path

    yield create
    for volume in volumes:
        kube.kubectl("delete", "persistentvolume", volume, "--wait=false", "--ignore-not-found", check=False)
