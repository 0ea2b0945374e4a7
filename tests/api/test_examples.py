"""The shipped examples parse into the models and satisfy the generated CRD schemas."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from quorum.api import EnsembleRouter, Model, SynthesisJob, parse_resource
from quorum.api.crd import crd_for

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").rglob("*.yaml"))
KINDS = {"SynthesisJob": SynthesisJob, "EnsembleRouter": EnsembleRouter, "Model": Model}


def _documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_examples_cover_both_kinds_for_cluster_and_local() -> None:
    kinds = {(p.parent.name == "local", d["kind"]) for p in EXAMPLES for d in _documents(p)}
    assert kinds >= {
        (False, "SynthesisJob"),
        (False, "EnsembleRouter"),
        (True, "SynthesisJob"),
        (True, "EnsembleRouter"),
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_example_parses_into_the_models(path: Path) -> None:
    for document in _documents(path):
        resource = parse_resource(document)
        assert resource.metadata.name == document["metadata"]["name"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_example_validates_against_the_generated_crd_schema(path: Path) -> None:
    for document in _documents(path):
        schema = crd_for(KINDS[document["kind"]])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        jsonschema.validate(document, schema, cls=jsonschema.Draft4Validator)


def test_generated_schema_enforces_bounds() -> None:
    schema = crd_for(SynthesisJob)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    bad = _documents(next(p for p in EXAMPLES if p.name == "synthesisjob.yaml"))[0]
    bad["spec"]["workers"]["shards"] = 0
    with pytest.raises(jsonschema.ValidationError, match="minimum"):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft4Validator)
