"""Readiness of the model backends, shared by both kinds: pure functions of what `observe` found."""

from __future__ import annotations

from typing import Any

from quorum.builders.backends import BACKEND_COMPONENT, backend_name, resolve_endpoints
from quorum.builders.meta import LABEL_COMPONENT, Owner
from quorum.handlers.conditions import Cond
from quorum.handlers.plan import Key
from quorum.handlers.shared_models import Resolution, with_model_readiness

BACKEND_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"))


def backend_statuses(
    owner: Owner, models: list[Any], children: dict[Key, dict[str, Any]], shared: Resolution | None = None
) -> list[dict[str, Any]]:
    """One `BackendStatus` per model: ready replicas of served models; external endpoints count as ready
    (the operator never calls them; workers and the router retry and report their failures); a shared Model
    when it is ready and counts this consumer."""
    endpoints = {e.name: e.display_url for e in resolve_endpoints(owner, models)}
    backends = []
    for entry in models:
        ready = 0
        if entry.deployed:
            deployment = children.get(("apps/v1", "Deployment", backend_name(owner, entry.name)))
            ready = int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)
        backends.append(
            {
                "name": entry.name,
                "ready": ready > 0 or not entry.deployed,
                "readyReplicas": ready,
                "replicas": entry.replicas if entry.deployed else 0,
                "url": endpoints[entry.name],
            }
        )
    return with_model_readiness(backends, shared) if shared is not None else backends


def backends_summary(backends: list[dict[str, Any]]) -> str:
    return f"{sum(b['ready'] for b in backends)}/{len(backends)}"


def backends_condition(backends: list[dict[str, Any]], shared: Resolution | None = None) -> Cond:
    """`BackendsReady`; `WaitingForModel` while a shared Model is not ready for this consumer."""
    waiting_for_model = shared.condition() if shared is not None else None
    if waiting_for_model is not None:
        return waiting_for_model
    summary = backends_summary(backends)
    waiting = [b["name"] for b in backends if not b["ready"]]
    if not waiting:
        return Cond("BackendsReady", True, "AllAvailable", f"{summary} ready")
    return Cond("BackendsReady", False, "NotAvailable", f"{summary} ready; waiting for {', '.join(waiting)}")


def backend_objects(children: dict[Key, dict[str, Any]]) -> list[Key]:
    """The model Deployments and Services among the observed children (to free the GPUs after completion)."""
    return [
        key
        for key, obj in children.items()
        if key[:2] in BACKEND_KINDS
        and ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_COMPONENT) == BACKEND_COMPONENT
    ]
