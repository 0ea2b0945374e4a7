"""Checking an OpenAI request body without building a model of it, and naming the field that is wrong.

The router forwards the body as the client sent it, so only the fields it acts on or that a backend would
reject late are checked here (one dict lookup each, no copy of `messages`): a bad value gets a 400 naming
the field before any backend is called. Unknown fields are tolerated, as OpenAI clients send many.
"""

from __future__ import annotations

from typing import Any

from quorum.routing.engine import ChatRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
RESPONSE_FORMATS = frozenset({"text", "json_object", "json_schema"})
TOOL_CHOICES = frozenset({"none", "auto", "required"})
CHAT = "chat/completions"
COMPLETIONS = "completions"


class InvalidField(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one_of(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed


def _number(body: dict[str, Any], key: str, low: float, high: float, *, integer: bool = False) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not (_is_int(value) if integer else _is_number(value)):
        raise InvalidField(key, f"must be {'an integer' if integer else 'a number'}")
    if not low <= value <= high:
        raise InvalidField(key, f"must be between {low:g} and {high:g}")
    return value


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InvalidField("messages", "must be a non-empty list of messages")
    if len(value) > 4096:
        raise InvalidField("messages", "at most 4096 messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise InvalidField(f"messages.{i}", "must be an object")
        if not _one_of(message.get("role"), ROLES):
            raise InvalidField(f"messages.{i}.role", f"must be one of {', '.join(sorted(ROLES))}")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidField(f"messages.{i}.content", "must be a string, a list of parts or null")
    return value


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value:
        raise InvalidField("prompt", "must be one non-empty text prompt (lists of prompts or token ids are not routed)")
    return value


def _stop(body: dict[str, Any]) -> None:
    stop = body.get("stop")
    if stop is None:
        return
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise InvalidField("stop", "must be a string or a list of strings")
    if len(stops) > 4:
        raise InvalidField("stop", "at most 4 sequences")


def _tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidField("tools", "must be a list")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise InvalidField(f"tools.{i}.function.name", "each tool needs a function with a name")
    choice = body.get("tool_choice")
    if choice is not None and not _one_of(choice, TOOL_CHOICES) and not isinstance(choice, dict):
        raise InvalidField("tool_choice", "must be none, auto, required or a named function")


def _response_format(body: dict[str, Any]) -> None:
    value = body.get("response_format")
    if value is None:
        return
    if not isinstance(value, dict) or not _one_of(value.get("type"), RESPONSE_FORMATS):
        raise InvalidField("response_format.type", f"must be one of {', '.join(sorted(RESPONSE_FORMATS))}")
    if value["type"] == "json_schema" and not isinstance(value.get("json_schema"), dict):
        raise InvalidField("response_format.json_schema", "a json_schema response format needs its schema")


def _stream(body: dict[str, Any]) -> None:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidField("stream", "must be true or false")
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise InvalidField("stream_options", "only allowed when stream is true")
        if not isinstance(options, dict):
            raise InvalidField("stream_options", "must be an object")


def _task(body: dict[str, Any], header: str | None) -> str | None:
    options = body.get("quorum")
    if options is None:
        return header
    if not isinstance(options, dict) or set(options) - {"task"}:
        raise InvalidField("quorum", "only quorum.task is accepted")
    task = options.get("task")
    if task is not None and (not isinstance(task, str) or not 1 <= len(task) <= 128):
        raise InvalidField("quorum.task", "must be a task name of 1 to 128 characters")
    return task or header


def parse_request(body: dict[str, Any], endpoint: str, task_header: str | None = None) -> ChatRequest:
    """The request the engine acts on; raises `InvalidField` naming the first wrong field."""
    model = body.get("model")
    if not isinstance(model, str) or not 1 <= len(model) <= 256:
        raise InvalidField("model", "must be a model name of 1 to 256 characters")
    if endpoint == CHAT:
        messages = _messages(body.get("messages"))
        _number(body, "top_logprobs", 0, 20, integer=True)
        if body.get("logprobs") is not None and not isinstance(body["logprobs"], bool):
            raise InvalidField("logprobs", "must be true or false")
    else:
        messages = [{"role": "user", "content": _prompt(body.get("prompt"))}]
        _number(body, "logprobs", 0, 5, integer=True)
    temperature = _number(body, "temperature", 0.0, 2.0)
    top_p = _number(body, "top_p", 0.0, 1.0)
    if top_p == 0:
        raise InvalidField("top_p", "must be above 0")
    _number(body, "max_tokens", 1, 1_000_000, integer=True)
    _number(body, "max_completion_tokens", 1, 1_000_000, integer=True)
    n = _number(body, "n", 1, 64, integer=True)
    _number(body, "seed", -(2**63), 2**63 - 1, integer=True)
    for penalty in ("presence_penalty", "frequency_penalty"):
        _number(body, penalty, -2.0, 2.0)
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise InvalidField("user", "must be a string")
    _stop(body)
    _tools(body)
    _response_format(body)
    _stream(body)
    return ChatRequest(
        messages=messages,
        model=model,
        temperature=temperature,
        n=n or 1,
        task=_task(body, task_header),
        body=body,
        endpoint=endpoint,
    )
