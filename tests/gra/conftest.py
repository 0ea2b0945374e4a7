"""Helpers for GRA tests: specs pointing at a simulated backend, and running one sample through the stages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quorum.api.synthesis import SynthesisJobSpec
from quorum.gra.pipeline import SampleRunner, Slot
from quorum.gra.records import read_jsonl
from quorum.gra.sample import SampleRecord
from quorum.gra.seeds import Seed
from quorum.llm import ClientPool, ModelEndpoint, RetryPolicy

SEEDS = [
    {"id": f"{domain}-{i}", "domain": domain, "instruction": f"{domain} seed task number {i}", "output": "ok"}
    for domain in ("math", "code")
    for i in range(3)
]


def make_spec(url: str, models: list[str | dict[str, Any]], **sections: Any) -> SynthesisJobSpec:
    """A spec whose models all live on one simulated backend (the model name tells the responder who asks);
    a model given as a name plays every role, one given as a dict is taken as written."""
    body: dict[str, Any] = {
        "models": [m if isinstance(m, dict) else {"name": m, "endpoint": {"url": url, "model": m}} for m in models],
        "seeds": {"uri": "file://seeds.jsonl"},
        "output": {"uri": "file://out"},
        "calls": {"timeoutSeconds": 2, "maxRetries": 2, "backoffSeconds": 0.01, "maxBackoffSeconds": 0.02},
        "postprocess": {"dedup": {"enabled": False}},
        "workers": {"shards": 1, "parallelism": 1},
    }
    for key, value in sections.items():
        body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
    return SynthesisJobSpec.model_validate(body)


def endpoints_for(spec: SynthesisJobSpec) -> list[ModelEndpoint]:
    return [ModelEndpoint(m.name, m.endpoint.url, m.endpoint.model, None, 16) for m in spec.models]


async def run_one(spec: SynthesisJobSpec, index: int = 0) -> SampleRecord:
    """One sample through generate → review → gate → adjudicate, against the spec's endpoints."""
    async with ClientPool(endpoints_for(spec), RetryPolicy.from_spec(spec.calls)) as pool:
        runner = SampleRunner(spec, pool, digests={})
        demo = Seed(id="math-0", instruction="What is 2 + 2?", output="4", domain="math")
        return await runner.run(Slot(round=1, index=index, domain="math", demos=(demo,)))


def provenances(out: Path) -> list[dict[str, Any]]:
    """Every candidate's published provenance, with its id and domain: the kept ones from the dataset (JSONL),
    the others from rejected.jsonl, where they have the same shape."""
    rows = read_jsonl(out / "dataset.jsonl") + [r for r in read_jsonl(out / "rejected.jsonl") if r["kind"] == "sample"]
    return [r["provenance"] | {"id": r["id"], "domain": r["domain"]} for r in rows]


def run_simulated(folder: Path, script: Any, models: list[str], **sections: Any) -> tuple[dict[str, Any], Any]:
    """A whole local run (`run_local`) of a spec whose models all live on one simulated backend."""
    from quorum.gra import GraConfig, run_local
    from quorum.llm.simulated import SimulatedBackend

    sim = SimulatedBackend(script, models=models)
    url = sim.start_in_thread()
    out = folder / str(sections.pop("out", "out"))
    try:
        spec = make_spec(url, models, **sections)
        result = run_local(GraConfig.from_spec(spec, base_dir=folder), out, endpoints=endpoints_for(spec))
    finally:
        sim.stop_thread()
    return result.manifest, sim


@pytest.fixture
def seed_dir(tmp_path: Path) -> Path:
    (tmp_path / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in SEEDS))
    return tmp_path
