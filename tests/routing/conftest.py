"""Fixtures for router tests: simulated backends on 127.0.0.1 and a spec pointing at them."""

from __future__ import annotations

from typing import Any

import pytest

from quorum.api.ensemble import EnsembleRouterSpec
from quorum.routing.embedding import shared_embedder


def router_spec(models: dict[str, str], **overrides: Any) -> EnsembleRouterSpec:
    """A spec whose models are external endpoints at the given base URLs (`name → url`)."""
    document: dict[str, Any] = {
        "models": [{"name": n, "endpoint": {"url": u, "model": n}} for n, u in models.items()],
        "calibration": {
            "dataset": {"uri": "file://calibration.jsonl"},
            "tasks": [
                {"name": "arithmetic", "kind": "math"},
                {"name": "trivia", "kind": "multiple-choice", "choices": "ABCD"},
            ],
            "clusters": 8,
            "samples": 1,
            "maxTokens": 64,
        },
        "voting": {"strategy": "self-consistency", "samples": 3},
    }
    for key, value in overrides.items():
        document[key] = {**document.get(key, {}), **value} if isinstance(value, dict) else value
    return EnsembleRouterSpec.model_validate(document)


@pytest.fixture(scope="session")
def embedder():
    return shared_embedder("sentence-transformers/all-MiniLM-L6-v2")
