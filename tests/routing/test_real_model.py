"""The router in front of the real packaged tiny model (SmolLM2 via xllamacpp), driven by the openai client."""

from __future__ import annotations

import openai
import pytest

from quorum.llm.local import LocalModelServer
from tests.routing.conftest import router_spec, serving

pytestmark = [pytest.mark.model, pytest.mark.timeout(600)]


async def test_openai_client_gets_a_voted_answer_from_the_tiny_model():
    with LocalModelServer(parallel=2) as server:
        spec = router_spec({"smollm": server.base_url}, voting={"samples": 2, "temperature": 0.7})
        async with serving(spec) as router:
            client = openai.AsyncOpenAI(base_url=router.base_url, api_key="none", max_retries=0)
            completion = await client.chat.completions.create(
                model="ensemble",
                messages=[{"role": "user", "content": "What is 2 plus 3? Put the number in \\boxed{}."}],
                max_tokens=24,
                extra_body={"quorum": {"task": "arithmetic"}},
            )
            await client.close()
    audit = completion.model_extra["quorum"]
    assert completion.choices[0].message.content.strip()
    assert audit["models"] == ["smollm"] and audit["samples"] == {"requested": 2, "received": 2}
    assert audit["task"] == "arithmetic" and completion.usage.completion_tokens > 0
