"""Data locations inside pods: `pvc://` and `configmap://` URIs become volumes plus `file://` paths, so the
engines only ever see files or object-store URIs."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from quorum.locations import POD_DATA_ROOT, split_volume_uri

DATA_ROOT = POD_DATA_ROOT


def volume_name(prefix: str, source: str) -> str:
    """A pod volume name (a DNS label) for a claim or ConfigMap: readable when the source name is a label
    already, else a hash (`my.claim` is a valid claim name but not a valid volume name)."""
    readable = f"{prefix}-{source}"
    if len(readable) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", readable):
        return readable
    return f"{prefix}-{hashlib.sha256(source.encode()).hexdigest()[:12]}"


@dataclass
class PodStorage:
    """Collects the volumes a pod needs while URIs are translated to in-pod paths."""

    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    mounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def localize(self, uri: str, *, writable: bool = False, field: str = "") -> str:
        """The URI the engine reads inside the pod; mounts the claim or ConfigMap it lives in. A location that
        cannot be one, or escapes its volume (`quorum.locations.split_volume_uri`), raises `ValueError` naming
        `field`, the spec field it came from."""
        try:
            return self._localize(uri, writable)
        except ValueError as error:
            raise ValueError(f"{field}: {error}" if field else str(error)) from error

    def _localize(self, uri: str, writable: bool) -> str:
        scheme = uri.partition("://")[0]
        if scheme == "pvc":
            claim, path = split_volume_uri(uri)
            volume = volume_name("pvc", claim)
            mount_path = f"{DATA_ROOT}/pvc/{claim}"
            read_only = not writable and self.mounts.get(volume, {}).get("readOnly", True)
            self.volumes[volume] = {"name": volume, "persistentVolumeClaim": {"claimName": claim}}
            self.mounts[volume] = {"name": volume, "mountPath": mount_path, "readOnly": read_only}
            return f"file://{mount_path}/{path}"
        if scheme == "configmap":
            if writable:
                raise ValueError(f"{uri}: a ConfigMap cannot be an output location")
            name, key = split_volume_uri(uri)
            volume = volume_name("cm", name)
            mount_path = f"{DATA_ROOT}/configmap/{name}"
            self.volumes[volume] = {"name": volume, "configMap": {"name": name}}
            self.mounts[volume] = {"name": volume, "mountPath": mount_path, "readOnly": True}
            return f"file://{mount_path}/{key}"
        return uri

    def volume_list(self) -> list[dict[str, Any]]:
        return list(self.volumes.values())

    def mount_list(self) -> list[dict[str, Any]]:
        return list(self.mounts.values())
