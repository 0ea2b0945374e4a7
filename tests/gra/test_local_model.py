"""The pipeline against the real packaged tiny model, beside the official `openai` client on the same server."""

from __future__ import annotations

import jsonschema
import pytest

from quorum.api.synthesis import SynthesisJobSpec
from quorum.gra import prompts
from quorum.gra.pipeline import SampleRunner, Slot
from quorum.gra.seeds import Seed
from quorum.llm import ClientPool, RetryPolicy
from quorum.llm.local import LocalModelServer

pytestmark = pytest.mark.model

RUBRIC = ["clarity", "answerability"]


@pytest.fixture(scope="module")
def server():
    with LocalModelServer(parallel=2, ctx_size=2048) as running:
        yield running


def test_official_client_gets_schema_valid_reviews(server: LocalModelServer) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=server.base_url, api_key="unused")
    schema = prompts.review_schema(RUBRIC, 10, 64)
    reply = client.chat.completions.create(
        model=server.alias,
        messages=prompts.PromptBook.built_in().messages(
            prompts.REVIEW_INSTRUCTION,
            **prompts.review_variables("math", {"instruction": "What is 7 times 6?"}, RUBRIC, 10),
        ),
        response_format={"type": "json_schema", "json_schema": {"name": prompts.REVIEW_INSTRUCTION, "schema": schema}},
        max_tokens=96,
        temperature=0.1,
    )
    import json

    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)
    assert reply.usage.completion_tokens > 0


def test_a_review_closes_its_json_within_a_small_token_budget(server: LocalModelServer) -> None:
    """The demo's budget and six-dimension response rubric: the critique's length bound leaves room for every
    score even when the model spends a token per character (it wrote "1.1.1.1..." and timestamps, which cut
    the object off before its scores at the old two-characters-per-token sizing: seeds 0 and 7 here)."""
    import json

    from openai import OpenAI

    rubric = ["correctness", "completeness", "relevance", "coherence", "language", "safety"]
    max_tokens = 160
    schema = prompts.review_schema(rubric, 10, max_tokens)
    sample = {
        "instruction": "Write a Python function that sums a list.",
        "output": "def total(xs):\n    return sum(xs)",
    }
    messages = prompts.PromptBook.built_in().messages(
        prompts.REVIEW_RESPONSE, **prompts.review_variables("code", sample, rubric, 10)
    )
    client = OpenAI(base_url=server.base_url, api_key="unused")
    for seed in range(8):
        reply = client.chat.completions.create(
            model=server.alias,
            messages=messages,
            response_format={"type": "json_schema", "json_schema": {"name": "review", "schema": schema}},
            max_tokens=max_tokens,
            temperature=0.2,
            seed=seed,
        )
        assert reply.choices[0].finish_reason == "stop", (seed, reply.choices[0].message.content)
        jsonschema.validate(json.loads(reply.choices[0].message.content), schema)


async def test_one_sample_runs_every_stage_against_the_tiny_model(server: LocalModelServer) -> None:
    spec = SynthesisJobSpec.model_validate(
        {
            "models": [{"name": "smollm", "model": "SmolLM2-135M-Instruct"}],
            "seeds": {"uri": "file://seeds.jsonl"},
            "output": {"uri": "file://out"},
            "generation": {"maxTokens": 200, "fewShot": 1},
            "review": {
                "reviewers": 1,
                "allowSameModel": True,
                "maxTokens": 64,
                "instructionRubric": RUBRIC,
                "responseRubric": ["correctness"],
                "greyZone": "adjudicate",
                "rejectBelow": 1.0,
            },
            "adjudication": {"maxTokens": 64},
        }
    )
    async with ClientPool([server.endpoint("smollm")], RetryPolicy(timeout_seconds=300, max_retries=1)) as pool:
        runner = SampleRunner(spec, pool, digests={})
        demo = Seed(id="math-1", instruction="What is 15% of 240?", output="36", domain="math")
        record = await runner.run(Slot(round=1, index=0, domain="math", demos=(demo,)))
        usage = pool["smollm"].usage
    assert record.status != "failed", record.error
    assert record.sample is not None and record.sample.instruction
    assert record.review["instruction"].reviews[0].model == "smollm"
    assert 1 <= record.review["instruction"].mu <= 10
    used = record.tokens["smollm"]
    assert used.prompt + used.completion > 0 and usage.completion_tokens > 0
