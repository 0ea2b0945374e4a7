"""Our CRDs on the real kube-apiserver: the examples are accepted, every invalid spec of tests/api is
refused with a message naming the field, and `kubectl get` prints our printer columns."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.kube import Kube, KubectlError
from tests.api.invalid_specs import INVALID_SPECS, InvalidSpec, build, example

pytestmark = pytest.mark.cluster

EXAMPLES = ["synthesisjob.yaml", "ensemblerouter.yaml", "local/synthesisjob.yaml", "local/ensemblerouter.yaml"]


def _in_namespace(document: dict[str, Any], namespace: str) -> dict[str, Any]:
    document["metadata"]["namespace"] = namespace
    return document


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_is_accepted_and_defaulted_by_the_api_server(kube: Kube, namespace: str, name: str) -> None:
    document = _in_namespace(example(name), namespace)
    kube.apply(document)
    stored = kube.get(document["kind"].lower(), document["metadata"]["name"])
    assert stored["spec"]["calls"]["maxBackoffSeconds"] == 30.0  # a schema default no example sets


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda c: c.id)
def test_invalid_spec_is_refused_naming_the_field(kube: Kube, namespace: str, case: InvalidSpec) -> None:
    document = _in_namespace(build(case), namespace)
    with pytest.raises(KubectlError) as refused:
        kube.apply(document)
    assert case.field in refused.value.stderr, refused.value.stderr
    assert not kube.exists(document["kind"].lower(), document["metadata"]["name"])


def test_kubectl_get_prints_the_printer_columns(kube: Kube, namespace: str) -> None:
    for name in ("synthesisjob.yaml", "ensemblerouter.yaml"):
        kube.apply(_in_namespace(example(name), namespace))
    header = kube.kubectl("get", "sjob,ensr").stdout
    for column in ("READY", "STAGE", "PROGRESS", "ACCEPTED", "BACKENDS", "URL", "AGE"):
        assert column in header
    assert "math-code" in header and "team-ensemble" in header
    categories = kube.kubectl("get", "quorum", "--output=name").stdout.split()
    assert sorted(categories) == ["ensemblerouter.quorum.dev/team-ensemble", "synthesisjob.quorum.dev/math-code"]


def test_seeds_are_immutable_once_created(kube: Kube, namespace: str) -> None:
    document = _in_namespace(example("synthesisjob.yaml"), namespace)
    kube.apply(document)
    document["spec"]["seeds"]["uri"] = "pvc://datasets/other.jsonl"
    with pytest.raises(KubectlError, match="seeds"):
        kube.apply(document)
