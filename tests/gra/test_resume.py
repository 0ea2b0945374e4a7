"""A run killed with SIGKILL mid-way resumes to exactly the dataset an uninterrupted run produces, with its
output (shard journals included) on a local disk or in a real S3 server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from quorum.gra import prompts
from quorum.gra.store import read_journal
from quorum.gra.testing import GraScript
from quorum.llm.simulated import SimulatedBackend
from quorum.locations import Location, as_location
from tests.gra.conftest import make_spec

POOL = ["a", "b", "c"]


def manifest(folder: Path, url: str, seeds_uri: str = "file://seeds.jsonl") -> Path:
    spec = make_spec(
        url,
        POOL,
        review={"reviewers": 2, "greyZone": "adjudicate"},
        generation={"target": 60, "rounds": 2, "samplesPerRound": 16},
        postprocess={"dedup": {"enabled": True, "threshold": 0.9}},
        workers={"shards": 2, "parallelism": 2, "concurrencyPerModel": 2},
        seeds={"uri": seeds_uri},
    )
    path = folder / "job.yaml"
    document = {"apiVersion": "quorum.dev/v1alpha1", "kind": "SynthesisJob", "metadata": {"name": "r"}}
    path.write_text(yaml.safe_dump({**document, "spec": spec.to_wire()}))
    return path


def synth(job: Path, out: Location) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "quorum.cli.main", "synth", "run", str(job), "--local", "--out", out.uri]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=job.parent)


def journaled(out: Location) -> int:
    shards = [shard for shard in (out / "shards").children("shard-*")]
    lines = sum(len(read_journal(journal)) for shard in shards for journal in shard.children("round-*.journal"))
    return lines + sum(
        1 for shard in shards for folder in shard.children("round-??") if (folder / "commit.json").exists()
    )


def dataset(out: Location) -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    return [(r["id"], r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows]


def rejected_ids(out: Location) -> list[str]:
    return sorted(json.loads(line)["id"] for line in (out / "rejected.jsonl").read_text().splitlines())


@pytest.fixture(params=["disk", "s3"])
def storage(request: pytest.FixtureRequest, seed_dir: Path) -> tuple[Location, str]:
    """(output root, seeds URI): a local folder, or a prefix in the real S3 server with the seeds in it too."""
    if request.param == "disk":
        return as_location(seed_dir), "file://seeds.jsonl"
    root = as_location(request.getfixturevalue("s3_uri"))
    (root / "seeds.jsonl").write_bytes((seed_dir / "seeds.jsonl").read_bytes())
    return root, f"{root.uri}/seeds.jsonl"


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(seed_dir: Path, storage: tuple[Location, str]) -> None:
    root, seeds_uri = storage
    sim = SimulatedBackend(GraScript(duplicate_every=6), latency_s=0.02, models=POOL)
    job = manifest(seed_dir, sim.start_in_thread(), seeds_uri)
    try:
        reference = root / "reference"
        assert synth(job, reference).wait(timeout=300) == 0
        generated_total = sum(1 for r in sim.requests if r.schema_name == prompts.GENERATE)

        interrupted = root / "interrupted"
        sim.latency_s = 0.3  # slow enough that the kill lands mid-run even when polling S3 on a busy machine
        process = synth(job, interrupted)
        deadline = time.monotonic() + 240
        while journaled(interrupted) < 8 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05 if interrupted.is_local else 0.2)
        assert process.poll() is None, "the run finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert not (interrupted / "dataset.jsonl").exists()

        sim.latency_s = 0.02
        before = len(sim.requests)
        assert synth(job, interrupted).wait(timeout=300) == 0
        generated_on_resume = sum(1 for r in sim.requests[before:] if r.schema_name == prompts.GENERATE)
    finally:
        sim.stop_thread()

    resumed = dataset(interrupted)
    assert resumed == dataset(reference)
    assert len({row[0] for row in resumed}) == len(resumed)  # no duplicate
    assert rejected_ids(interrupted) == rejected_ids(reference)  # nothing lost either
    assert generated_on_resume < generated_total  # finished work was not asked again
    counts = json.loads((interrupted / "manifest.json").read_text())["counts"]
    assert counts["duplicates"] > 0 and counts["accepted"] == len(resumed)
