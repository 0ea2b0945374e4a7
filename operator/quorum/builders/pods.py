"""The pod template every Quorum process (workers, calibration, router) runs in: the `quorum` image, the
mounted engine config, hardened security context, writable /tmp only."""

from __future__ import annotations

import hashlib
import json
import threading
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


RENDERED_LIMIT = 4096
"""Rendered manifests kept (about 2 KB each); the memo starts over when it is full."""
_rendered: dict[bytes, str] = {}
_rendered_lock = threading.Lock()


def render_yaml(manifest: dict[str, Any]) -> str:
    """`yaml.safe_dump` of the manifest, remembered by a digest of its JSON. Every reconcile builds its
    ConfigMap to compare it with the one applied, and the pure-Python YAML emitter was a fifth of the
    operator's CPU at 1,000 SynthesisJobs (bench/operator_scale.py); the JSON encoder is a hundred times
    faster. JSON keeps the key order, which the YAML keeps too (`sort_keys=False`), so equal digests mean
    equal text."""
    digest = hashlib.blake2b(json.dumps(manifest, separators=(",", ":")).encode(), digest_size=20).digest()
    with _rendered_lock:
        text = _rendered.get(digest)
    if text is None:
        text = yaml.safe_dump(manifest, sort_keys=False)
        with _rendered_lock:
            if len(_rendered) >= RENDERED_LIMIT:
                _rendered.clear()
            _rendered[digest] = text
    return text


def config_map(metadata: dict[str, Any], key: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The ConfigMap mounted at /etc/quorum: the resource's manifest, rewritten for the pod, under `key`."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {key: render_yaml(manifest)},
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
