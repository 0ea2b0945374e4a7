"""The torch variant (built only by `images/build.sh torch`) runs the sentence-transformers engine the worker
image refuses: offline, as the unprivileged user, on a read-only root filesystem."""

from __future__ import annotations

import pytest

from tests.images.conftest import HARDENED, image_size_mb, podman

pytestmark = [pytest.mark.image, pytest.mark.slow]


def test_sentence_transformers_engine_loads_offline_as_non_root(torch_image: str) -> None:
    script = (
        "import os\n"
        "from quorum.embedding import load_embedder\n"
        "embedder = load_embedder('packaged', 'sentence-transformers')\n"
        "print(os.getuid(), embedder.engine, embedder.encode(['a sentence']).shape[1])\n"
    )
    result = podman("run", *HARDENED, "--entrypoint", "python", torch_image, "-c", script, timeout=300)
    assert result.stdout.split()[-3:] == ["1000", "sentence-transformers", "384"]
    print(f"\n{torch_image}: {image_size_mb(torch_image):.0f} MB")
