"""Children of a shared Model: the same vLLM Deployment + Service as an inline model (builders/backends.py),
with the replica count the scaler decided; and how consumers see a Model (its URL and served model name)."""

from __future__ import annotations

from typing import Any

from quorum.api.common import ModelEntry
from quorum.api.model import ModelSpec
from quorum.builders.backends import backend_deployment, backend_service, backend_url
from quorum.builders.meta import Owner


def model_owner(namespace: str, name: str, uid: str = "") -> Owner:
    """The Model as an owner; child names and URLs do not depend on the uid, so consumers can name them."""
    return Owner(kind="Model", name=name, namespace=namespace, uid=uid)


def model_url(namespace: str, name: str) -> str:
    return backend_url(model_owner(namespace, name), name)


def serving_entry(name: str, spec: ModelSpec) -> ModelEntry:
    """The Model as the one model entry its backend serves (validated already as a ModelSpec; a Model's name may
    be longer than a model entry's)."""
    return ModelEntry.model_construct(
        name=name, model=spec.model, vllm=spec.vllm, resources=spec.resources, replicas=1, endpoint=None
    )


def model_manifests(owner: Owner, spec: ModelSpec, replicas: int) -> list[dict[str, Any]]:
    """Deployment (with `replicas`, zero allowed) and Service of the Model's vLLM server."""
    entry = serving_entry(owner.name, spec)
    deployment = backend_deployment(owner, entry, spec.model_cache)
    deployment["spec"]["replicas"] = replicas
    return [deployment, backend_service(owner, entry)]
