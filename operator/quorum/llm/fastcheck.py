"""A quick yes for structured replies that are plainly valid, before the full JSON Schema validator.

Why: the engines check every structured reply against a small flat schema (an object of strings, integers, enums
and string arrays), and jsonschema's generic descent cost about 7% of a synthesis worker's CPU on replies that
were valid. `compile_check` turns such a schema into nested closures that answer True only when the value is
valid; anything else (an invalid value, a float where an integer is asked, a keyword it does not know) answers
False or compiles to None, and the caller asks jsonschema, whose verdict and error messages stay the rule.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

_KNOWN = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "enum",
        "items",
        "minItems",
        "maxItems",
    }
)


def compile_check(schema: Mapping[str, Any]) -> Check | None:
    """A check that is True only for values the schema accepts; None when the schema is outside the subset."""
    if not isinstance(schema, Mapping) or not set(schema) <= _KNOWN:
        return None
    kind = schema.get("type")
    if "enum" in schema:
        return _enum(schema)
    if kind == "object":
        return _object(schema)
    if kind == "string":
        return _sized(str, schema.get("minLength", 0), schema.get("maxLength"))
    if kind == "integer":
        return _bounded(schema.get("minimum"), schema.get("maximum"))
    if kind == "array":
        return _array(schema)
    if kind == "boolean" and set(schema) == {"type"}:
        return lambda value: type(value) is bool
    return None


def _enum(schema: Mapping[str, Any]) -> Check | None:
    options = schema["enum"]
    if set(schema) - {"type", "enum"} or schema.get("type", "string") != "string":
        return None
    if not isinstance(options, list) or not all(type(o) is str for o in options):
        return None
    allowed = frozenset(options)
    return lambda value: type(value) is str and value in allowed


def _sized(kind: type, low: int, high: int | None) -> Check:
    if high is None:
        return lambda value: type(value) is kind and low <= len(value)
    return lambda value: type(value) is kind and low <= len(value) <= high


def _bounded(low: float | None, high: float | None) -> Check:
    low = float("-inf") if low is None else low
    high = float("inf") if high is None else high
    return lambda value: type(value) is int and low <= value <= high


def _array(schema: Mapping[str, Any]) -> Check | None:
    item = compile_check(schema["items"]) if "items" in schema else (lambda value: True)
    if item is None:
        return None
    size = _sized(list, schema.get("minItems", 0), schema.get("maxItems"))
    return lambda value: size(value) and all(item(element) for element in value)


def _object(schema: Mapping[str, Any]) -> Check | None:
    extra = schema.get("additionalProperties", True)
    if extra not in (True, False):
        return None
    fields: dict[str, Check] = {}
    for name, sub in (schema.get("properties") or {}).items():
        check = compile_check(sub)
        if check is None:
            return None
        fields[name] = check
    required = tuple(schema.get("required", ()))
    allowed = frozenset(fields)

    def check(value: Any) -> bool:
        if type(value) is not dict or not all(key in value for key in required):
            return False
        if extra is False and not allowed.issuperset(value):
            return False
        return all(fields[key](item) for key, item in value.items() if key in fields)

    return check
