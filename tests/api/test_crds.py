"""The CRDs in crds/ are generated from the models, structural, and teach through `kubectl explain`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from quorum.api.crd import crd_for, stale_crds
from quorum.api.resources import RESOURCES

CRDS = Path(__file__).resolve().parents[2] / "crds"


def _walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _walk(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


def _schemas() -> list[tuple[str, dict[str, Any]]]:
    return [(r.kind_name, crd_for(r)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]) for r in RESOURCES]


def test_crds_directory_is_up_to_date() -> None:
    assert stale_crds(CRDS) == [], "run `quorum crds generate`"


@pytest.mark.parametrize(("kind", "schema"), _schemas(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_property_has_a_description_and_a_type(kind: str, schema: dict[str, Any]) -> None:
    # `metadata` is the one exception: the API server refuses anything but its type there.
    missing = [
        p
        for p, s in _walk(schema)
        if p and p != ".metadata" and not p.endswith(("[]", "}")) and not s.get("description")
    ]
    untyped = [p for p, s in _walk(schema) if "type" not in s and not s.get("x-kubernetes-int-or-string")]
    assert missing == []
    assert untyped == []


@pytest.mark.parametrize(("kind", "schema"), _schemas(), ids=lambda v: v if isinstance(v, str) else "")
def test_schema_is_structural(kind: str, schema: dict[str, Any]) -> None:
    forbidden = {"anyOf", "oneOf", "allOf", "$ref", "const", "title", "$defs"}
    for path, node in _walk(schema):
        assert not forbidden & node.keys(), path
        assert not ("properties" in node and "additionalProperties" in node), path


def test_crds_carry_defaults_enums_and_cel_rules() -> None:
    nodes = [node for _, schema in _schemas() for _, node in _walk(schema)]
    rules = [rule for node in nodes for rule in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 5
    assert sum("default" in node for node in nodes) >= 30
    assert sum("enum" in node for node in nodes) >= 8
    assert all(rule["message"] for rule in rules)


def test_printer_columns_select_conditions_by_type_not_position() -> None:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        columns = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        ready = next(c for c in columns if c["name"] == "Ready")
        assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
        assert not any("conditions[0]" in c["jsonPath"] for c in columns)


def test_names_and_categories() -> None:
    names = {crd_for(r)["spec"]["names"]["shortNames"][0]: crd_for(r)["spec"]["names"] for r in RESOURCES}
    assert set(names) == {"sjob", "ensr", "qmodel"}
    assert all(n["categories"] == ["quorum"] for n in names.values())
