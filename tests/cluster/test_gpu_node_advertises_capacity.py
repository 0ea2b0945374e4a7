"""The plane has a Ready node that advertises NVIDIA GPUs like the device plugin does, and enforces them."""

from __future__ import annotations

import pytest

from e2e.kube import Kube, eventually
from e2e.nodes import GPU_RESOURCE
from tests.cluster.manifests import deployment

pytestmark = pytest.mark.cluster


def test_gpu_node_is_ready_with_eight_gpus(kube: Kube) -> None:
    nodes = kube.get("nodes", None, f"--selector={GPU_RESOURCE}.present=true")["items"]

    assert [n["metadata"]["name"] for n in nodes] == ["kwok-gpu-0"]
    status = nodes[0]["status"]
    assert status["capacity"][GPU_RESOURCE] == "8"
    assert status["allocatable"][GPU_RESOURCE] == "8"
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready["Ready"] == "True"


def test_pod_asking_for_more_gpus_than_any_node_has_stays_pending(kube: Kube) -> None:
    kube.apply(deployment("too-big", replicas=1, gpus=9))

    def unschedulable() -> bool:
        pods = kube.get("pods", None, "--selector=app=too-big")["items"]
        return bool(pods) and any(
            c["type"] == "PodScheduled" and c["reason"] == "Unschedulable"
            for c in pods[0]["status"].get("conditions", [])
        )

    eventually(unschedulable, timeout=30, what="the scheduler to report the pod Unschedulable")
    pod = kube.get("pods", None, "--selector=app=too-big")["items"][0]
    assert pod["status"]["phase"] == "Pending"
    assert "nvidia.com/gpu" in pod["status"]["conditions"][0]["message"]
