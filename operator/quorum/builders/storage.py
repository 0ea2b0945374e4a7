"""Data locations inside pods: `pvc://` and `configmap://` URIs become volumes plus `file://` paths, so the
engines only ever see files or object-store URIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quorum.locations import POD_DATA_ROOT, split_volume_uri

DATA_ROOT = POD_DATA_ROOT


@dataclass
class PodStorage:
    """Collects the volumes a pod needs while URIs are translated to in-pod paths."""

    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    mounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def localize(self, uri: str, *, writable: bool = False) -> str:
        """The URI the engine reads inside the pod; mounts the claim or ConfigMap it lives in. The path is
        normalised and confined to its volume first (`quorum.locations.split_volume_uri` raises `UnsafeUri`)."""
        scheme = uri.partition("://")[0]
        if scheme == "pvc":
            claim, path = split_volume_uri(uri)
            volume = f"pvc-{claim}"[:63]
            mount_path = f"{DATA_ROOT}/pvc/{claim}"
            read_only = not writable and self.mounts.get(volume, {}).get("readOnly", True)
            self.volumes[volume] = {"name": volume, "persistentVolumeClaim": {"claimName": claim}}
            self.mounts[volume] = {"name": volume, "mountPath": mount_path, "readOnly": read_only}
            return f"file://{mount_path}/{path}"
        if scheme == "configmap":
            if writable:
                raise ValueError(f"{uri}: a ConfigMap cannot be an output location")
            name, key = split_volume_uri(uri)
            volume = f"cm-{name}"[:63]
            mount_path = f"{DATA_ROOT}/configmap/{name}"
            self.volumes[volume] = {"name": volume, "configMap": {"name": name}}
            self.mounts[volume] = {"name": volume, "mountPath": mount_path, "readOnly": True}
            return f"file://{mount_path}/{key}"
        return uri

    def volume_list(self) -> list[dict[str, Any]]:
        return list(self.volumes.values())

    def mount_list(self) -> list[dict[str, Any]]:
        return list(self.mounts.values())
