"""Small manifests the cluster tests apply: plain dicts, as the operator's own builders will produce."""

from __future__ import annotations

from typing import Any

# Never pulled under kwok; small and real, so the same tests also pass on kind.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
BUSYBOX_IMAGE = "busybox:1.37"


def deployment(name: str, replicas: int = 2, gpus: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": PAUSE_IMAGE}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def indexed_job(
    name: str, completions: int, *, backoff_limit: int = 0, pod_annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed",
            "completions": completions,
            "parallelism": completions,
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": {"job": name}, "annotations": pod_annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "worker", "image": BUSYBOX_IMAGE, "command": ["true"]}],
                },
            },
        },
    }
