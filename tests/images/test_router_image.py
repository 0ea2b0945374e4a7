"""The router started from the image serves a chat completion on 127.0.0.1 against the packaged tiny model,
called with the official `openai` client."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from quorum.llm.local import LocalModelServer, free_port
from tests.images.conftest import PODMAN, podman

pytestmark = [pytest.mark.image, pytest.mark.model, pytest.mark.slow]

STARTUP_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def tiny_model() -> Iterator[LocalModelServer]:
    with LocalModelServer(parallel=2, ctx_size=2048) as server:
        yield server


def router_manifest(model_url: str, model: str, port: int) -> dict:
    return {
        "apiVersion": "quorum.dev/v1alpha1",
        "kind": "EnsembleRouter",
        "metadata": {"name": "image-router"},
        "spec": {
            "models": [{"name": "smollm", "endpoint": {"url": model_url, "model": model}}],
            "calibration": {"dataset": {"uri": "file://unused.jsonl"}, "clusters": 2},
            "voting": {"strategy": "single", "samples": 1},
            "router": {"replicas": 1, "port": port},
        },
    }


@pytest.fixture
def router_container(image: str, tiny_model: LocalModelServer, tmp_path: Path) -> Iterator[str]:
    """The router in a container that shares the host's loopback: it listens on 127.0.0.1 only and reaches the
    model server there; nothing is published beyond loopback."""
    port = free_port()
    (tmp_path / "router.yaml").write_text(yaml.safe_dump(router_manifest(tiny_model.base_url, tiny_model.alias, port)))
    tmp_path.chmod(0o755)
    name = f"quorum-router-test-{secrets.token_hex(4)}"
    args = ["run", "--detach", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp"]
    args += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--volume", f"{tmp_path}:/config:ro"]
    args += [image, "router", "serve", "--config", "/config/router.yaml", "--host", "127.0.0.1", "--port", str(port)]
    podman(*args)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            running = podman("inspect", name, "--format", "{{.State.Running}}", check=False).stdout.strip()
            assert running == "true", f"router exited:\n{podman('logs', name, check=False).stderr[-4000:]}"
            assert time.monotonic() < deadline, f"router not healthy after {STARTUP_TIMEOUT_S} s"
            time.sleep(1)
        yield f"{base}/v1"
    finally:
        logs = subprocess.run([*PODMAN, "logs", name], capture_output=True, text=True, check=False)
        print(logs.stdout[-2000:], logs.stderr[-2000:])
        podman("rm", "--force", name, check=False)


def test_router_from_the_image_serves_a_chat_completion(router_container: str) -> None:
    client = openai.OpenAI(base_url=router_container, api_key="unused", max_retries=0, timeout=120)
    completion = client.chat.completions.create(
        model="image-router",
        messages=[{"role": "user", "content": "Name one colour of the rainbow."}],
        max_tokens=16,
        temperature=0,
    )
    assert completion.choices[0].message.content.strip()
    assert completion.choices[0].finish_reason in {"stop", "length"}
    assert completion.usage is None or completion.usage.completion_tokens > 0
