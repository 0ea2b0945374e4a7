"""The quick check never accepts what jsonschema refuses, and does accept the engines' plainly valid replies."""

from __future__ import annotations

import random
from typing import Any

import jsonschema
import pytest

from quorum.gra import prompts
from quorum.llm.fastcheck import compile_check

SCHEMAS = {
    "generate": prompts.generate_schema(200),
    "review": prompts.review_schema(["clarity", "answerability"], 10, 96),
    "adjudicate": prompts.adjudicate_schema(10, 96),
    "digest": prompts.digest_schema(256),
    "classify": prompts.classify_schema(["math", "code"]),
}


def valid(schema: dict[str, Any], rng: random.Random) -> Any:
    """A value the schema accepts, sized at random within its bounds."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema["type"]
    if kind == "object":
        return {key: valid(sub, rng) for key, sub in schema["properties"].items()}
    if kind == "string":
        return "é" * rng.randint(schema.get("minLength", 0), min(schema.get("maxLength", 30), 30))
    if kind == "integer":
        return rng.randint(schema.get("minimum", -5), schema.get("maximum", 5))
    items = schema.get("items", {"type": "string"})
    return [valid(items, rng) for _ in range(rng.randint(schema.get("minItems", 0), schema.get("maxItems", 4)))]


def mutated(value: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One change that may or may not break the value: what a small model gets wrong."""
    value = dict(value)
    key = rng.choice(sorted(value))
    value[key] = rng.choice(
        [None, True, 3.0, 7.5, -1, 11, 0, "", "x" * 500, [], ["a"] * 9, {"nested": 1}, "accept", "maybe"]
    )
    if rng.random() < 0.2:
        value.pop(rng.choice(sorted(value)))
    if rng.random() < 0.2:
        value["extra"] = "field"
    return value


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_quick_yes_implies_jsonschema_yes_and_valid_replies_get_it(name: str) -> None:
    schema = SCHEMAS[name]
    check = compile_check(schema)
    assert check is not None, "the engines' schemas are inside the quick subset"
    validator = jsonschema.Draft202012Validator(schema)
    rng = random.Random(name)
    for _ in range(300):
        good = valid(schema, rng)
        assert validator.is_valid(good) and check(good)
        bad = mutated(good, rng)
        assert not check(bad) or validator.is_valid(bad)


def test_schemas_outside_the_subset_get_no_quick_check() -> None:
    assert compile_check({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}) is None
    assert compile_check({"oneOf": [{"type": "string"}]}) is None
    assert compile_check({"type": "object", "additionalProperties": {"type": "string"}}) is None


def test_an_integral_float_is_left_to_jsonschema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    check = compile_check(schema)
    assert check is not None and not check({"n": 3.0}) and check({"n": 3}) and not check({"n": True})
