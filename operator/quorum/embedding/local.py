"""The sentence-transformers engine (torch on the CPU): the reference the ONNX engine is checked against."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

ENGINE = "sentence-transformers"


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU that returns normalized float32 vectors."""

    engine = ENGINE

    def __init__(self, model_id: str, path: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        self._model = SentenceTransformer(path, device="cpu")
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:  # the torch model is not re-entrant across threads
            vectors = self._model.encode(
                list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


def limit_torch_threads(threads: int) -> None:
    """Pin torch's intra-op threads. Online, queries are encoded one small batch at a time: with several threads
    they spin-wait on each other, and on a busy 2-core node one query took 500 ms instead of 40 ms
    (measured). The router uses 1 thread per process and scales by replicas; calibration keeps torch's default.
    """
    import torch

    torch.set_num_threads(max(1, threads))
