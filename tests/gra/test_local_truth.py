"""Local mode tells the truth: a run that accepted nothing because calls failed exits non-zero, and a rerun
after the fix runs those shards again; backends are checked first, naming the endpoint; `spec.output.uri` is
where the output goes (or a clear error says why not); a YAML syntax error is one line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from quorum.cli.main import app
from quorum.gra import prompts
from quorum.gra.testing import GraScript, varied_high
from quorum.llm.local import free_port
from quorum.llm.simulated import SimReply, SimRequest, SimulatedBackend
from tests.gra.test_failures import write_manifest


def _generation_fails(request: SimRequest) -> SimReply | None:
    return SimReply(status=500, text="model crashed") if request.schema_name == prompts.GENERATE else None


def _run(manifest: Path, *args: str):
    result = CliRunner().invoke(app, ["synth", "run", str(manifest), "--local", *args])
    return result, " ".join(result.output.split())


def test_a_run_with_every_call_failed_exits_non_zero_and_a_rerun_after_the_fix_retries(seed_dir: Path) -> None:
    broken, fixed = (
        SimulatedBackend(GraScript(score=varied_high, fail=_generation_fails)),
        SimulatedBackend(GraScript(score=varied_high)),
    )
    broken_url, fixed_url = broken.start_in_thread(), fixed.start_in_thread()
    try:
        failed, failed_text = _run(write_manifest(seed_dir, broken_url, calls={"maxRetries": 0}))
        rerun, rerun_text = _run(write_manifest(seed_dir, fixed_url, calls={"maxRetries": 0}))
    finally:
        broken.stop_thread()
        fixed.stop_thread()
    assert failed.exit_code == 1 and "nothing accepted" in failed_text, failed_text
    assert rerun.exit_code == 0, rerun_text
    assert "running them again" in rerun_text
    manifest = json.loads((seed_dir / "out" / "manifest.json").read_text())  # spec.output.uri: file://out
    assert manifest["counts"]["accepted"] > 0


def test_an_unreachable_backend_is_named_before_anything_runs(seed_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result, text = _run(write_manifest(seed_dir, url))
    assert result.exit_code == 1
    assert "backend check failed" in text and f"{url}/models is not reachable" in text
    assert not (seed_dir / "out" / "manifest.json").exists()


def test_an_output_uri_local_mode_cannot_write_is_a_clear_error(seed_dir: Path) -> None:
    result, text = _run(write_manifest(seed_dir, "http://127.0.0.1:9/v1", output={"uri": "configmap://cm/run"}))
    assert result.exit_code == 1 and "spec.output.uri configmap://cm/run" in text and "--out" in text


def test_a_yaml_syntax_error_is_one_line_with_file_line_and_column(tmp_path: Path) -> None:
    manifest = tmp_path / "job.yaml"
    manifest.write_text("apiVersion: quorum.dev/v1alpha1\nkind: SynthesisJob\nspec: {models: [\n")
    result, _ = _run(manifest)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1
    assert f"{manifest}:4:1: YAML syntax error" in lines[0]
    validated = CliRunner().invoke(app, ["validate", str(manifest)])
    assert validated.exit_code == 1 and "YAML syntax error" in " ".join(validated.output.split())
