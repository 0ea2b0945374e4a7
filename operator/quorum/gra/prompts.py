"""Every prompt and JSON schema of the GRA pipeline, in one place.

The paper published no prompts; these are Quorum's own. They are written for the weakest model we run (the
135M-parameter SmolLM2 of local mode): short instructions, one task per call, and JSON schemas whose string
lengths are bounded so that a grammar-constrained server finishes the object inside the token budget.
Schema names (`gra_generate`, ...) identify the stage to servers and to the scripted test backends.
"""

from __future__ import annotations

import json
import re
from typing import Any

from quorum.gra.seeds import Seed

Messages = list[dict[str, str]]

GENERATE = "gra_generate"
REVIEW_INSTRUCTION = "gra_review_instruction"
REVIEW_RESPONSE = "gra_review_response"
ADJUDICATE = "gra_adjudicate"
DIGEST = "gra_digest"
CLASSIFY = "gra_classify"

CHARS_PER_TOKEN = 3
"""A conservative characters-per-token ratio used to size string limits from token budgets."""


def dimension_key(name: str) -> str:
    """Rubric dimension → JSON key (`domain relevance` → `domain_relevance`)."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "score"


def _string(max_chars: int, min_chars: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_chars, "maxLength": max(min_chars, max_chars)}


def _keywords(max_items: int = 8) -> dict[str, Any]:
    return {"type": "array", "items": _string(24), "minItems": 3, "maxItems": max_items}


# --- stage 1: classify -----------------------------------------------------------------------------------


def classify_schema(names: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"domain": {"type": "string", "enum": list(names)}},
        "required": ["domain"],
        "additionalProperties": False,
    }


def classify_messages(seed: Seed, names: list[str]) -> Messages:
    return [
        {"role": "system", "content": "You sort tasks into categories. Answer with JSON only."},
        {
            "role": "user",
            "content": f"Categories: {', '.join(names)}.\nTask: {seed.prompt_text()}\n"
            'Which category fits the task best? Answer as {"domain": "<category>"}.',
        },
    ]


# --- stage 2: digest -------------------------------------------------------------------------------------


def digest_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"keywords": _keywords(5), "summary": _string(120)},
        "required": ["keywords", "summary"],
        "additionalProperties": False,
    }


def digest_messages(instruction: str, input_text: str, output: str) -> Messages:
    body = f"Instruction: {instruction}\n" + (f"Input: {input_text}\n" if input_text else "")
    body += f"Response: {output[:600]}\n" if output else ""
    return [
        {"role": "system", "content": "You describe tasks briefly. Answer with JSON only."},
        {
            "role": "user",
            "content": f"{body}\nGive 3 to 8 keywords and a one-sentence summary of this task, as "
            '{"keywords": [...], "summary": "..."}.',
        },
    ]


# --- stage 3: generate -----------------------------------------------------------------------------------


def generate_schema(max_tokens: int) -> dict[str, Any]:
    """Lengths take fixed shares of the token budget so the object closes before `max_tokens`."""
    budget = max(160, max_tokens * CHARS_PER_TOKEN - 120)
    return {
        "type": "object",
        "properties": {
            "instruction": _string(max(80, budget // 5), 8),
            "input": _string(max(40, budget // 10), 0),
            "output": _string(max(80, budget // 2), 1),
            "keywords": _keywords(5),
            "summary": _string(max(60, budget // 10)),
        },
        "required": ["instruction", "input", "output", "keywords", "summary"],
        "additionalProperties": False,
    }


def generate_messages(domain: str, demos: list[tuple[Seed, dict[str, Any] | None]]) -> Messages:
    lines = [f"Write one new {domain} task and its answer."]
    if demos:
        lines.append("Examples of the kind of task wanted:")
    for number, (seed, digest) in enumerate(demos, start=1):
        lines.append(f"Example {number}: {seed.instruction}")
        if seed.input:
            lines.append(f"Input: {seed.input[:300]}")
        if seed.output:
            lines.append(f"Answer: {seed.output[:300]}")
        if digest:
            lines.append(f"Keywords: {', '.join(digest.get('keywords', []))}. Summary: {digest.get('summary', '')}")
    lines.append(
        "Now write a different task on a similar topic: the instruction, an optional input, a correct output, "
        "a few keywords and a one-sentence summary."
    )
    return [
        {"role": "system", "content": f"You write clear, correct {domain} exercises for students."},
        {"role": "user", "content": "\n".join(lines)},
    ]


# --- stages 4 and 5: review ------------------------------------------------------------------------------


def review_schema(dimensions: list[str], scale: int, max_tokens: int) -> dict[str, Any]:
    """The critique comes first: small models score more sensibly after writing down what they saw."""
    score = {"type": "integer", "minimum": 1, "maximum": scale}
    keys = [dimension_key(d) for d in dimensions]
    critique = _string(min(160, max(60, max_tokens * CHARS_PER_TOKEN - 20 * len(keys) - 40)))
    properties: dict[str, Any] = {"critique": critique, **{key: score for key in keys}}
    return {
        "type": "object",
        "properties": properties,
        "required": ["critique", *keys],
        "additionalProperties": False,
    }


def review_instruction_messages(domain: str, sample: dict[str, Any], dimensions: list[str], scale: int) -> Messages:
    task = f"Instruction: {sample['instruction']}\n" + (f"Input: {sample['input']}\n" if sample.get("input") else "")
    return [
        {"role": "system", "content": "You are a strict reviewer of training tasks. Answer with JSON only."},
        {
            "role": "user",
            "content": f"Domain: {domain}\n{task}\nScore this instruction from 1 (bad) to {scale} (excellent) "
            f"on: {', '.join(dimensions)}.\n{_scale_hint(dimensions, scale)}",
        },
    ]


def review_response_messages(domain: str, sample: dict[str, Any], dimensions: list[str], scale: int) -> Messages:
    task = f"Instruction: {sample['instruction']}\n" + (f"Input: {sample['input']}\n" if sample.get("input") else "")
    return [
        {"role": "system", "content": "You are a strict reviewer of answers. Answer with JSON only."},
        {
            "role": "user",
            "content": f"Domain: {domain}\n{task}Response: {sample['output']}\n\nScore the response from 1 (bad) "
            f"to {scale} (excellent) on: {', '.join(dimensions)}.\n{_scale_hint(dimensions, scale)}",
        },
    ]


def _scale_hint(dimensions: list[str], scale: int) -> str:
    """Anchors (best first) and a filled-in example: without them the smallest models answer the lowest
    allowed digit whatever they read."""
    high, mid = max(3, round(scale * 0.8)), max(2, round(scale * 0.5))
    example: dict[str, Any] = {"critique": "Clear and answerable, on topic."}
    example.update({dimension_key(d): high - (i % 2) for i, d in enumerate(dimensions)})
    return (
        f"Scores are whole numbers: {scale} is excellent, {mid} is acceptable, 1 is unusable. Write a short "
        f"critique first, then the scores. Example answer: {json.dumps(example)}"
    )


# --- stage 7: adjudicate ---------------------------------------------------------------------------------


def adjudicate_schema(scale: int, max_tokens: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "decision": {"type": "string", "enum": ["accept", "reject"]},
            "score": {"type": "integer", "minimum": 1, "maximum": scale},
            "reason": _string(min(160, max(60, max_tokens * CHARS_PER_TOKEN - 60))),
        },
        "required": ["decision", "score", "reason"],
        "additionalProperties": False,
    }


def adjudicate_messages(
    domain: str, sample: dict[str, Any], round_name: str, reviews: list[dict[str, Any]], scale: int
) -> Messages:
    task = f"Instruction: {sample['instruction']}\n" + (f"Input: {sample['input']}\n" if sample.get("input") else "")
    if round_name == "response":
        task += f"Response: {sample['output']}\n"
    opinions = "\n".join(f"- Reviewer {i}: score {r['score']:.1f}. {r['critique']}" for i, r in enumerate(reviews, 1))
    return [
        {"role": "system", "content": "You settle disagreements between reviewers. Answer with JSON only."},
        {
            "role": "user",
            "content": f"Domain: {domain}\n{task}\nThe reviewers disagree about the {round_name}:\n{opinions}\n\n"
            f"Decide: accept or reject the {round_name}, give your own score from 1 to {scale}, and a short reason. "
            'Answer like {"decision": "accept", "score": 7, "reason": "<one sentence>"}.',
        },
    ]
