"""The same sentence-transformers model run by ONNX Runtime: `tokenizers`, the exported transformer, mean pooling
over the attention mask, L2 normalisation. No torch at run time.

The graph is exported once from the local weights (never from a hub) with torch's exporter, by `quorum
embedder export` at setup time or on first use where torch is installed, and cached under
`$QUORUM_EMBEDDER_CACHE` (default `~/.cache/quorum/embedders`), keyed by a digest of the weights so that new
weights never meet an old graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CACHE_ENV = "QUORUM_EMBEDDER_CACHE"
THREADS_ENV = "QUORUM_EMBED_THREADS"
ENGINE = "onnxruntime"


class OnnxUnavailable(RuntimeError):
    """No exported graph for these weights, and torch is not installed to export one."""


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "quorum" / "embedders")


def weights_digest(model_dir: Path) -> str:
    """Digest of the weights and configuration files (what decides the graph)."""
    digest = hashlib.sha256()
    for name in sorted(p.name for p in model_dir.iterdir() if p.suffix in {".safetensors", ".bin", ".json"}):
        digest.update(name.encode())
        with (model_dir / name).open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def graph_path(model_dir: Path) -> Path:
    return cache_root() / f"{model_dir.name}-{weights_digest(model_dir)}" / "model.onnx"


def export(model_dir: Path) -> Path:
    """Export the transformer of a local sentence-transformers model to ONNX (idempotent)."""
    target = graph_path(model_dir)
    if target.exists():
        return target
    try:
        import torch
        from transformers import AutoModel
    except ImportError as error:
        raise OnnxUnavailable(f"no ONNX graph at {target} and torch is not installed to export one") from error
    target.parent.mkdir(parents=True, exist_ok=True)
    transformer = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    transformer.requires_grad_(False)

    class LastHiddenState(torch.nn.Module):
        """Positional inputs for the exporter (the model's own signature has other arguments in between)."""

        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
            return self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in names)
    partial = target.with_suffix(".partial")
    with torch.no_grad():
        torch.onnx.export(
            LastHiddenState(),
            example,
            str(partial),
            dynamo=False,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]},
            opset_version=17,
        )
    partial.replace(target)
    return target


def _max_length(model_dir: Path) -> int:
    """sentence-transformers truncates at `max_seq_length` (256 for MiniLM), not the model's 512 positions."""
    config = model_dir / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text()).get("max_seq_length", 512))
    return 512


class OnnxEmbedder:
    """Normalised mean-pooled embeddings from an exported transformer; thread-safe, one session per model."""

    engine = ENGINE

    def __init__(self, model_id: str, model_dir: Path, threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.model_id = model_id
        graph = export(model_dir)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get(THREADS_ENV, "0") or 0)
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(_max_length(model_dir))
        self._tokenizer.enable_padding()
        self.dimension = int(self._session.get_outputs()[0].shape[-1] or self._probe_dimension())
        self._lock = threading.Lock()

    def _probe_dimension(self) -> int:
        return int(self._run(["dimension"]).shape[1])

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = self._session.run(["last_hidden_state"], {k: v for k, v in feeds.items() if k in self._inputs})
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # sorted by length, as sentence-transformers does, so that a batch pads to similar lengths
        order = np.argsort([-len(t) for t in texts], kind="stable")
        with self._lock:
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                out[rows] = self._run([texts[r] for r in rows])
        return out
