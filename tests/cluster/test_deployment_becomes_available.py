"""A Deployment applied to the plane is reconciled by the real controllers and its pods run on kwok nodes."""

from __future__ import annotations

import pytest

from e2e.kube import Kube
from e2e.nodes import DEFAULT_NODES
from tests.cluster.manifests import deployment

pytestmark = pytest.mark.cluster


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def test_deployment_reaches_available_with_ready_pods_on_fake_nodes(kube: Kube) -> None:
    kube.apply(deployment("web", replicas=3))

    kube.wait("deployment/web", "condition=Available", timeout=60)

    status = kube.get("deployment", "web")["status"]
    assert status["availableReplicas"] == status["readyReplicas"] == 3
    replica_sets = kube.get("replicasets", None, "--selector=app=web")["items"]
    assert [rs["metadata"]["ownerReferences"][0]["name"] for rs in replica_sets] == ["web"]
    pods = kube.get("pods", None, "--selector=app=web")["items"]
    assert len(pods) == 3
    assert all(p["status"]["phase"] == "Running" and _ready(p) for p in pods)
    assert {p["spec"]["nodeName"] for p in pods} <= {n.name for n in DEFAULT_NODES}
    assert all(p["status"].get("podIP") for p in pods)


def test_gpu_pods_are_scheduled_only_onto_the_gpu_node(kube: Kube) -> None:
    kube.apply(deployment("model", replicas=2, gpus=4))

    kube.wait("deployment/model", "condition=Available", timeout=60)

    pods = kube.get("pods", None, "--selector=app=model")["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {"kwok-gpu-0"}
