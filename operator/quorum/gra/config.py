"""The engine's plain configuration: a validated `SynthesisJobSpec` plus where relative paths resolve.

Why a wrapper and not the spec alone: a manifest read on a laptop resolves `file://seeds.jsonl` against the
manifest's directory, while a worker pod resolves `pvc://claim/path` under its mount root. The wrapper carries
that context so the engine never guesses, and it serializes to one JSON file the operator mounts into pods.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from quorum.api.synthesis import SynthesisJobSpec, SynthesisMode, output_fingerprint
from quorum.gra.prompts import PromptBook
from quorum.locations import Location, default_pvc_root, location, resolve_uri


@dataclass(frozen=True)
class GraConfig:
    """Everything a shard needs besides the model endpoints (which differ between pod and laptop)."""

    spec: SynthesisJobSpec
    name: str = "synthesis"
    base_dir: Path = field(default_factory=Path.cwd)
    """Directory that relative `file://` URIs resolve against (the manifest's directory)."""
    pvc_root: Path = field(default_factory=default_pvc_root)
    """`pvc://<claim>/<path>` reads `<pvc_root>/<claim>/<path>`: claims are mounted there in worker pods."""
    file_root: Path | None = None
    """Cluster mode: `file://` locations must lie under it (the pod's mounted volumes); None on a laptop."""

    @classmethod
    def from_spec(
        cls,
        spec: SynthesisJobSpec,
        *,
        name: str = "synthesis",
        base_dir: str | Path | None = None,
        pvc_root: str | Path | None = None,
        file_root: str | Path | None = None,
    ) -> GraConfig:
        return cls(
            spec=spec,
            name=name,
            base_dir=Path(base_dir) if base_dir is not None else Path.cwd(),
            pvc_root=Path(pvc_root) if pvc_root is not None else default_pvc_root(),
            file_root=Path(file_root) if file_root is not None else None,
        )

    def resolve_uri(self, uri: str) -> Path:
        """A local path for a data location (see `quorum.locations`)."""
        return resolve_uri(uri, base_dir=self.base_dir, pvc_root=self.pvc_root, file_root=self.file_root)

    def location(self, uri: str) -> Location:
        """Where a data URI lives, `s3://` included: what the engine reads seeds from and writes output to."""
        return location(uri, base_dir=self.base_dir, pvc_root=self.pvc_root, file_root=self.file_root)

    @property
    def is_refine(self) -> bool:
        return self.spec.mode == SynthesisMode.REFINE

    @functools.cached_property
    def prompt_book(self) -> PromptBook:
        """Every stage's prompt, overrides loaded and checked (`PromptTemplateError` names the bad field):
        called when a run starts, so a broken template stops it before any model is asked."""
        return PromptBook.from_spec(self.spec.prompts, lambda uri: self.location(uri).read_text())

    def fingerprint(self) -> str:
        """Hash of the spec parts that change the output; a resumed run must match it (see
        `output_fingerprint`). With prompt overrides their text is in too (their URIs alone would miss an
        edited file)."""
        spec_hash = output_fingerprint(self.spec)
        if not self.spec.prompts.to_wire():
            return spec_hash
        return hashlib.sha256(f"{spec_hash}:{self.prompt_book.digest}".encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "baseDir": str(self.base_dir),
                "pvcRoot": str(self.pvc_root),
                **({"fileRoot": str(self.file_root)} if self.file_root is not None else {}),
                "spec": self.spec.to_wire(),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> GraConfig:
        data = json.loads(text)
        return cls(
            spec=SynthesisJobSpec.model_validate(data["spec"]),
            name=data.get("name", "synthesis"),
            base_dir=Path(data.get("baseDir", ".")),
            pvc_root=Path(data["pvcRoot"]) if data.get("pvcRoot") else default_pvc_root(),
            file_root=Path(data["fileRoot"]) if data.get("fileRoot") else None,
        )

    @classmethod
    def load(cls, path: str | Path) -> GraConfig:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
