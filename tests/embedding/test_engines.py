"""The ONNX Runtime engine is the sentence-transformers model: same vectors (cosine ≥ 0.9999 on 1,000 texts), same
dimension, read from the model; and `shared_embedder` gives dedup and routing the one instance."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.embedding import ONNXRUNTIME, SENTENCE_TRANSFORMERS, EngineUnavailable, load_embedder, shared_embedder
from quorum.gra import dedup
from quorum.routing import embedding as routing_embedding


def _texts() -> list[str]:
    rng = np.random.default_rng(3)
    words = ["route", "the", "question", "to", "a", "model", "that", "knows", "its", "cluster", "well", "über", "数学"]
    return [f"{i}: " + " ".join(rng.choice(words, size=int(rng.integers(1, 300)))) for i in range(1000)]


def test_onnx_vectors_agree_with_sentence_transformers_on_1000_texts() -> None:
    texts = _texts()
    onnx = load_embedder("packaged", ONNXRUNTIME)
    reference = load_embedder("packaged", SENTENCE_TRANSFORMERS)
    assert onnx.dimension == reference.dimension == 384
    cosine = (onnx.encode(texts) * reference.encode(texts)).sum(axis=1)
    assert cosine.min() >= 0.9999


def test_dedup_and_routing_share_one_embedder_instance() -> None:
    assert dedup.shared_embedder is routing_embedding.shared_embedder is shared_embedder
    assert shared_embedder("packaged") is shared_embedder("packaged")
    assert shared_embedder("packaged").engine == ONNXRUNTIME


def test_an_engine_missing_here_is_refused_at_start_naming_the_field_and_the_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker/router image has no torch: a sentence-transformers spec stops with the field and the way out,
    not with an ImportError (even when another spec of this process already loaded that engine)."""
    spec = EnsembleRouterSpec.model_validate(
        {
            "models": [{"name": "a", "endpoint": {"url": "http://127.0.0.1:1/v1", "model": "a"}}],
            "calibration": {"dataset": {"uri": "file://unused.jsonl"}, "clusters": 2},
            "embedding": {"engine": SENTENCE_TRANSFORMERS},
        }
    )
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # what `import` meets without the package
    with pytest.raises(EngineUnavailable, match=r"^spec\.embedding\.engine: sentence-transformers: .*quorum-torch"):
        routing_embedding.spec_embedder(spec)
    with pytest.raises(EngineUnavailable, match="quorum-torch"):
        load_embedder("packaged", SENTENCE_TRANSFORMERS)
    assert routing_embedding.spec_embedder(spec.model_copy(update={"embedding": type(spec.embedding)()})).engine == (
        ONNXRUNTIME
    )
