"""Children of a shared Model: the same vLLM Deployment + Service as an inline model (builders/backends.py),
with the replica count the scaler decided; and how consumers see a Model (its URL and served model name)."""

from __future__ import annotations

from typing import Any

from quorum.api.common import ModelEntry, SecretKeyRef
from quorum.api.model import ModelSpec
from quorum.builders.backends import backend_deployment, backend_service, backend_url
from quorum.builders.credentials import generated_secret, model_key_ref
from quorum.builders.ensemble import CALIBRATE_COMPONENT, ROUTER_COMPONENT
from quorum.builders.meta import Owner
from quorum.builders.network import shared_model_policy
from quorum.builders.synthesis import MERGE_COMPONENT, WORKER_COMPONENT

CLIENT_COMPONENTS = {
    "SynthesisJob": [WORKER_COMPONENT, MERGE_COMPONENT],
    "EnsembleRouter": [CALIBRATE_COMPONENT, ROUTER_COMPONENT],
}
"""The pods of each consuming kind that call models."""


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


def model_key(namespace: str, name: str) -> SecretKeyRef:
    """The generated API key the Model's server requires; its consumers' pods send it."""
    return model_key_ref(model_owner(namespace, name))


def model_manifests(
    owner: Owner, spec: ModelSpec, replicas: int, consumers: list[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    """The generated API key, the Deployment (with `replicas`, zero allowed) and Service of the Model's vLLM
    server, and the NetworkPolicy admitting only its current consumers' model-calling pods ((kind, name)s)."""
    entry = serving_entry(owner.name, spec)
    deployment = backend_deployment(owner, entry, spec.model_cache)
    deployment["spec"]["replicas"] = replicas
    clients = [(Owner(kind, name, owner.namespace, ""), CLIENT_COMPONENTS[kind]) for kind, name in consumers]
    return [
        generated_secret(owner, model_key_ref(owner)),
        deployment,
        backend_service(owner, entry),
        shared_model_policy(owner, clients),
    ]
