"""Data locations (`file://`, `pvc://`, `configmap://`) as local paths, shared by both engines.

Why one place: the operator mounts claims at `/data/pvc/<claim>` and ConfigMaps at `/data/configmap/<name>`
(builders/storage.py) and rewrites the URIs it hands to pods; local mode and the CLIs read the same URIs
under the same roots (overridable by environment), so a manifest means the same thing everywhere.

Why confinement lives here too: a location is a grant. `pvc://datasets/../../tmp/out` must not mean "anywhere
the pod can write", so every `pvc://` and `configmap://` path is normalised and must stay inside its claim or
ConfigMap, and in cluster mode (`file_root` set: the pod's mounted volumes) `file://` must stay inside the
mounts. The API refuses `..` in those URIs at admission with the same rule (`unsafe_uri_reason`); this module
refuses again when a path is actually resolved, whatever slipped past.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

POD_DATA_ROOT = "/data"
"""Where pods mount every data volume (`/data/pvc/<claim>`, `/data/configmap/<name>`); in cluster mode
`file://` must stay under it."""
PVC_ROOT_ENV = "QUORUM_PVC_ROOT"
DEFAULT_PVC_ROOT = "/data/pvc"
CONFIGMAP_ROOT_ENV = "QUORUM_CONFIGMAP_ROOT"
DEFAULT_CONFIGMAP_ROOT = "/data/configmap"
VOLUME_NAME = re.compile(r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")
"""Claim and ConfigMap names (DNS subdomains): never `.`/`..`, never a path."""
VOLUME_URI = r"^[a-z]+://[a-z0-9]([-.a-z0-9]*[a-z0-9])?(/.*)?$"
"""A `pvc://` or `configmap://` URI whose volume is a DNS subdomain (the admission half of the name check)."""
PARENT_SEGMENT_CEL = r"^(pvc|configmap|s3)://(.*/)?\.\.(/.*)?$"
"""The admission half of `unsafe_uri_reason`'s `..` check (an RE2 pattern, as CEL `matches` takes it)."""


class UnsupportedUri(ValueError):
    """A location no engine reads directly (e.g. `s3://`); the message says what is supported."""


class UnsafeUri(UnsupportedUri):
    """A location that escapes its root (`..`, an absolute path inside a claim, a file outside the mounts);
    a kind of unsupported location, so every caller that reports one reports the other."""


def default_pvc_root() -> Path:
    return Path(os.environ.get(PVC_ROOT_ENV, DEFAULT_PVC_ROOT))


def unsafe_uri_reason(uri: str) -> str | None:
    """Why a `pvc://`, `configmap://` or `s3://` URI may not be accepted, or None. `file://` is checked
    where its root is known (`resolve_uri`): a laptop's relative `file://../out` is the user's own business."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme == "file":
        return None
    if ".." in rest.split("/"):
        return f"{uri!r}: '..' segments are not allowed (a location stays inside its volume or bucket)"
    if scheme in ("pvc", "configmap"):
        volume = rest.partition("/")[0]
        if not VOLUME_NAME.match(volume):
            return f"{uri!r}: {volume!r} is not a {scheme} name (lowercase DNS subdomain)"
    return None


def split_volume_uri(uri: str) -> tuple[str, str]:
    """`pvc://<claim>/<path>` or `configmap://<name>/<key>` as (volume, normalised relative path)."""
    reason = unsafe_uri_reason(uri)
    if reason:
        raise UnsafeUri(reason)
    volume, _, path = uri.partition("://")[2].partition("/")
    normal = posixpath.normpath(path) if path else ""
    if normal in (".", ""):
        return volume, ""
    if normal.startswith("/"):
        raise UnsafeUri(f"{uri!r}: the path inside {volume!r} must be relative")
    return volume, normal


def confine(root: Path, relative: str, uri: str) -> Path:
    """`root/relative` (an absolute `relative` stands for itself), refused when it is not inside `root` once
    `..` and symlinks are resolved."""
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise UnsafeUri(f"{uri!r} resolves to {target}, outside {root}")
    return target


def _inside_a_volume(file_root: Path, path: Path, uri: str) -> Path:
    """`path` must lie in one mounted volume, `<file_root>/<pvc|configmap>/<name>/...`; the volume itself may be
    a symlink (the e2e pod runner's stand-in for a mount), nothing inside it may lead out of it."""
    lexical = Path(posixpath.normpath(path))
    inside = lexical.relative_to(file_root).parts if lexical.is_relative_to(file_root) else ()
    if len(inside) < 2:
        raise UnsafeUri(f"{uri!r} resolves to {lexical}, outside the mounted volumes under {file_root}")
    return confine(file_root / inside[0] / inside[1], posixpath.join(".", *inside[2:]), uri)


def resolve_uri(uri: str, *, base_dir: Path, pvc_root: Path | None = None, file_root: Path | None = None) -> Path:
    """A local path for `file://` (relative ones against `base_dir`, the manifest's directory),
    `pvc://<claim>/<path>` (under the PVC root) and `configmap://<name>/<key>` (under the ConfigMap root).

    `file_root` is set in cluster mode: `file://` must then point inside it (the pod's mounted volumes)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise UnsupportedUri(f"{uri!r} is not a URI (expected file://, pvc:// or configmap://)")
    if scheme == "file":
        path = Path(rest) if Path(rest).is_absolute() else base_dir / rest
        if file_root is not None:
            return _inside_a_volume(file_root, path, uri)
        return path.resolve()
    if scheme == "pvc":
        claim, path = split_volume_uri(uri)
        return confine((pvc_root or default_pvc_root()) / claim, path, uri)
    if scheme == "configmap":
        name, key = split_volume_uri(uri)
        return confine(Path(os.environ.get(CONFIGMAP_ROOT_ENV, DEFAULT_CONFIGMAP_ROOT)) / name, key, uri)
    raise UnsupportedUri(f"{uri!r}: only file://, pvc:// and configmap:// are read here; stage {scheme}:// data first")
