"""The packaged tiny model, served locally, answers our client and the official `openai` client."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from quorum.llm import ChatClient, RetryPolicy
from quorum.llm.local import LocalModelServer, packaged_chat_model_path

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def tiny_model() -> Iterator[LocalModelServer]:
    with LocalModelServer(parallel=2, ctx_size=2048) as server:
        yield server


def test_packaged_model_file_is_found() -> None:
    path = packaged_chat_model_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_official_client_gets_a_chat_completion(tiny_model: LocalModelServer) -> None:
    client = openai.OpenAI(base_url=tiny_model.base_url, api_key="unused")
    reply = client.chat.completions.create(
        model=tiny_model.alias,
        messages=[{"role": "user", "content": "Say hello in one word."}],
        max_tokens=8,
        temperature=0,
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.completion_tokens > 0


async def test_our_client_gets_schema_valid_json(tiny_model: LocalModelServer) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    client = ChatClient(tiny_model.endpoint(), RetryPolicy(timeout_seconds=120))
    value, completion = await client.chat_json(
        [{"role": "user", "content": "What is 2 + 2? Reply as JSON with the key answer."}],
        schema,
        schema_name="sum",
        max_tokens=24,
        temperature=0,
    )
    await client.aclose()
    assert isinstance(value["answer"], int)
    assert completion.completion_tokens > 0
