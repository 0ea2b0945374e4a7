"""The simulated server speaks the protocol the official `openai` client expects."""

from __future__ import annotations

import subprocess
import sys

import openai
import pytest

from quorum.llm.simulated import SimReply, SimulatedBackend


def test_official_client_reads_completions_and_errors_from_a_threaded_server() -> None:
    sim = SimulatedBackend(lambda r: SimReply(status=429) if "limit" in r.prompt else SimReply(texts=["a", "b"]))
    base_url = sim.start_in_thread()
    try:
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="sim", messages=[{"role": "user", "content": "hi"}], n=2)
        assert [c.message.content for c in reply.choices] == ["a", "b"]
        assert reply.usage is not None and reply.usage.completion_tokens == 2
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="sim", messages=[{"role": "user", "content": "limit"}])
        assert [m.id for m in client.models.list()] == ["sim"]
    finally:
        sim.stop_thread()


def test_official_client_streams() -> None:
    sim = SimulatedBackend(lambda r: SimReply(text="several words here"))
    base_url = sim.start_in_thread()
    try:
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        stream = client.chat.completions.create(model="sim", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "several words here"
    finally:
        sim.stop_thread()


def test_standalone_server_prints_its_url_and_answers() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "quorum.llm.simulated", "--latency", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="sim", messages=[{"role": "user", "content": "ping"}])
        assert reply.choices[0].message.content == "echo: ping"
    finally:
        process.terminate()
        process.wait(timeout=10)
