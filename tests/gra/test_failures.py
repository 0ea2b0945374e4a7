"""Failed calls are retried, then recorded (never dropped); invalid JSON is repaired or recorded; bad seeds
are reported with their line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from quorum.cli.main import app
from quorum.gra import prompts
from quorum.gra.sample import SampleStatus
from quorum.gra.testing import GraScript, varied_high
from quorum.llm.simulated import SimReply, SimRequest, SimulatedBackend
from tests.gra.conftest import make_spec, run_one

POOL = ["a", "b", "c"]


def failing_first(count: int, reply: SimReply, stage: str = prompts.GENERATE):
    seen = {"n": 0}

    def fail(request: SimRequest) -> SimReply | None:
        if request.schema_name == stage and seen["n"] < count:
            seen["n"] += 1
            return reply
        return None

    return fail


async def test_server_errors_are_retried_then_the_sample_goes_on() -> None:
    script = GraScript(score=lambda r, n: 9, fail=failing_first(2, SimReply(status=500, text="boom")))
    async with SimulatedBackend(script, models=POOL) as sim:
        record = await run_one(make_spec(sim.base_url, POOL, review={"reviewers": 2}))
        generate_calls = [r for r in sim.requests if r.schema_name == prompts.GENERATE]
    assert record.status == SampleStatus.ACCEPTED
    assert len(generate_calls) == 3


@pytest.mark.parametrize(
    ("reply", "reason"),
    [(SimReply(status=503, text="overloaded"), "HTTP503"), (SimReply(delay_s=1.5), "Timeout")],
    ids=["http-503", "time-out"],
)
async def test_persistent_failures_are_recorded_with_the_error(reply: SimReply, reason: str) -> None:
    script = GraScript(score=lambda r, n: 9, fail=failing_first(100, reply, prompts.REVIEW_RESPONSE))
    async with SimulatedBackend(script, models=POOL) as sim:
        spec = make_spec(sim.base_url, POOL, review={"reviewers": 2}, calls={"timeoutSeconds": 0.3, "maxRetries": 1})
        record = await run_one(spec)
    assert record.review["instruction"].outcome == "accept"
    assert record.status == SampleStatus.FAILED
    assert record.error is not None
    assert record.error.stage == "review-response"
    assert record.error.reason == reason
    assert record.error.attempts == 2
    assert record.gate_path.endswith("failed:review-response")


async def test_invalid_json_is_repaired_with_the_parse_error() -> None:
    script = GraScript(score=lambda r, n: 9, fail=failing_first(1, SimReply(text="Sure! Here is a task: {oops")))
    async with SimulatedBackend(script, models=POOL) as sim:
        record = await run_one(make_spec(sim.base_url, POOL, review={"reviewers": 2}))
        generate_calls = [r for r in sim.requests if r.schema_name == prompts.GENERATE]
    assert record.status == SampleStatus.ACCEPTED
    assert len(generate_calls) == 2
    assert "invalid" in generate_calls[1].messages[-1]["content"]


def write_manifest(folder: Path, url: str, **spec: object) -> Path:
    sections: dict[str, object] = {"review": {"reviewers": 2}, "generation": {"target": 4, "rounds": 1}, **spec}
    body = make_spec(url, POOL, **sections).to_wire()
    manifest = {"apiVersion": "quorum.dev/v1alpha1", "kind": "SynthesisJob", "metadata": {"name": "t"}, "spec": body}
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def one_sample_always(reply: SimReply):
    """Fails every attempt (repairs included) of the first generation seen: they share its call seed."""
    chosen: list[object] = []

    def fail(request: SimRequest) -> SimReply | None:
        if request.schema_name != prompts.GENERATE:
            return None
        if not chosen:
            chosen.append(request.body.get("seed"))
        return reply if request.body.get("seed") == chosen[0] else None

    return fail


def test_invalid_json_forever_lands_in_rejected_jsonl(seed_dir: Path) -> None:
    sim = SimulatedBackend(GraScript(score=varied_high, fail=one_sample_always(SimReply(text="not json"))))
    url = sim.start_in_thread()
    try:
        manifest = write_manifest(seed_dir, url, calls={"jsonRepairAttempts": 2, "backoffSeconds": 0.01})
        result = CliRunner().invoke(app, ["synth", "run", str(manifest), "--local", "--out", str(seed_dir / "o")])
    finally:
        sim.stop_thread()
    assert result.exit_code == 0, result.output
    rejected = [json.loads(line) for line in (seed_dir / "o" / "rejected.jsonl").read_text().splitlines()]
    failed = [r for r in rejected if r["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error"]["reason"] == "InvalidJson"
    manifest_out = json.loads((seed_dir / "o" / "manifest.json").read_text())
    assert manifest_out["counts"]["failed"] == 1
    assert manifest_out["counts"]["generated"] == 3  # the fourth candidate failed before it existed


def test_malformed_seed_line_is_reported_with_its_line_number(seed_dir: Path) -> None:
    lines = (seed_dir / "seeds.jsonl").read_text().splitlines()
    lines.insert(2, '{"id": "broken", "instruction": ')
    (seed_dir / "seeds.jsonl").write_text("\n".join(lines) + "\n")
    sim = SimulatedBackend(GraScript(score=lambda r, n: 9))
    url = sim.start_in_thread()
    try:
        manifest = write_manifest(seed_dir, url)
        out = str(seed_dir / "o")
        failed = CliRunner().invoke(app, ["synth", "run", str(manifest), "--local", "--out", out])
        skipped = CliRunner().invoke(
            app, ["synth", "run", str(manifest), "--local", "--out", out, "--on-bad-seed", "skip"]
        )
    finally:
        sim.stop_thread()
    assert failed.exit_code == 1
    message = " ".join(failed.output.split())  # rich wraps long lines
    assert "seeds.jsonl: line 3: not valid JSON" in message
    assert skipped.exit_code == 0, skipped.output
    assert "skipped bad seed at line 3" in " ".join(skipped.output.split())
    manifest_out = json.loads((seed_dir / "o" / "manifest.json").read_text())
    assert manifest_out["badSeeds"][0]["line"] == 3
    assert manifest_out["counts"]["seeds"] == 6


def test_changed_spec_is_refused_unless_restarted(seed_dir: Path) -> None:
    sim = SimulatedBackend(GraScript(score=lambda r, n: 9))
    url = sim.start_in_thread()
    try:
        out = str(seed_dir / "o")
        first = CliRunner().invoke(app, ["synth", "run", str(write_manifest(seed_dir, url)), "--local", "--out", out])
        changed = write_manifest(seed_dir, url, review={"reviewers": 2, "acceptAtLeast": 8.0})
        refused = CliRunner().invoke(app, ["synth", "run", str(changed), "--local", "--out", out])
        restarted = CliRunner().invoke(app, ["synth", "run", str(changed), "--local", "--out", out, "--restart"])
    finally:
        sim.stop_thread()
    assert first.exit_code == 0, first.output
    assert refused.exit_code == 1 and "--restart" in " ".join(refused.output.split())
    assert restarted.exit_code == 0, restarted.output
