"""The calibration artifact: one versioned, checksummed JSON bundle the router loads.

Encoding (compact enough for a ConfigMap, whose limit is 1 MiB): `artifact.json` holds everything the router
needs, with the K×D centres as base64 of little-endian float32 (float16 when asked). K=64, D=384 is 96 KiB of
float32 → 128 KiB of base64 (64 KiB with float16), plus ~10 KiB of rankings; a ConfigMap holds it easily.
`scores.json` keeps the per-question scores and cluster assignments of the calibration split so that adding
a model re-scores without re-clustering; it is optional for serving.
The checksum is the SHA-256 of the canonical JSON of `artifact.json` without its `checksum` field.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quorum.routing.taskmap import TaskMap

FORMAT = "quorum.dev/avengers-artifact"
VERSION = 1
ARTIFACT_FILE = "artifact.json"
SCORES_FILE = "scores.json"


class ArtifactError(ValueError):
    """The bundle is missing, of another version, or its checksum does not match its content."""


def encode_array(array: np.ndarray, dtype: str = "float32") -> dict[str, Any]:
    data = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": dtype, "shape": list(array.shape), "data": base64.b64encode(data.tobytes()).decode("ascii")}


def decode_array(encoded: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(encoded["dtype"]).newbyteorder("<")
    raw = base64.b64decode(encoded["data"])
    return np.frombuffer(raw, dtype=dtype).reshape(encoded["shape"]).astype(np.float32 if dtype.kind == "f" else dtype)


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checksum_of(document: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in document.items() if k != "checksum"})).hexdigest()


@dataclass
class Artifact:
    """A calibrated task map plus the provenance needed to trust and reproduce it."""

    task_map: TaskMap
    embedder: str
    dimension: int
    seed: int
    clusters_requested: int
    shrinkage: float
    dataset_fingerprint: str
    created: str
    tasks: dict[str, dict[str, str]] = field(default_factory=dict)
    """Task name → {kind, choices}: how the router extracts answers for a cluster's dominant task."""
    evaluation: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    """Counts: questions, calibration/held-out sizes, samples, failed calls per model."""
    scores: np.ndarray | None = None
    """Calibration-split scores (items × models), kept for re-scoring."""
    assignments: np.ndarray | None = None
    centres_dtype: str = "float32"
    embedder_engine: str = "sentence-transformers"
    """How the vectors were made (`quorum.embedding`): serving must embed the same way."""
    embedder_url: str | None = None
    """The embeddings server, for the remote engine."""

    def document(self) -> dict[str, Any]:
        tm = self.task_map
        document: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "embedder": {
                "model": self.embedder,
                "dimension": self.dimension,
                "engine": self.embedder_engine,
                **({"url": self.embedder_url} if self.embedder_url else {}),
            },
            "clusters": tm.clusters,
            "clustersRequested": self.clusters_requested,
            "seed": self.seed,
            "shrinkage": self.shrinkage,
            "dataset": {"fingerprint": self.dataset_fingerprint, **self.calibration},
            "models": tm.models,
            "globalAccuracy": [round(float(a), 6) for a in tm.global_accuracy],
            "clusterAccuracy": [[round(float(a), 6) for a in row] for row in tm.accuracy],
            "rankings": tm.rankings(),
            "clusterSizes": tm.cluster_sizes,
            "clusterTasks": tm.cluster_tasks,
            "tasks": self.tasks,
            "evaluation": self.evaluation,
            "centres": encode_array(tm.centres, self.centres_dtype),
        }
        document["checksum"] = checksum_of(document)
        return document

    @property
    def checksum(self) -> str:
        return self.document()["checksum"]

    def to_files(self) -> dict[str, str]:
        """File name → text, ready for a ConfigMap's `data` (or a volume)."""
        files = {ARTIFACT_FILE: json.dumps(self.document(), sort_keys=True, separators=(",", ":"))}
        if self.scores is not None and self.assignments is not None:
            files[SCORES_FILE] = json.dumps(
                {
                    "models": self.task_map.models,
                    "scores": encode_array(self.scores, "float16"),
                    "assignments": [int(a) for a in self.assignments],
                },
                separators=(",", ":"),
            )
        return files

    def save(self, directory: Path) -> Path:
        return save_artifact(self, directory)


def save_artifact(artifact: Artifact, directory: Path) -> Path:
    """Write the bundle; each file lands whole (temporary file, then rename), `artifact.json` last."""
    directory.mkdir(parents=True, exist_ok=True)
    files = artifact.to_files()
    for name in sorted(files, key=lambda n: n == ARTIFACT_FILE):
        temporary = directory / f".{name}.tmp"
        temporary.write_text(files[name], encoding="utf-8")
        temporary.replace(directory / name)
    return directory / ARTIFACT_FILE


def from_files(files: dict[str, str]) -> Artifact:
    """Parse and verify a bundle from its files (a ConfigMap's data or a directory's content)."""
    if ARTIFACT_FILE not in files:
        raise ArtifactError(f"the artifact bundle has no {ARTIFACT_FILE}")
    try:
        document = json.loads(files[ARTIFACT_FILE])
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{ARTIFACT_FILE} is not valid JSON: {error.msg}") from None
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        raise ArtifactError(
            f"unsupported artifact {document.get('format')!r} version {document.get('version')!r} "
            f"(this router reads {FORMAT} version {VERSION})"
        )
    if checksum_of(document) != document.get("checksum"):
        raise ArtifactError("artifact checksum mismatch: the bundle is corrupt or was edited")
    centres = decode_array(document["centres"])
    task_map = TaskMap(
        centres=centres,
        models=list(document["models"]),
        accuracy=np.array(document["clusterAccuracy"], dtype=np.float64).reshape(centres.shape[0], -1),
        global_accuracy=np.array(document["globalAccuracy"], dtype=np.float64),
        cluster_sizes=list(document["clusterSizes"]),
        cluster_tasks=list(document["clusterTasks"]),
    )
    dataset = dict(document["dataset"])
    artifact = Artifact(
        task_map=task_map,
        embedder=document["embedder"]["model"],
        dimension=int(document["embedder"]["dimension"]),
        seed=int(document["seed"]),
        clusters_requested=int(document["clustersRequested"]),
        shrinkage=float(document["shrinkage"]),
        dataset_fingerprint=dataset.pop("fingerprint"),
        created=document["created"],
        tasks=document.get("tasks", {}),
        evaluation=document.get("evaluation", {}),
        calibration=dataset,
        centres_dtype=document["centres"]["dtype"],
        embedder_engine=document["embedder"].get("engine", "sentence-transformers"),
        embedder_url=document["embedder"].get("url"),
    )
    if SCORES_FILE in files:
        scores = json.loads(files[SCORES_FILE])
        artifact.scores = decode_array(scores["scores"]).astype(np.float64)
        artifact.assignments = np.array(scores["assignments"], dtype=np.int64)
    return artifact


def load_artifact(directory: Path) -> Artifact:
    path = directory / ARTIFACT_FILE
    if not path.is_file():
        raise ArtifactError(f"no calibration artifact at {path} (run `quorum router calibrate` first)")
    files = {
        p.name: p.read_text(encoding="utf-8") for p in directory.iterdir() if p.name in (ARTIFACT_FILE, SCORES_FILE)
    }
    return from_files(files)
