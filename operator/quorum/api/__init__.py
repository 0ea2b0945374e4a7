"""Quorum's API: pydantic models of the custom resources (the single source of truth) and CRD generation."""

from quorum.api.ensemble import EnsembleRouterSpec, EnsembleRouterStatus
from quorum.api.model import ModelSpec, ModelStatus
from quorum.api.resources import (
    API_VERSION,
    GROUP,
    VERSION,
    EnsembleRouter,
    Model,
    SynthesisJob,
    load_manifests,
    load_one,
    parse_resource,
)
from quorum.api.synthesis import SynthesisJobSpec, SynthesisJobStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "EnsembleRouter",
    "EnsembleRouterSpec",
    "EnsembleRouterStatus",
    "Model",
    "ModelSpec",
    "ModelStatus",
    "SynthesisJob",
    "SynthesisJobSpec",
    "SynthesisJobStatus",
    "load_manifests",
    "load_one",
    "parse_resource",
]
