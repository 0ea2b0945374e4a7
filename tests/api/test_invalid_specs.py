"""Every invalid spec is rejected by the models with a message that names the failing field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from quorum.api import parse_resource
from quorum.api.base import format_validation_error
from tests.api.invalid_specs import INVALID_SPECS, InvalidSpec, build, example


@pytest.mark.parametrize("case", INVALID_SPECS, ids=lambda c: c.id)
def test_invalid_spec_is_rejected_naming_the_field(case: InvalidSpec) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_resource(build(case))
    assert case.field in format_validation_error(caught.value)


def test_there_are_at_least_ten_distinct_invalid_cases() -> None:
    assert len({c.id for c in INVALID_SPECS}) >= 10


def test_one_model_pool_may_review_itself_only_when_allowed() -> None:
    document = example("local/synthesisjob.yaml")
    assert parse_resource(document).spec.review.allow_same_model
    document["spec"]["review"]["allowSameModel"] = False
    with pytest.raises(ValidationError, match="reviewers"):
        parse_resource(document)


@pytest.mark.parametrize("uri", ["https://example.com/seeds.jsonl", "http://example.com/seeds.jsonl"])
def test_a_web_location_is_refused_at_admission_listing_the_schemes_read(uri: str) -> None:
    """No engine reads http(s):// data; accepting it would only fail once a pod starts."""
    document = example("synthesisjob.yaml")
    document["spec"]["seeds"]["uri"] = uri
    with pytest.raises(ValidationError) as caught:
        parse_resource(document)
    message = format_validation_error(caught.value)
    assert "spec.seeds.uri: must be a pvc://, configmap://, s3:// or file:// location" in message
