"""The image fixtures: the project's images (operator, worker and the optional torch variant), (re)built from
images/Dockerfile with podman for this session.

A cold build takes minutes (see images/README.md), so image tests run only when the images already exist
(`make image`; the session then rebuilds, incrementally, every variant that exists, so the tests see the current
source) or when QUORUM_IMAGE_TESTS=1 asks for the operator and worker images from scratch. Otherwise they are
skipped, with the reason. The torch variant is rebuilt and tested only when it was built (`images/build.sh torch`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from quorum import __version__
from tests.conftest import REPO

# The variants images/build.sh builds, with the names it gives them.
IMAGES = {
    "operator": f"localhost/quorum-operator:{__version__}",
    "worker": f"localhost/quorum:{__version__}",
    "torch": f"localhost/quorum-torch:{__version__}",
}
DEFAULT_VARIANTS = ("operator", "worker")
BUILD_ENV = "QUORUM_IMAGE_TESTS"
PODMAN = [str(REPO / "images" / "podman.sh")]
BUILD_SCRIPT = REPO / "images" / "build.sh"
BUILD_TIMEOUT_S = 1800
# What the operator's pods do to the container: read-only root, /tmp the only writable place, no network.
HARDENED = ["--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none", "--cap-drop", "ALL"]
HARDENED += ["--security-opt", "no-new-privileges"]


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check)


def image_size_mb(image: str) -> float:
    return int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout) / 1e6


def distributions(image: str) -> set[str]:
    """Normalised (PEP 503) names of the Python distributions installed in the image, read as the unprivileged
    user."""
    script = "\n".join(
        [
            "import importlib.metadata as m, json, re",
            "print(json.dumps(sorted({re.sub(r'[-_.]+', '-', d.name).lower() for d in m.distributions()})))",
        ]
    )
    result = podman("run", *HARDENED, "--entrypoint", "python", image, "-c", script, timeout=120)
    return set(json.loads(result.stdout.splitlines()[-1]))


def _why_not_runnable() -> str | None:
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install podman debootstrap runc)"
    if os.geteuid() != 0:
        return "the image build needs rootful podman and debootstrap (run as root)"
    return None


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    """Variant → image, for the variants this session (re)built."""
    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    existing = [v for v, image in IMAGES.items() if podman("image", "exists", image, check=False).returncode == 0]
    variants = existing or (list(DEFAULT_VARIANTS) if os.environ.get(BUILD_ENV) == "1" else [])
    if not variants:
        pytest.skip(f"no Quorum image is built: run `make image`, or set {BUILD_ENV}=1 to build them in the tests")
    started = time.monotonic()
    build = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *variants], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    assert build.returncode == 0, f"images/build.sh failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    print(f"\nimages: {', '.join(variants)} {'re' if existing else ''}built in {time.monotonic() - started:.0f} s")
    return {v: IMAGES[v] for v in variants}


def _variant(built: dict[str, str], variant: str) -> str:
    if variant not in built:
        pytest.skip(f"{IMAGES[variant]} is not built (images/build.sh {variant})")
    return built[variant]


@pytest.fixture(scope="session")
def image(built_images: dict[str, str]) -> str:
    """The worker/router image: synthesis workers, calibration and the router."""
    return _variant(built_images, "worker")


@pytest.fixture(scope="session")
def operator_image(built_images: dict[str, str]) -> str:
    return _variant(built_images, "operator")


@pytest.fixture(scope="session")
def torch_image(built_images: dict[str, str]) -> str:
    return _variant(built_images, "torch")
