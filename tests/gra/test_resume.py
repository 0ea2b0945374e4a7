"""A run killed with SIGKILL mid-way resumes to exactly the dataset an uninterrupted run produces."""

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
from quorum.gra.testing import GraScript
from quorum.llm.simulated import SimulatedBackend
from tests.gra.conftest import make_spec

POOL = ["a", "b", "c"]


def manifest(folder: Path, url: str) -> Path:
    spec = make_spec(
        url,
        POOL,
        review={"reviewers": 2, "greyZone": "adjudicate"},
        generation={"target": 60, "rounds": 2, "samplesPerRound": 16},
        postprocess={"dedup": {"enabled": True, "threshold": 0.9}},
        workers={"shards": 2, "parallelism": 2, "concurrencyPerModel": 2},
    )
    path = folder / "job.yaml"
    document = {"apiVersion": "quorum.dev/v1alpha1", "kind": "SynthesisJob", "metadata": {"name": "r"}}
    path.write_text(yaml.safe_dump({**document, "spec": spec.to_wire()}))
    return path


def synth(job: Path, out: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "quorum.cli.main", "synth", "run", str(job), "--local", "--out", str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=job.parent)


def journaled(out: Path) -> int:
    lines = sum(p.read_text().count("\n") for p in out.glob("shards/*/round-*.journal.jsonl"))
    return lines + sum(1 for _ in out.glob("shards/*/round-*/commit.json"))


def dataset(out: Path) -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in (out / "dataset.jsonl").read_text().splitlines()]
    return [(r["id"], r["instruction"], r["output"]) for r in rows]


def rejected_ids(out: Path) -> list[str]:
    return sorted(json.loads(line)["id"] for line in (out / "rejected.jsonl").read_text().splitlines())


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(seed_dir: Path) -> None:
    sim = SimulatedBackend(GraScript(duplicate_every=6), latency_s=0.02, models=POOL)
    job = manifest(seed_dir, sim.start_in_thread())
    try:
        reference = seed_dir / "reference"
        assert synth(job, reference).wait(timeout=300) == 0
        generated_total = sum(1 for r in sim.requests if r.schema_name == prompts.GENERATE)

        interrupted = seed_dir / "interrupted"
        process = synth(job, interrupted)
        deadline = time.monotonic() + 240
        while journaled(interrupted) < 8 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run finished before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        assert not (interrupted / "dataset.jsonl").exists()

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
