"""`quorum router serve FILE` (the one CLI shape: the manifest is the positional FILE, `--config` is a hidden
alias) starts the OpenAI-compatible router that the official client talks to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai
import pytest
import yaml

from e2e.netutil import await_ok, free_ports
from quorum.llm.simulated import SimulatedBackend


def manifest(folder: Path, backend_url: str) -> Path:
    document = {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "solo"},
        "spec": {
            "models": [{"name": "echo", "endpoint": {"url": backend_url, "model": "echo"}}],
            "calibration": {"dataset": {"uri": "file://calibration.jsonl"}},
        },
    }
    path = folder / "router.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("spelling", [["FILE"], ["--config", "FILE"]], ids=["positional", "config-alias"])
def test_router_serve_takes_the_manifest_as_file(tmp_path: Path, spelling: list[str]) -> None:
    sim = SimulatedBackend(models=["echo"])
    path = manifest(tmp_path, sim.start_in_thread())
    (port,) = free_ports(1)
    args = [str(path) if a == "FILE" else a for a in spelling]
    command = [sys.executable, "-m", "quorum.cli.main", "router", "serve", *args, "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        await_ok(f"http://127.0.0.1:{port}/healthz", server)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
        reply = client.chat.completions.create(model="solo", messages=[{"role": "user", "content": "hello there"}])
    finally:
        server.terminate()
        server.wait(timeout=30)
        sim.stop_thread()
    assert reply.choices[0].message.content
    assert reply.model_extra["quorum"]["models"] == ["echo"]


def test_router_commands_without_a_manifest_say_what_is_missing(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "quorum.cli.main", "router", "serve"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert "missing argument FILE" in result.stderr
