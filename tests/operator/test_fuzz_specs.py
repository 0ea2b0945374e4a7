"""The fuzz's own yardstick, without a cluster: which messages count as naming the mutated field
(`FuzzSpec.names_field`), and that the operator's `InvalidSpec` wording of every spec the models reject passes
it. The on-cluster fuzz (test_fuzz_on_cluster.py) holds every `Stalled` message to the same rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.api.synthesis import SynthesisJobSpec
from quorum.handlers.plan import spec_errors
from tests.operator.fuzz_specs import FuzzSpec, fuzz_specs


def _mutated(*path: Any) -> FuzzSpec:
    return FuzzSpec("case", {}, next(str(p) for p in reversed(path) if not isinstance(p, int)), path)


@pytest.mark.parametrize(
    ("path", "message", "named"),
    [
        (("spec", "output", "uri"), "spec.output.uri: must be a pvc://, s3:// or file:// location", True),
        (("spec", "output", "uri"), "spec.seeds.uri: '..' segments are not allowed", False),
        (("spec", "output", "uri"), "spec.output: uri and credentialsSecretRef disagree", True),
        (("spec", "suspend"), "spec.workers.shards: must be an integer", False),
        (("spec", "suspend"), "spec.suspend: must be a boolean", True),
        (("spec", "models", 1, "vllm", "tensorParallelSize"), "spec.models[1].vllm: too many GPUs", True),
        (("spec", "models", 1, "vllm", "tensorParallelSize"), "spec.models[1]: tensorParallelSize exceeds", True),
        (("spec", "models", 1, "vllm", "tensorParallelSize"), "spec.models[1].resources.gpus: must be 2", False),
        (
            ("spec", "models", 0, "resources", "requests"),
            'Deployment.apps "sj-a" is invalid: spec.template.spec.containers[0].resources.requests[cpu]: Invalid',
            True,
        ),
        (("spec", "models", 0, "resources", "requests"), 'Deployment.apps "sj-a" is invalid: spec.replicas', False),
        (("spec", "models", 0, "resources", "requests"), "the API server refused a child: forbidden", False),
        (("metadata", "name"), 'metadata.name: Invalid value: "my.job"', True),
    ],
)
def test_a_stalled_message_names_the_mutated_field_or_its_parent_not_any_field(path, message, named) -> None:
    assert _mutated(*path).names_field(message) is named


def test_the_operator_blames_every_spec_the_models_reject_on_the_field_the_fuzz_mutated() -> None:
    """The `InvalidSpec` message the operator would post (its `spec_errors`) for each fuzz spec the pydantic
    models reject names that spec's own field: the cluster-free half of the on-cluster fuzz."""
    specs = fuzz_specs()
    assert len(specs) >= 300 and all(spec.path for spec in specs)
    rejected, unnamed = 0, []
    for spec in specs:
        model = SynthesisJobSpec if spec.document["kind"] == "SynthesisJob" else EnsembleRouterSpec
        try:
            model.model_validate(spec.document.get("spec") or {})
        except ValidationError as error:
            rejected += 1
            if not spec.names_field(spec_errors(error)):
                unnamed.append((spec.id, spec_errors(error)[:200]))
    assert rejected >= 200 and unnamed == [], unnamed
