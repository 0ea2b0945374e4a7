"""The fake nodes kwok keeps alive: one CPU node and one with 8 NVIDIA GPUs.

Quorum schedules vLLM model servers that request `nvidia.com/gpu`, so the plane needs a node that
advertises that extended resource exactly as the NVIDIA device plugin would (capacity and allocatable), or
those pods would stay Pending. Nodes are created with their status (the API allows status on Node create);
kwok then owns them through the annotation below and keeps them Ready with lease heartbeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from e2e import versions

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_SELECTOR = f"{KWOK_ANNOTATION}=fake"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class FakeNode:
    name: str
    cpu: str = "16"
    memory: str = "64Gi"
    pods: str = "110"
    gpus: int = 0
    labels: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": self.pods, "ephemeral-storage": "100Gi"}
        labels = {
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/os": "linux",
            "kubernetes.io/hostname": self.name,
            "type": "kwok",
            **self.labels,
        }
        if self.gpus:
            resources[GPU_RESOURCE] = str(self.gpus)
            labels.update({"nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": str(self.gpus)})
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {KWOK_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "status": {
                "capacity": resources,
                "allocatable": resources,
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": versions.KUBERNETES,
                    "kubeProxyVersion": versions.KUBERNETES,
                    "kernelVersion": "fake",
                    "osImage": "kwok",
                    "containerRuntimeVersion": "kwok",
                },
            },
        }


DEFAULT_NODES = (
    FakeNode("kwok-cpu-0"),
    FakeNode(
        "kwok-gpu-0",
        cpu="64",
        memory="512Gi",
        gpus=8,
        labels={
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
            "node.kubernetes.io/instance-type": "gpu-8x",
        },
    ),
)
