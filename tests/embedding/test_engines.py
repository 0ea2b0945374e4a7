"""The ONNX Runtime engine is the sentence-transformers model: same vectors (cosine ≥ 0.9999 on 1,000 texts), same
dimension, read from the model; and `shared_embedder` gives dedup and routing the one instance."""

from __future__ import annotations

import numpy as np

from quorum.embedding import ONNXRUNTIME, SENTENCE_TRANSFORMERS, load_embedder, shared_embedder
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
