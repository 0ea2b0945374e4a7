"""The base every API model shares: camelCase on the wire, unknown fields refused, and cross-field rules
declared once for both the API server (CEL) and Python (local mode, unit tests).

Why one declaration: a rule that exists only as CEL is skipped by local mode, and one that exists only in
Python lets `kubectl apply` accept what the operator later rejects. `CrossFieldRule` keeps both halves side
by side so they cannot drift apart unnoticed (tests evaluate every rule on the same invalid specs through both
paths).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema


@dataclass(frozen=True)
class CrossFieldRule:
    """A validation that spans several fields of one object.

    `cel` is evaluated by the kube-apiserver (`x-kubernetes-validations`), `holds` by pydantic. `field` is the
    path, relative to the object, that the message blames; the API server reports it as the failing field.
    """

    cel: str
    message: str
    holds: Callable[[Any], bool]
    field: str | None = None

    def as_cel(self) -> dict[str, str]:
        rule = {"rule": self.cel, "message": self.message}
        if self.field:
            rule["fieldPath"] = self.field
        return rule


@dataclass(frozen=True)
class FieldRule:
    """A validation of one field's value (a string's form, a map's keys), declared once for both halves: as
    `Annotated[str, FieldRule(...)]` it becomes the field's `x-kubernetes-validations` entry for the API server
    and an after-validator for pydantic, so `quorum validate` and `kubectl apply` refuse the same values."""

    cel: str
    message: str
    holds: Callable[[Any], bool]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def check(value: Any) -> Any:
            if not self.holds(value):
                raise ValueError(self.message)
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        json_schema = handler(schema)
        rules = json_schema.setdefault("x-kubernetes-validations", [])
        rules.append({"rule": self.cel, "message": self.message})
        return json_schema


class ApiModel(BaseModel):
    """Base of every spec/status object: camelCase aliases, `extra=forbid` so typos are errors, not silence."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        use_attribute_docstrings=True,
    )

    cross_field_rules: ClassVar[tuple[CrossFieldRule, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _json_scalar_types(cls, data: Any) -> Any:
        """Scalars as strictly as the API server types them: pydantic would take `true` for a number, 1 or
        "yes" for a boolean and 5.0 for an integer; the API server takes none of them, so neither do we."""
        if not isinstance(data, dict):
            return data
        for name, info in cls.model_fields.items():
            key = info.alias or name
            value = data.get(key, data.get(name))
            expected = _scalar_type(info.annotation)
            if value is None or expected is None:
                continue
            if expected is bool and not isinstance(value, bool):
                raise ValueError(f"{key}: must be a boolean (true or false)")
            if expected in (int, float) and isinstance(value, bool):
                raise ValueError(f"{key}: must be a number, not a boolean")
            if expected is int and isinstance(value, float):
                raise ValueError(f"{key}: must be an integer")
        return data

    @model_validator(mode="after")
    def _check_cross_field_rules(self) -> ApiModel:
        for rule in type(self).cross_field_rules:
            if not rule.holds(self):
                where = f"{rule.field.lstrip('.')}: " if rule.field else ""
                raise ValueError(f"{where}{rule.message}")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.cross_field_rules:
            target["x-kubernetes-validations"] = [rule.as_cel() for rule in cls.cross_field_rules]
        return schema

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase keys, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _scalar_type(annotation: Any) -> type | None:
    """bool, int or float when a field holds exactly that scalar (optionally `| None`), else None."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        annotation = options[0] if len(options) == 1 else None
    return annotation if annotation in (bool, int, float) else None


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, `spec.path.to.field: message`, as the API server words its rejections.

    Cross-field rules raise `"<field>: <message>"` from the object's validator; the field is folded into the
    path so both layers blame the same place.
    """
    lines = []
    for item in error.errors():
        path = [str(part) for part in item["loc"] if not str(part).startswith("function-")]
        if path and path[0] in ("SynthesisJob", "EnsembleRouter"):
            path = path[1:]
        message = item["msg"].removeprefix("Value error, ")
        field, sep, rest = message.partition(": ")
        if item["type"] == "value_error" and sep and " " not in field:
            path.append(field)
            message = rest
        lines.append(f"  {'.'.join(path)}: {message}")
    return "\n".join(lines)
