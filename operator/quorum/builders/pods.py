"""The pod template every Quorum process (workers, calibration, router) runs in: the `quorum` image, the
mounted engine config, hardened security context, writable /tmp only."""

from __future__ import annotations

from typing import Any

import yaml

from quorum.builders.meta import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT, TMP_MOUNT, TMP_VOLUME
from quorum.builders.storage import PodStorage

CONFIG_DIR = "/etc/quorum"
CONFIG_VOLUME = "config"
TERMINATION_LOG = "/dev/termination-log"

BASE_ENV: list[dict[str, Any]] = [
    {"name": "HOME", "value": "/tmp"},
    {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
    {"name": "PYTHONUNBUFFERED", "value": "1"},
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
]


def config_map(metadata: dict[str, Any], key: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap mounted at /etc/quorum: the resource's manifest, rewritten for the pod, under `key`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {key: yaml.safe_dump(manifest, sort_keys=False)},
    }


def quorum_pod_spec(
    *,
    image: str,
    args: list[str],
    config_map: str,
    storage: PodStorage,
    env: list[dict[str, Any]],
    service_account: str,
    automount_token: bool,
    restart_policy: str,
    env_from: list[dict[str, Any]] | None = None,
    extra_volumes: list[dict[str, Any]] | None = None,
    extra_mounts: list[dict[str, Any]] | None = None,
    ports: list[dict[str, Any]] | None = None,
    probes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod running `quorum <args>` with the engine config from `config_map` mounted at /etc/quorum.

    Failures surface as the termination message (`FallbackToLogsOnError`), which the operator mirrors into
    `status.lastError`.
    """
    container: dict[str, Any] = {
        "name": "quorum",
        "image": image,
        "command": ["quorum"],
        "args": args,
        "env": [*BASE_ENV, *env],
        "volumeMounts": [
            TMP_MOUNT,
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
            *storage.mount_list(),
            *(extra_mounts or []),
        ],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": CONTAINER_SECURITY_CONTEXT,
    }
    if env_from:
        container["envFrom"] = env_from
    if ports:
        container["ports"] = ports
    container.update(probes or {})
    return {
        "serviceAccountName": service_account,
        "automountServiceAccountToken": automount_token,
        "restartPolicy": restart_policy,
        "securityContext": POD_SECURITY_CONTEXT,
        "containers": [container],
        "volumes": [
            TMP_VOLUME,
            {"name": CONFIG_VOLUME, "configMap": {"name": config_map}},
            *storage.volume_list(),
            *(extra_volumes or []),
        ],
    }
