"""The `image` fixture: the project's image, (re)built from images/Dockerfile with podman for this session.

A cold build takes minutes (see images/README.md), so image tests run only when the image already exists
(`make image`; the fixture then rebuilds incrementally, so the tests see the current source) or when
QUORUM_IMAGE_TESTS=1 asks for a build from scratch. Otherwise they are skipped, with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from quorum import __version__
from tests.conftest import REPO

IMAGE = f"localhost/quorum:{__version__}"
BUILD_ENV = "QUORUM_IMAGE_TESTS"
PODMAN = [str(REPO / "images" / "podman.sh")]
BUILD_SCRIPT = REPO / "images" / "build.sh"
BUILD_TIMEOUT_S = 1800


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check)


def _why_not_runnable() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman debootstrap)"
    if os.geteuid() != 0:
        return "the image build needs rootful podman and debootstrap (run as root)"
    return None


@pytest.fixture(scope="session")
def image() -> str:
    reason = _why_not_runnable()
    if reason:
        pytest.skip(reason)
    exists = podman("image", "exists", IMAGE, check=False).returncode == 0
    if not exists and os.environ.get(BUILD_ENV) != "1":
        pytest.skip(f"{IMAGE} is not built: run `make image`, or set {BUILD_ENV}=1 to build it in the tests")
    started = time.monotonic()
    build = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    assert build.returncode == 0, f"images/build.sh failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    print(f"\nimage: {IMAGE} {'re' if exists else ''}built in {time.monotonic() - started:.0f} s")
    return IMAGE
