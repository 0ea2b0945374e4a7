"""Voting on tool calls and structured outputs, where the answer is a value and not a sentence.

Rules (the response's `quorum.rule` names the one that applied):
- `tool-calls` — the request offers `tools` (and `tool_choice` is not `"none"`): each sample votes with its
  normalised calls: function names in order, arguments parsed and re-serialised with sorted keys, so
  `{"b": 1, "a": 2}` and `{"a":2,"b":1}` are one vote; a sample that answered in text instead votes with its
  normalised text.
- `json-value` — `response_format` is `json_object` or `json_schema`: each sample votes with its content
  parsed as JSON and re-serialised canonically (sorted keys, `1.0` = `1`); content that is not JSON does
  not vote.
- `first-sample` — no sample produced a voting key (say, none was valid JSON): the top-ranked model's
  first sample is returned, as the tie-break rule of `vote.majority` says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from quorum.routing.extract import normalize_open
from quorum.routing.tasks import TaskRule

TOOL_CALLS = "tool-calls"
JSON_VALUE = "json-value"


def canonical_json(value: Any) -> str:
    return json.dumps(_normal(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _normal(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _parsed(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text  # arguments that are not JSON still vote, verbatim


@dataclass(frozen=True)
class StructuredRule(TaskRule):
    """A TaskRule whose voting key is a canonical JSON value (`extract` gets `vote_text`'s output)."""

    @property
    def votes_on_strings(self) -> bool:
        return True

    def extract(self, text: str) -> str | None:
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return canonical_json(value)

    def vote_text(self, choice: dict[str, Any], text: str) -> str:
        """What a sample votes with, before canonicalisation (JSON text for both rules)."""
        if self.name != TOOL_CALLS:
            return text.strip()
        message = choice.get("message") or {}
        calls = message.get("tool_calls") or []
        if not calls:
            return json.dumps({"content": normalize_open(text)})
        normalised = [
            {
                "name": (c.get("function") or {}).get("name"),
                "arguments": _parsed((c.get("function") or {}).get("arguments")),
            }
            for c in calls
        ]
        return json.dumps({"tool_calls": normalised})


def structured_rule(body: dict[str, Any]) -> StructuredRule | None:
    """The structured voting rule a request's fields call for, or None for plain text answers."""
    if body.get("tools") and body.get("tool_choice") != "none":
        return StructuredRule(name=TOOL_CALLS)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        return StructuredRule(name=JSON_VALUE)
    return None
