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
from typing import Any

from quorum.api.synthesis import SynthesisJobSpec, SynthesisMode
from quorum.gra.prompts import PromptBook
from quorum.locations import default_pvc_root, resolve_uri


@dataclass(frozen=True)
class GraConfig:
    """Everything a shard needs besides the model endpoints (which differ between pod and laptop)."""

    spec: SynthesisJobSpec
    name: str = "synthesis"
    base_dir: Path = field(default_factory=Path.cwd)
    """Directory that relative `file://` URIs resolve against (the manifest's directory)."""
    pvc_root: Path = field(default_factory=default_pvc_root)
    """`pvc://<claim>/<path>` reads `<pvc_root>/<claim>/<path>`: claims are mounted there in worker pods."""

    @classmethod
    def from_spec(
        cls,
        spec: SynthesisJobSpec,
        *,
        name: str = "synthesis",
        base_dir: str | Path | None = None,
        pvc_root: str | Path | None = None,
    ) -> GraConfig:
        return cls(
            spec=spec,
            name=name,
            base_dir=Path(base_dir) if base_dir is not None else Path.cwd(),
            pvc_root=Path(pvc_root) if pvc_root is not None else default_pvc_root(),
        )

    def resolve_uri(self, uri: str) -> Path:
        """A local path for a data location (see `quorum.locations`)."""
        return resolve_uri(uri, base_dir=self.base_dir, pvc_root=self.pvc_root)

    @property
    def is_refine(self) -> bool:
        return self.spec.mode == SynthesisMode.REFINE

    @functools.cached_property
    def prompt_book(self) -> PromptBook:
        """Every stage's prompt, overrides loaded and checked (`PromptTemplateError` names the bad field):
        called when a run starts, so a broken template stops it before any model is asked."""
        return PromptBook.from_spec(self.spec.prompts, self.resolve_uri)

    def fingerprint(self) -> str:
        """Hash of the spec parts that change the output; a resumed run must match it.

        Left out on purpose: concurrency, parallelism, time-outs, deadlines and endpoint URLs, which change how
        fast the work runs but not what it produces, and the output location itself. The text of prompt
        overrides is in (their URIs alone would miss an edited file).
        """
        relevant = output_relevant_spec(self.spec)
        if self.spec.prompts.to_wire():
            relevant["promptTexts"] = self.prompt_book.digest
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "baseDir": str(self.base_dir),
                "pvcRoot": str(self.pvc_root),
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
        )

    @classmethod
    def load(cls, path: str | Path) -> GraConfig:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def output_relevant_spec(spec: SynthesisJobSpec) -> dict[str, Any]:
    wire = spec.to_wire()
    models = [
        {
            "name": m.name,
            "roles": sorted(str(r) for r in m.roles),
            "model": m.model if m.endpoint is None else m.endpoint.model,
        }
        for m in spec.models
    ]
    calls = wire.get("calls", {})
    return {
        "mode": wire.get("mode"),
        "models": models,
        "seeds": wire["seeds"],
        "domains": wire.get("domains"),
        "digest": wire.get("digest"),
        "prompts": wire.get("prompts"),
        "generation": wire.get("generation"),
        "review": wire.get("review"),
        "adjudication": wire.get("adjudication"),
        "postprocess": wire.get("postprocess"),
        "outputFormat": wire["output"].get("format"),
        "shards": wire.get("workers", {}).get("shards"),
        "jsonRepairAttempts": calls.get("jsonRepairAttempts"),
    }
