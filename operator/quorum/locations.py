"""Data locations (`file://`, `pvc://`, `configmap://` as local paths; `s3://` through fsspec), shared by both
engines.

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

import contextlib
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
DATA_SCHEMES = ("pvc", "configmap", "s3", "file")
"""The schemes a data location may use: what `location` reads and writes. The API refuses every other one at
admission (`DATA_SCHEME_CEL`), so no accepted location fails only when a pod first reads it."""
DATA_SCHEME_CEL = rf"^({'|'.join(DATA_SCHEMES)})://"
DATA_SCHEMES_TEXT = ", ".join(f"{scheme}://" for scheme in DATA_SCHEMES[:-1]) + f" or {DATA_SCHEMES[-1]}://"
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


# --- object stores ---------------------------------------------------------------------------------------------
#
# Seeds, decontamination sets and every output (dataset, rejected, manifest, report, shard journals) go through
# `Location`: one small interface over fsspec, so the engines write `s3://bucket/prefix/` the way they write a
# directory. Credentials are the standard AWS variables: in pods the builders inject them from
# `output.credentialsSecretRef` (envFrom), in local mode they are the caller's environment.

OBJECT_STORE_SCHEMES = frozenset({"s3"})
ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
"""An S3-compatible server other than AWS (MinIO, SeaweedFS, Ceph): the endpoint comes from these."""


class StorageAccessError(PermissionError):
    """The object store refused us (wrong or missing credentials, no such bucket); the message names the
    bucket and where the credentials come from."""


def s3_filesystem() -> Any:
    """An s3fs file system configured from the standard AWS environment variables."""
    import s3fs

    client_kwargs: dict[str, str] = {}
    endpoint = next((os.environ[name] for name in ENDPOINT_ENVS if os.environ.get(name)), None)
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client_kwargs["region_name"] = region
    return s3fs.S3FileSystem(
        key=os.environ.get("AWS_ACCESS_KEY_ID") or None,
        secret=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
        token=os.environ.get("AWS_SESSION_TOKEN") or None,
        client_kwargs=client_kwargs,
        skip_instance_cache=True,
        use_listings_cache=False,
    )


@dataclass(frozen=True)
class Location:
    """A file or directory on the local disk or in an object store. `path` is what the fsspec file system
    expects (`bucket/key` for S3); `uri` is how messages name it."""

    fs: Any
    path: str
    uri: str

    @classmethod
    def local(cls, path: str | Path) -> Location:
        from fsspec.implementations.local import LocalFileSystem

        resolved = str(Path(path).absolute())
        return cls(LocalFileSystem(), resolved, resolved)

    @property
    def is_local(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return "file" in protocols

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def parent(self) -> Location:
        return Location(self.fs, self.path.rstrip("/").rsplit("/", 1)[0], self.uri.rstrip("/").rsplit("/", 1)[0])

    def __truediv__(self, name: str) -> Location:
        return Location(self.fs, f"{self.path.rstrip('/')}/{name}", f"{self.uri.rstrip('/')}/{name}")

    def __str__(self) -> str:
        return self.uri

    def local_path(self) -> Path:
        if not self.is_local:
            raise UnsupportedUri(f"{self.uri} is not on the local file system")
        return Path(self.path)

    def exists(self) -> bool:
        return self._guard(lambda: self.fs.exists(self.path))

    def read_bytes(self) -> bytes:
        try:
            return self._guard(lambda: self.fs.cat_file(self.path))
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri} does not exist") from None

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes) -> None:
        """Whole-object write: a reader sees the old content or the new, never a part (a local file is written
        beside the target, fsynced and renamed; an object-store PUT is atomic by itself)."""
        if self.is_local:
            _write_local_atomic(Path(self.path), data)
        else:
            self._guard(lambda: self.fs.pipe_file(self.path, data))

    def delete(self) -> None:
        if self.exists():
            self._guard(lambda: self.fs.rm_file(self.path))

    def delete_tree(self) -> None:
        if self.exists():
            self._guard(lambda: self.fs.rm(self.path, recursive=True))

    def children(self, pattern: str = "*") -> list[Location]:
        """Entries matching a glob below this directory, sorted by name."""
        prefix = self.path.rstrip("/")
        found = self._guard(lambda: self.fs.glob(f"{prefix}/{pattern}"))
        return [self / str(found_path)[len(prefix) + 1 :] for found_path in sorted(found)]

    def upload_tree(self, folder: Path) -> None:
        """Copy a local folder's files below this location (reports are drawn locally, then published)."""
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            (self / file.relative_to(folder).as_posix()).write_bytes(file.read_bytes())

    def check_access(self) -> None:
        """Fail early, naming the bucket, when the credentials cannot list this prefix (a prefix that does not
        exist yet is fine: the run creates it). Listing the prefix, not the bucket, suits policies that grant
        one prefix only."""
        if self.is_local:
            return
        with contextlib.suppress(FileNotFoundError):
            self._guard(lambda: self.fs.ls(self.path, detail=False))

    def _guard(self, operation: Any) -> Any:
        if self.is_local:
            return operation()
        try:
            return operation()
        except FileNotFoundError:
            raise
        except PermissionError as error:
            raise StorageAccessError(
                f"{self.uri}: access to bucket {self.bucket!r} was refused ({error}); check the credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: from output.credentialsSecretRef in pods, the "
                "environment in local mode)"
            ) from None
        except OSError as error:
            raise StorageAccessError(f"{self.uri}: bucket {self.bucket!r}: {error}") from None


def _write_local_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with temp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def location(uri: str, *, base_dir: Path, pvc_root: Path | None = None, file_root: Path | None = None) -> Location:
    """Where a data URI lives: `s3://bucket/key` in the object store, anything else on the local disk
    (normalised and confined to its root by `resolve_uri`)."""
    scheme, sep, rest = uri.partition("://")
    if sep and scheme in OBJECT_STORE_SCHEMES:
        if not rest.split("/", 1)[0]:
            raise UnsupportedUri(f"{uri!r}: an s3:// URI needs a bucket (s3://<bucket>/<prefix>)")
        return Location(s3_filesystem(), rest.rstrip("/") or rest, uri.rstrip("/"))
    return Location.local(resolve_uri(uri, base_dir=base_dir, pvc_root=pvc_root, file_root=file_root))


def as_location(target: str | Path | Location) -> Location:
    """Callers (tests, the CLI) may pass a plain path or a URI string where a location is meant."""
    if isinstance(target, Location):
        return target
    if isinstance(target, str) and "://" in target:
        return location(target, base_dir=Path.cwd())
    return Location.local(target)
