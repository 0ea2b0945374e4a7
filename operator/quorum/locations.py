"""Data locations (`file://`, `pvc://`, `configmap://`) as local paths, shared by both engines.

Why one place: the operator mounts claims at `/data/pvc/<claim>` and ConfigMaps at `/data/configmap/<name>`
(builders/storage.py) and rewrites the URIs it hands to pods; local mode and the CLIs read the same URIs
under the same roots (overridable by environment), so a manifest means the same thing everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

PVC_ROOT_ENV = "QUORUM_PVC_ROOT"
DEFAULT_PVC_ROOT = "/data/pvc"
CONFIGMAP_ROOT_ENV = "QUORUM_CONFIGMAP_ROOT"
DEFAULT_CONFIGMAP_ROOT = "/data/configmap"


class UnsupportedUri(ValueError):
    """A location no engine reads directly (e.g. `s3://`); the message says what is supported."""


def default_pvc_root() -> Path:
    return Path(os.environ.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT))


def resolve_uri(uri: str, *, base_dir: Path, pvc_root: Path | None = None) -> Path:
    """A local path for `file://` (relative ones against `base_dir`, the manifest's directory),
    `pvc://<claim>/<path>` (under the PVC root) and `configmap://<name>/<key>` (under the ConfigMap root)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise UnsupportedUri(f"{uri!r} is not a URI (expected file://, pvc:// or configmap://)")
    if scheme == "file":
        path = Path(rest)
        return path if path.is_absolute() else (base_dir / path).resolve()
    if scheme == "pvc":
        return (pvc_root or default_pvc_root()) / rest
    if scheme == "configmap":
        return Path(os.environ.get(CONFIGMAP_ROOT_ENV, DEFAULT_CONFIGMAP_ROOT)) / rest
    raise UnsupportedUri(f"{uri!r}: only file://, pvc:// and configmap:// are read here; stage {scheme}:// data first")
